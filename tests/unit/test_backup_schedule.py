"""HOGA_BACKUP_AT: the next run is always in the future and within one period."""

from __future__ import annotations

from datetime import datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from hoga.domain.clock import KST
from hoga.ops.schedule import parse_backup_at

_NOW = st.datetimes(min_value=datetime(2024, 1, 1), max_value=datetime(2030, 12, 31)).map(
    lambda d: d.replace(tzinfo=KST)
)


@given(now=_NOW, hour=st.integers(0, 23), minute=st.integers(0, 59))
def test_daily_runs_next_at_that_kst_time(now: datetime, hour: int, minute: int) -> None:
    run = parse_backup_at(f"{hour:02d}:{minute:02d}").next_after(now)
    assert now < run <= now + timedelta(days=1)
    local = run.astimezone(KST)
    assert (local.hour, local.minute, local.second) == (hour, minute, 0)


@given(now=_NOW, n=st.integers(1, 500), unit=st.sampled_from(["m", "h", "d"]))
def test_intervals_run_one_period_later(now: datetime, n: int, unit: str) -> None:
    seconds = n * {"m": 60, "h": 3600, "d": 86400}[unit]
    assert parse_backup_at(f"{n}{unit}").next_after(now) == now + timedelta(seconds=seconds)
