"""The short version of ``make chaos`` (``benchmarks/chaos``), run with every ``make test``.

Two cycles - one on SQLite, one on PostgreSQL - of an order burst against paper, the KIS fake
and the Kiwoom fake (journals and fault plans on), the server killed with SIGKILL at a random
moment, started again, settled and checked from hoga's database and the fakes' own records:
nothing acknowledged lost, nothing at a broker twice, nothing stuck, books equal.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from benchmarks.chaos.run import Config, run


@pytest.mark.chaos
@pytest.mark.postgres
@pytest.mark.timeout(900)
async def test_short_chaos_run_loses_nothing_and_books_agree(
    tmp_path: Path, pg_available: None
) -> None:
    cfg = Config(
        cycles=2,
        databases=("sqlite", "postgres"),
        per_broker=1,
        orders=8,
        rate=10.0,
        seed=20261126,
        fake_kill=1.0,
        pg_terminate=1.0,
        settle=120.0,
        workdir=tmp_path / "chaos",
    )
    totals = await run(cfg)
    found = {**totals.lost, **totals.duplicated, **totals.unmatched, **totals.stuck, **totals.books}
    assert totals.cycles == 2, totals.summary(2)
    assert totals.acked > 0, "no order was acknowledged: the run tested nothing"
    assert not found, "\n".join([totals.summary(2), *found.values()])
