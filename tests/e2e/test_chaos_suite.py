"""The short version of ``make chaos`` (``benchmarks/chaos``), run with every ``make test``.

Two cycles - one on SQLite, one on PostgreSQL - of an order burst against paper, the KIS fake
and the Kiwoom fake (journals and fault plans on), a fake killed -9 and the server's PostgreSQL
sessions terminated mid-burst, the server killed with SIGKILL after a seeded number of answers,
started again, settled and checked from hoga's database and the fakes' own records.

One run, two verdicts: nothing acknowledged lost, nothing at a broker twice, nothing unmatched
or stuck; and hoga's books (positions and cash) equal its fills and the brokers' own books.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from benchmarks.chaos.run import Config, Totals, run

pytestmark = [pytest.mark.chaos, pytest.mark.postgres, pytest.mark.timeout(1200)]


@pytest.fixture(scope="module")
def chaos_run(tmp_path_factory: pytest.TempPathFactory, pg_available: None) -> Totals:
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
        workdir=Path(tmp_path_factory.mktemp("chaos")),
    )
    return asyncio.run(run(cfg))


def test_short_chaos_run_loses_nothing_and_sends_nothing_twice(chaos_run: Totals) -> None:
    t = chaos_run
    assert t.cycles == 2, t.summary(2)
    assert t.acked > 0, "no order was acknowledged: the run tested nothing"
    found = {**t.lost, **t.duplicated, **t.unmatched, **t.stuck}
    assert not found, "\n".join([t.summary(2), *found.values()])


def test_short_chaos_run_books_equal_the_brokers(chaos_run: Totals) -> None:
    t = chaos_run
    assert t.cycles == 2, t.summary(2)
    assert not t.books, "\n".join([t.summary(2), *t.books.values()])
