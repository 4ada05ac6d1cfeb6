"""The instrument sync against a database: it replaces the table, applies to the universe and
refuses a stub listing; a fresh start loads what was synced."""

from __future__ import annotations

from pathlib import Path

import pytest

from hoga.domain.clock import ManualClock
from hoga.domain.market import Listing
from hoga.fakes.master import generate_master
from hoga.marketdata.instruments import InstrumentService, SyncRefused
from hoga.marketdata.universe import Universe, bundled_universe
from hoga.store.db import Database


class _Source:
    name = "test"

    def __init__(self, listings: list[Listing]) -> None:
        self._listings = listings

    async def listings(self) -> list[Listing]:
        return self._listings


async def test_sync_replaces_the_table_applies_to_the_universe_and_refuses_a_stub(
    tmp_path: Path, clock: ManualClock
) -> None:
    db = Database(f"sqlite+aiosqlite:///{tmp_path / 'm.db'}")
    await db.migrate()
    await db.start()
    try:
        universe = Universe(bundled_universe())
        svc = InstrumentService(db, clock, universe, apply=True, bundle=bundled_universe())
        m = list(generate_master())
        res = await svc.sync(_Source(m))
        assert res.symbols == len(m) and len(universe) == len(m)
        inst = universe.get("095340")
        assert inst is not None and inst.base_price == 61_200
        with pytest.raises(SyncRefused):
            await svc.sync(_Source(m[:20]))
        assert len(universe) == len(m)
        fresh = Universe(bundled_universe())
        loader = InstrumentService(db, clock, fresh, apply=True, bundle=bundled_universe())
        assert await loader.load() == len(m) and "095340" in fresh
        demo = Universe(bundled_universe())
        assert await InstrumentService(db, clock, demo, apply=False).load() == len(m)
        assert "095340" not in demo  # the simulator keeps its demo universe
    finally:
        await db.close()
