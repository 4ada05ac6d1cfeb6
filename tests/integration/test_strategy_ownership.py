"""The live driver's per-user start and stop (``start_user`` / ``stop_user``), which a server
calls when it gains or loses ownership of a user: only that user's strategies whose status says
running are started; stopping keeps their statuses, so whoever starts them next resumes them."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from hoga.domain import krx
from hoga.domain.clock import KST, ManualClock
from hoga.domain.market import Tick
from hoga.strategies.base import Strategy, StrategyParams
from tests.helpers import Harness, running
from tests.integration.test_strategies_api import _started
from tests.plugins import plug_in

SYMBOL = "005930"
OTHER = "000660"


class RestingStrategy(Strategy[StrategyParams]):
    """Test plugin: one limit buy far below the market, placed once (its state says so)."""

    kind = "resting"
    name = "대기 주문"
    name_en = "Resting"
    description = "테스트용: 시장가보다 한참 낮은 지정가 매수 한 건"
    description_en = "test plugin: one limit buy far below the market"

    def on_tick(self, tick: Tick) -> None:
        if self.ctx.state.get("placed"):
            return
        self.ctx.state["placed"] = True
        self.ctx.buy(tick.symbol, 1, krx.round_to_tick(tick.price * 8 // 10, up=True))


@pytest.fixture
def resting_plugin(monkeypatch: pytest.MonkeyPatch) -> None:
    plug_in(monkeypatch, ("resting", f"{__name__}:RestingStrategy"))


async def _statuses(h: Harness, headers: dict[str, str]) -> dict[int, Any]:
    r = await h.http.get("/api/strategies", headers=headers)
    return {s["id"]: (s["status"], s["last_error"]) for s in r.json()["strategies"]}


async def test_stop_user_and_start_user_move_one_users_strategies(
    tmp_path: Path, db_url: str
) -> None:
    async with running(tmp_path, db_url) as h:
        alice = await h.user("alice", "basic")
        bob = await h.user("bob", "basic")
        a1 = await _started(h, alice, "a1", "sma_cross", [SYMBOL])
        a2 = await _started(h, alice, "a2", "sma_cross", [OTHER])
        paused = await _started(h, alice, "a3", "sma_cross", [SYMBOL])
        await h.http.post(f"/api/strategies/{paused}/pause", headers=alice)
        b1 = await _started(h, bob, "b1", "sma_cross", [SYMBOL])
        live = h.hoga.live_strategies
        alice_id = (await h.hoga.auth.find_user("alice")).id
        before = await _statuses(h, alice)

        assert await live.stop_user(alice_id) == 2
        assert not {a1, a2, paused} & set(live._runs) and b1 in live._runs
        # Statuses (and no error) stay for the server that takes the user over.
        assert await _statuses(h, alice) == before
        assert await live.stop_user(alice_id) == 0

        assert await live.start_user(alice_id) == 2
        assert {a1, a2} <= set(live._runs) and paused not in live._runs
        assert await live.start_user(alice_id) == 2  # again: nothing started twice
        assert sum(1 for r in live._runs.values() if r.rec.user_id == alice_id) == 2
        assert await _statuses(h, alice) == before
        assert live.status()["running"] == 3


async def test_start_user_does_nothing_while_the_server_is_paused(
    tmp_path: Path, db_url: str
) -> None:
    async with running(tmp_path, db_url) as h:
        alice = await h.user("alice", "basic")
        sid = await _started(h, alice, "a1", "sma_cross", [SYMBOL])
        live = h.hoga.live_strategies
        alice_id = (await h.hoga.auth.find_user("alice")).id
        await live.stop_user(alice_id)
        live.suspended = True
        assert await live.start_user(alice_id) == 0 and sid not in live._runs
        live.suspended = False
        assert await live.start_user(alice_id) == 1 and sid in live._runs


async def test_start_user_respects_the_tier_limit(tmp_path: Path, db_url: str) -> None:
    async with running(tmp_path, db_url) as h:
        alice = await h.user("alice", "basic")  # basic runs 3, free runs 1
        sids = [await _started(h, alice, f"s{n}", "sma_cross", [SYMBOL]) for n in range(2)]
        live = h.hoga.live_strategies
        alice_id = (await h.hoga.auth.find_user("alice")).id
        await live.stop_user(alice_id)
        # Lowered while another server ran them: the first starts, the second gets an error.
        await h.hoga.auth.admin_update(alice_id, actor_id=None, ip=None, tier="free")
        assert await live.start_user(alice_id) == 1
        assert sids[0] in live._runs and sids[1] not in live._runs
        status, error = (await _statuses(h, alice))[sids[1]]
        assert status == "error" and "tier allows 1" in error["message"]


async def test_open_orders_stay_across_a_handover_and_go_on_disable(
    tmp_path: Path, db_url: str, resting_plugin: None
) -> None:
    clock = ManualClock(datetime(2026, 11, 26, 10, 0, 5, tzinfo=KST))
    async with running(tmp_path, db_url, clock=clock, access_token_ttl=86_400) as h:
        alice = await h.user("alice", "basic")
        sid = await _started(h, alice, "rest", "resting", [SYMBOL])
        live = h.hoga.live_strategies
        alice_id = (await h.hoga.auth.find_user("alice")).id

        async def orders() -> list[dict[str, Any]]:
            r = await h.http.get("/api/orders", params={"strategy_id": sid}, headers=alice)
            found: list[dict[str, Any]] = r.json()["orders"]
            return found

        async def resting() -> bool:
            return [o["status"] for o in await orders()] == ["ACCEPTED"]

        await h.trade_until(resting, "the strategy's resting order")
        (order,) = await orders()

        assert await live.stop_user(alice_id) == 1
        # Handed over: the order still works at the broker, the strategy still says running.
        assert [o["status"] for o in await orders()] == ["ACCEPTED"]
        assert (await _statuses(h, alice))[sid] == ("running", None)

        assert await live.start_user(alice_id) == 1
        restored = live._runs[sid].ctx.open_orders()
        assert [o.order_id for o in restored] == [order["id"]]
        assert live._runs[sid].ctx.state["placed"] is True  # not placed a second time

        assert await live.disable_user(alice_id, "disabled for the test") == 1

        async def cancelled() -> bool:
            return [o["status"] for o in await orders()] == ["CANCELLED"]

        await h.trade_until(cancelled, "the order cancelled")
        status, error = (await _statuses(h, alice))[sid]
        assert status == "error" and error["message"] == "disabled for the test"
