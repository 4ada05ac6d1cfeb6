"""A running strategy rides out a full disk: state saves and order submissions that meet a
storage fault are retried later, and the strategy keeps running instead of stopping with an
error."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from hoga.domain.market import Bar
from hoga.store import tables as t
from hoga.store.db import SYSTEM
from hoga.strategies.base import Strategy, StrategyParams
from tests.helpers import eventually, running
from tests.integration.test_pipeline_faults import _fault, _heal
from tests.integration.test_strategies_api import _clock, _minutes, _placed, _started
from tests.plugins import plug_in

SYMBOL = "005930"


class CountingStrategy(Strategy[StrategyParams]):
    """Test plugin: counts bars in its state (so every bar asks for a state save)."""

    kind = "counting"
    name = "카운터"
    name_en = "Counter"
    description = "테스트용: 봉을 센다"
    description_en = "test plugin: counts bars"

    def on_bar(self, bar: Bar) -> None:
        self.ctx.state["bars"] = self.ctx.state.get("bars", 0) + 1


@pytest.fixture
def counting_plugin(monkeypatch: pytest.MonkeyPatch) -> None:
    plug_in(monkeypatch, ("counting", f"{__name__}:CountingStrategy"))


async def _saved_bars(h: Any, sid: int) -> int:
    async with h.hoga.db.tx(SYSTEM) as conn:
        row = (await conn.execute(t.strategies.select().where(t.strategies.c.id == sid))).one()
    return int((row.state or {}).get("bars", 0))


@pytest.mark.usefixtures("counting_plugin")
async def test_a_strategy_keeps_running_through_a_full_disk(
    tmp_path: Path, sqlite_url: str
) -> None:
    clock = _clock()
    async with running(tmp_path, sqlite_url, clock=clock, access_token_ttl=86_400) as h:
        alice = await h.user("alice", "basic")
        sid = await _started(h, alice, "count", "counting", [SYMBOL])
        await _placed(h, SYMBOL)
        await _fault(h, "strategies", "UPDATE", "1")
        await _minutes(h, clock, 4)
        run = h.hoga.live_strategies._runs.get(sid)
        assert run is not None and run.ctx.state.get("bars", 0) >= 2  # it went on counting
        view = (await h.http.get(f"/api/strategies/{sid}", headers=alice)).json()
        assert view["status"] == "running" and view["last_error"] is None
        await _heal(h, "strategies")
        counted = run.ctx.state["bars"]
        await _minutes(h, clock, 2)

        async def saved() -> bool:
            return await _saved_bars(h, sid) >= counted

        await eventually(saved, 10.0, "the state to be saved once there is room")
