"""The lighter install (issue 15): optional libraries missing give clear answers, not crashes;
the SVG chart's axis arithmetic; the database wait's back-off; the local URL of a server."""

from __future__ import annotations

import builtins
import math
import os
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from hoga.api import web
from hoga.backtest.svg import nice_ticks
from hoga.config import load_settings
from hoga.marketdata.feeds.replay import ReplayFormatError, load_events
from hoga.net import local_url
from hoga.store.db import DatabaseUnavailable
from hoga.store.wait import retry_unreachable


def _without(monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    real = builtins.__import__

    def fake(mod: str, *args: Any, **kwargs: Any) -> Any:
        if mod == name or mod.startswith(name + "."):
            raise ModuleNotFoundError(f"No module named {mod!r}", name=mod)
        return real(mod, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", fake)


def test_replaying_parquet_without_pyarrow_names_the_extra(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "ticks.parquet"
    path.write_bytes(b"PAR1")
    _without(monkeypatch, "pyarrow")
    with pytest.raises(ReplayFormatError, match=r"hoga\[parquet\]"):
        load_events(path)


async def test_vendor_plotly_is_404_without_the_package(monkeypatch: pytest.MonkeyPatch) -> None:
    from fastapi import FastAPI

    from hoga.api.errors import install_error_handlers

    monkeypatch.setattr(web, "plotly_js_path", lambda: None)
    app = FastAPI()
    install_error_handlers(app)
    app.include_router(web.router)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://t"
    ) as http:
        r = await http.get("/vendor/plotly.min.js")
    assert r.status_code == 404
    assert r.json()["error"]["code"] == "web.plotly_missing"


@given(
    lo=st.floats(min_value=-1e12, max_value=1e12, allow_nan=False),
    width=st.floats(min_value=1e-3, max_value=1e12, allow_nan=False),
)
def test_nice_ticks_cover_the_range_with_round_steps(lo: float, width: float) -> None:
    # A chart's range is never a millionth of its magnitude; below that floats run out.
    assume(width >= abs(lo) * 1e-6)
    hi = lo + width
    ticks = nice_ticks(lo, hi)
    assert ticks, (lo, hi)
    assert all(lo - 1e-6 * width <= t <= hi + 1e-6 * width for t in ticks)
    assert 1 <= len(ticks) <= 11
    if len(ticks) > 1:
        step = (ticks[-1] - ticks[0]) / (len(ticks) - 1)
        mantissa = step / 10 ** math.floor(math.log10(step))
        assert any(math.isclose(mantissa, m, rel_tol=1e-6) for m in (1, 2, 5, 10))


class FakeTime:
    """An injected clock for the wait loop: sleeping advances it."""

    def __init__(self) -> None:
        self.now = 100.0
        self.sleeps: list[float] = []

    def monotonic(self) -> float:
        return self.now

    async def sleep(self, s: float) -> None:
        self.sleeps.append(s)
        self.now += s


async def test_database_wait_backs_off_then_gives_the_last_error() -> None:
    t = FakeTime()
    calls = 0

    async def attempt() -> str:
        nonlocal calls
        calls += 1
        raise DatabaseUnavailable(f"connection refused #{calls}", code="db.unreachable")

    with pytest.raises(DatabaseUnavailable, match="#8"):  # a last try at the deadline
        await retry_unreachable(attempt, 20.0, monotonic=t.monotonic, sleep=t.sleep)
    assert t.sleeps == [0.5, 1.0, 2.0, 4.0, 5.0, 5.0, 2.5]
    assert sum(t.sleeps) == 20.0


async def test_database_wait_returns_once_the_database_answers() -> None:
    t = FakeTime()
    answers = iter([DatabaseUnavailable("down", code="db.unreachable"), None])

    async def attempt() -> str:
        err = next(answers)
        if err:
            raise err
        return "locked"

    assert await retry_unreachable(attempt, 60, monotonic=t.monotonic, sleep=t.sleep) == "locked"
    assert t.sleeps == [0.5]


async def test_no_wait_fails_at_once_and_other_errors_are_not_retried() -> None:
    t = FakeTime()

    async def down() -> None:
        raise DatabaseUnavailable("down", code="db.unreachable")

    with pytest.raises(DatabaseUnavailable):
        await retry_unreachable(down, 0, monotonic=t.monotonic, sleep=t.sleep)

    async def broken() -> None:
        raise RuntimeError("another server holds the lock")

    with pytest.raises(RuntimeError):
        await retry_unreachable(broken, 60, monotonic=t.monotonic, sleep=t.sleep)
    assert t.sleeps == []


@pytest.mark.parametrize(
    ("host", "url"),
    [
        ("0.0.0.0", "http://127.0.0.1:8123"),
        ("::", "http://[::1]:8123"),
        ("127.0.0.1", "http://127.0.0.1:8123"),
        ("::1", "http://[::1]:8123"),
    ],
)
def test_healthcheck_reaches_a_wildcard_listener_over_loopback(
    host: str, url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    for k in [k for k in os.environ if k.startswith("HOGA_")]:
        monkeypatch.delenv(k)
    assert local_url(load_settings(host=host, port=8123)) == url
