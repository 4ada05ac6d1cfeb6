"""A strategy's live log shows the runner's own lines (start, orders, fills) even when the
strategy logs nothing itself - the log used to stay empty - and a page opened later reads the
recent lines; the strategy's P&L after each fill (SQLite and PostgreSQL)."""

from __future__ import annotations

from pathlib import Path

from tests.helpers import eventually, running
from tests.integration.test_strategies_api import (
    SYMBOL,
    _clock,
    _create,
    _minutes,
    _orders,
    _placed,
)


async def test_runner_lines_reach_the_log_and_pnl_follows_fills(
    tmp_path: Path, db_url: str
) -> None:
    clock = _clock()
    async with running(tmp_path, db_url, clock=clock, access_token_ttl=86_400) as h:
        alice = await h.user("alice", "basic")
        sid = (await _create(h, alice, "cross", "sma_cross", [SYMBOL], fast=2, slow=3, qty=3))["id"]
        r = await h.http.get(f"/api/strategies/{sid}/log", headers=alice)
        assert r.status_code == 200 and r.json() == {"lines": []}
        assert (await h.http.post(f"/api/strategies/{sid}/start", headers=alice)).status_code == 200
        await _placed(h, SYMBOL)

        async def logged(text: str) -> bool:
            lines = (await h.http.get(f"/api/strategies/{sid}/log", headers=alice)).json()["lines"]
            return any(text in line["message"] for line in lines)

        await eventually(lambda: logged("시작했습니다"), what="the start line")
        for _ in range(40):
            await _minutes(h, clock, 1)
            if await _orders(h, alice, strategy_id=sid):
                break
        order = (await _orders(h, alice, strategy_id=sid))[-1]
        await eventually(lambda: logged(f"주문 #{order['id']}"), what="the order line")

        async def filled() -> bool:
            return await logged("체결")

        await h.trade_until(filled, "a fill line")
        lines = (await h.http.get(f"/api/strategies/{sid}/log", headers=alice)).json()["lines"]
        assert all(line["strategy_id"] == sid and line["ts"] for line in lines)
        # Bilingual like every message: the dashboard shows the half of its language.
        assert any("(fill buy 3 @" in line["message"] for line in lines)

        points = (await h.http.get(f"/api/strategies/{sid}/pnl", headers=alice)).json()["points"]
        assert points and points[0]["realized"] < 0  # the buy's commission
        view = (await h.http.get(f"/api/strategies/{sid}", headers=alice)).json()
        assert points[-1]["realized"] == view["pnl"]["realized"]

        # Someone else's strategy: 404, nothing leaks.
        bob = await h.user("bob")
        for path in (f"/api/strategies/{sid}/log", f"/api/strategies/{sid}/pnl"):
            r = await h.http.get(path, headers=bob)
            assert r.status_code == 404 and r.json()["error"]["code"] == "strategy.not_found"
