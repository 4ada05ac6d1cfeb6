"""Strategies through the HTTP API on a running app with the simulated market (SQLite and
PostgreSQL): create, start, orders tagged with the strategy, tier limits, a failing strategy
contained, restarts, and what a strategy's context can reach."""

from __future__ import annotations

import gc
import json
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import websockets

from hoga.domain.clock import KST, ManualClock
from hoga.domain.market import Bar
from hoga.strategies.base import Strategy, StrategyParams
from tests.helpers import Harness, eventually, live_server, running
from tests.plugins import plug_in

SYMBOL = "005930"
OTHER = "000660"


class BoomStrategy(Strategy[StrategyParams]):
    """Test plugin: raises on its second bar."""

    kind = "boom"
    name = "폭탄"
    name_en = "Boom"
    description = "테스트용: 두 번째 봉에서 예외"
    description_en = "test plugin: raises on its second bar"

    def on_bar(self, bar: Bar) -> None:
        seen = self.ctx.state.get("bars", 0) + 1
        self.ctx.state["bars"] = seen
        self.ctx.log.info(f"bar {seen} of {bar.symbol}")
        if seen >= 2:
            raise RuntimeError("boom on purpose")


@pytest.fixture
def boom_plugin(monkeypatch: pytest.MonkeyPatch) -> None:
    """Register BoomStrategy as an installed plugin of the ``hoga.strategies`` group."""
    plug_in(monkeypatch, ("boom", f"{__name__}:BoomStrategy"))


def _clock() -> ManualClock:
    return ManualClock(datetime(2026, 11, 26, 10, 0, 5, tzinfo=KST))


async def _minutes(h: Harness, clock: ManualClock, n: int, ticks: int = 400) -> None:
    """Trade ``n`` simulated minutes: ticks within a minute, then the clock moves on."""
    for _ in range(n):
        for _ in range(8):
            h.pump(ticks // 8)
            clock.advance(60 / 8)
            await h.hoga.paper.drain()
            await _settle()


async def _settle() -> None:
    import asyncio

    for _ in range(5):
        await asyncio.sleep(0)


async def _placed(h: Harness, *symbols: str) -> None:
    async def check() -> bool:
        return all(s in h.hoga.hub._placed for s in symbols)

    await eventually(check, what="hub subscription")


async def _orders(h: Harness, headers: dict[str, str], **q: Any) -> list[dict[str, Any]]:
    r = await h.http.get("/api/orders", params=q, headers=headers)
    assert r.status_code == 200, r.text
    orders: list[dict[str, Any]] = r.json()["orders"]
    return orders


async def _create(
    h: Harness, headers: dict[str, str], name: str, kind: str, symbols: list[str], **params: Any
) -> dict[str, Any]:
    r = await h.http.post(
        "/api/strategies",
        json={"name": name, "kind": kind, "symbols": symbols, "params": params},
        headers=headers,
    )
    assert r.status_code == 201, r.text
    body: dict[str, Any] = r.json()
    return body


async def _started(
    h: Harness, headers: dict[str, str], name: str, kind: str, symbols: list[str], **params: Any
) -> int:
    """Create the strategy and start it; returns its id."""
    sid: int = (await _create(h, headers, name, kind, symbols, **params))["id"]
    r = await h.http.post(f"/api/strategies/{sid}/start", headers=headers)
    assert r.json()["status"] == "running", r.text
    return sid


async def test_catalog_lists_builtins_with_schemas(tmp_path: Path, db_url: str) -> None:
    async with running(tmp_path, db_url) as h:
        alice = await h.user("alice")
        r = await h.http.get("/api/strategy-catalog", headers=alice)
        assert r.status_code == 200
        kinds = {s["kind"]: s for s in r.json()["strategies"]}
        assert {
            "sma_cross",
            "rsi_reversion",
            "volatility_breakout",
            "bollinger",
            "rebalance",
        } <= set(kinds)
        sma = kinds["sma_cross"]
        assert sma["name"] == "이동평균 교차" and sma["name_en"]
        props = sma["params_schema"]["properties"]
        assert props["fast"]["minimum"] == 1 and props["fast"]["title"]
        assert sma["defaults"] == {"fast": 5, "slow": 20, "qty": 10}
        assert (await h.http.get("/api/strategy-catalog")).status_code == 401


async def test_sma_cross_trades_through_the_order_service(tmp_path: Path, db_url: str) -> None:
    clock = _clock()
    async with running(tmp_path, db_url, clock=clock, access_token_ttl=86_400) as h:
        alice = await h.user("alice", "basic")
        created = await _create(h, alice, "cross", "sma_cross", [SYMBOL], fast=2, slow=3, qty=3)
        assert created["status"] == "created" and created["pnl"]["orders"] == 0
        sid = created["id"]
        r = await h.http.post(f"/api/strategies/{sid}/start", headers=alice)
        assert r.status_code == 200, r.text
        assert r.json()["status"] == "running"
        await _placed(h, SYMBOL)
        for _ in range(40):
            await _minutes(h, clock, 1)
            if await _orders(h, alice, strategy_id=sid):
                break
        orders = await _orders(h, alice, strategy_id=sid)
        assert orders, "the strategy placed no order in 40 simulated minutes"
        first = orders[-1]
        assert first["strategy_id"] == sid and first["source"] == "strategy"
        assert first["side"] == "buy" and first["qty"] == 3 and first["type"] == "market"
        # Every order of the user in the API list carries the id too.
        assert all(o["strategy_id"] == sid for o in await _orders(h, alice))

        async def filled() -> bool:
            v = (await h.http.get(f"/api/strategies/{sid}", headers=alice)).json()
            return bool(v["pnl"]["fills"])

        await h.trade_until(filled, "a strategy fill")
        view = (await h.http.get(f"/api/strategies/{sid}", headers=alice)).json()
        assert view["pnl"]["orders"] >= 1
        assert view["positions"] and view["positions"][0]["symbol"] == SYMBOL
        # The strategy's own position reached its context via on_fill/fill events.
        run = h.hoga.live_strategies._runs[sid]
        await eventually(
            lambda: _true(run.ctx.position(SYMBOL).qty == 3), what="position in the context"
        )

        # Another user cannot see or touch it.
        bob = await h.user("bob")
        assert (await h.http.get(f"/api/strategies/{sid}", headers=bob)).status_code == 404
        r = await h.http.post(f"/api/strategies/{sid}/stop", headers=bob)
        assert r.status_code == 404 and r.json()["error"]["code"] == "strategy.not_found"

        r = await h.http.post(f"/api/strategies/{sid}/pause", headers=alice)
        assert r.json()["status"] == "paused"
        assert sid not in h.hoga.live_strategies._runs
        r = await h.http.post(f"/api/strategies/{sid}/stop", headers=alice)
        assert r.json()["status"] == "stopped"


async def _true(value: bool) -> bool:
    return value


async def test_refusals_name_the_field_and_create_nothing(tmp_path: Path, db_url: str) -> None:
    async with running(tmp_path, db_url) as h:
        free = await h.user("free1", "free")
        cases = [
            ({"kind": "nope"}, 422, "strategy.unknown_kind", "kind"),
            ({"params": {"fast": 20, "slow": 5}}, 422, "strategy.bad_params", "fast"),
            ({"params": {"fast": "5"}}, 422, "strategy.bad_params", "fast"),
            ({"params": {"speed": 1}}, 422, "strategy.bad_params", "speed"),
            ({"symbols": ["999999"]}, 422, "strategy.unknown_symbol", "symbols"),
            ({"symbols": ["12"]}, 422, "strategy.unknown_symbol", "symbols"),
            ({"account_id": 9999}, 404, "account.not_found", None),
        ]
        for change, status, code, field in cases:
            body = {"name": "s", "kind": "sma_cross", "symbols": [SYMBOL], "params": {}}
            body.update(change)
            r = await h.http.post("/api/strategies", json=body, headers=free)
            assert r.status_code == status, (change, r.text)
            err = r.json()["error"]
            assert err["code"] == code and err["message"]
            if field:
                assert err["field"] == field
        assert (await h.http.get("/api/strategies", headers=free)).json()["strategies"] == []

        # Another user's account is refused like an unknown one.
        other = await h.user("other", "free")
        accts = (await h.http.get("/api/broker-accounts", headers=other)).json()
        other_acct = (accts["accounts"] if isinstance(accts, dict) else accts)[0]["id"]
        r = await h.http.post(
            "/api/strategies",
            json={"name": "x", "kind": "sma_cross", "symbols": [SYMBOL], "account_id": other_acct},
            headers=free,
        )
        assert r.status_code == 404 and r.json()["error"]["code"] == "account.not_found"

        first = await _create(h, free, "one", "sma_cross", [SYMBOL])
        r = await h.http.post(
            "/api/strategies",
            json={"name": "one", "kind": "sma_cross", "symbols": [SYMBOL]},
            headers=free,
        )
        # The free tier allows one strategy: the limit is checked before the name.
        assert r.status_code == 403 and r.json()["error"]["code"] == "strategy.limit_reached"
        strategies = (await h.http.get("/api/strategies", headers=free)).json()["strategies"]
        assert [s["id"] for s in strategies] == [first["id"]]

        basic = await h.user("basic1", "basic")
        await _create(h, basic, "one", "sma_cross", [SYMBOL])
        r = await h.http.post(
            "/api/strategies",
            json={"name": "one", "kind": "rsi_reversion", "symbols": [SYMBOL]},
            headers=basic,
        )
        assert r.status_code == 409 and r.json()["error"]["code"] == "strategy.exists"

        r = await h.http.delete(f"/api/strategies/{first['id']}", headers=free)
        assert r.status_code == 200 and r.json() == {"ok": True}
        assert (await h.http.get(f"/api/strategies/{first['id']}", headers=free)).status_code == 404


async def test_failing_strategy_stops_alone_and_says_why(
    tmp_path: Path, db_url: str, boom_plugin: None
) -> None:
    clock = _clock()
    async with running(tmp_path, db_url, clock=clock, access_token_ttl=86_400) as h:
        assert "boom" in h.hoga.catalog
        alice = await h.user("alice", "basic")
        good = await _create(h, alice, "cross", "sma_cross", [SYMBOL], fast=2, slow=3, qty=1)
        bad = await _create(h, alice, "boom", "boom", [OTHER])
        async with live_server(h.hoga) as base:
            token = alice["Authorization"].split()[1]
            async with websockets.connect(f"ws://{base}/ws/events?token={token}") as ws:
                assert json.loads(await ws.recv())["type"] == "auth"
                for sid in (good["id"], bad["id"]):
                    r = await h.http.post(f"/api/strategies/{sid}/start", headers=alice)
                    assert r.json()["status"] == "running"
                await _placed(h, SYMBOL, OTHER)

                async def boom_failed() -> bool:
                    r = await h.http.get(f"/api/strategies/{bad['id']}", headers=alice)
                    return bool(r.json()["status"] == "error")

                for _ in range(10):
                    await _minutes(h, clock, 1)
                    if await boom_failed():
                        break
                view = (await h.http.get(f"/api/strategies/{bad['id']}", headers=alice)).json()
                assert view["status"] == "error"
                assert "boom on purpose" in view["last_error"]["message"]
                assert "RuntimeError" in view["last_error"]["message"]
                assert view["state"] == {"bars": 2}

                # The event stream told the user.
                seen = None
                logs = []
                for _ in range(500):
                    msg = json.loads(await ws.recv())
                    if msg.get("type") == "strategy_log":
                        logs.append(msg)
                    if (
                        msg.get("type") == "strategy"
                        and msg["strategy"]["id"] == bad["id"]
                        and msg["strategy"]["status"] == "error"
                    ):
                        seen = msg
                        break
                assert seen is not None, "no strategy error event on /ws/events"
                # Each strategy's log opens with the runner's start line (web branch: the live
                # log shows the runner's own lines); then the strategy's own lines.
                assert [
                    (m["strategy_id"], m["level"], m["message"])
                    for m in logs
                    if m["strategy_id"] == bad["id"]
                ] == [
                    (bad["id"], "info", f"시작했습니다: {OTHER} (started)"),
                    (bad["id"], "info", f"bar 1 of {OTHER}"),
                    (bad["id"], "info", f"bar 2 of {OTHER}"),
                ]
                assert all(m["ts"] for m in logs)
                assert "boom on purpose" in seen["strategy"]["last_error"]["message"]

        # The other strategy is untouched and keeps trading.
        assert good["id"] in h.hoga.live_strategies._runs
        for _ in range(40):
            await _minutes(h, clock, 1)
            if await _orders(h, alice, strategy_id=good["id"]):
                break
        orders = await _orders(h, alice, strategy_id=good["id"])
        assert orders and all(o["strategy_id"] == good["id"] for o in orders)
        g = (await h.http.get(f"/api/strategies/{good['id']}", headers=alice)).json()
        assert g["status"] == "running" and g["last_error"] is None


async def test_running_strategies_restart_with_their_state(tmp_path: Path, db_url: str) -> None:
    clock = _clock()
    async with running(tmp_path, db_url, clock=clock, access_token_ttl=86_400) as h:
        alice = await h.user("alice", "basic")
        a = await _create(h, alice, "a", "volatility_breakout", [SYMBOL], k=0.5, qty=1)
        b = await _create(h, alice, "b", "sma_cross", [OTHER])
        await h.http.post(f"/api/strategies/{a['id']}/start", headers=alice)
        await h.http.post(f"/api/strategies/{b['id']}/start", headers=alice)
        await h.http.post(f"/api/strategies/{b['id']}/pause", headers=alice)
        await _placed(h, SYMBOL)
        await _minutes(h, clock, 3)

        async def saved() -> bool:
            v = (await h.http.get(f"/api/strategies/{a['id']}", headers=alice)).json()
            return bool(v["state"].get("days", {}).get(SYMBOL))

        await eventually(saved, what="state saved")
    clock.advance(30)
    async with running(tmp_path, db_url, clock=clock, access_token_ttl=86_400) as h:
        alice = await h.login("alice")
        assert a["id"] in h.hoga.live_strategies._runs
        assert b["id"] not in h.hoga.live_strategies._runs
        run = h.hoga.live_strategies._runs[a["id"]]
        assert run.ctx.state["days"][SYMBOL]["open"] > 0
        views = {
            s["id"]: s
            for s in (await h.http.get("/api/strategies", headers=alice)).json()["strategies"]
        }
        assert views[a["id"]]["status"] == "running"
        assert views[b["id"]]["status"] == "paused"
        assert h.hoga.live_strategies.status()["running"] == 1


_FORBIDDEN_TYPES = (
    "Database",
    "OrderService",
    "AccountService",
    "AuthService",
    "TokenService",
    "Vault",
    "KeyRing",
    "Secret",
    "HogaApp",
    "EventBus",
    "Hub",
    "Settings",
    "PaperBroker",
    "AsyncEngine",
)


def _reachable(root: object, limit: int = 20_000) -> list[object]:
    """Everything reachable from ``root`` through references (bounded)."""
    seen: dict[int, object] = {}
    todo = [root]
    while todo and len(seen) < limit:
        obj = todo.pop()
        if id(obj) in seen or isinstance(obj, type):
            continue
        seen[id(obj)] = obj
        todo.extend(gc.get_referents(obj))
    return list(seen.values())


async def test_context_exposes_no_secrets_or_services(tmp_path: Path, db_url: str) -> None:
    async with running(tmp_path, db_url) as h:
        alice = await h.user("alice", "basic")
        s = await _create(h, alice, "cross", "sma_cross", [SYMBOL])
        await h.http.post(f"/api/strategies/{s['id']}/start", headers=alice)
        h.pump(200)
        run = h.hoga.live_strategies._runs[s["id"]]
        objs = _reachable(run.strategy)
        kinds = {type(o).__name__ for o in objs}
        assert not kinds & set(_FORBIDDEN_TYPES), kinds & set(_FORBIDDEN_TYPES)
        texts = [o for o in objs if isinstance(o, str)]
        for secret in ("admin-pass-123", "correct-horse-9"):
            assert not any(secret in t for t in texts)
        jwt_key = h.hoga.tokens._secret
        assert not any(isinstance(o, bytes) and o == jwt_key for o in objs)
        master_keys = list(h.hoga.vault.ring.keys.values())
        assert master_keys
        assert not any(isinstance(o, bytes) and o in master_keys for o in objs)
        assert "secret" not in repr(run.ctx).lower()
        public = [n for n in dir(run.ctx) if not n.startswith("_")]
        assert not any("secret" in n or "token" in n or "key" in n for n in public)
