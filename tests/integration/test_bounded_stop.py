"""``HogaApp.stop()`` is bounded (``STOP_DEADLINE``), so a service manager's stop timeout can be
set from it (deploy/hoga.service, the Dockerfile): a part that hangs on shutdown is cut off,
and the parts after it - the database and the one-server lock - are still closed."""

from __future__ import annotations

import asyncio
import fcntl
import os
from pathlib import Path
from typing import Any

import pytest

from hoga.server import shutdown as app_mod
from tests.helpers import running


async def test_a_hanging_part_does_not_keep_the_lock(
    tmp_path: Path, sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(app_mod, "STOP_DEADLINE", 1.0)
    budgets: list[float] = []
    real_wait_for = asyncio.wait_for

    async def spy(aw: Any, timeout: float | None) -> Any:  # noqa: ASYNC109 - wait_for's shape
        budgets.append(timeout or 0.0)
        return await real_wait_for(aw, timeout)

    async with running(tmp_path, sqlite_url) as h:
        lock = h.hoga.data_dir / "hoga.lock"
        hung = asyncio.Event()

        async def never_stops() -> None:
            hung.set()
            await asyncio.Event().wait()

        monkeypatch.setattr(h.hoga.live_strategies, "stop", never_stops)
        monkeypatch.setattr(h.hoga.reconciler, "stop", never_stops)
        monkeypatch.setattr(app_mod.asyncio, "wait_for", spy)
    assert hung.is_set()
    # The two hanging steps shared the 1 s deadline (not 3 s each); later steps got 0.5 s.
    assert budgets[0] + budgets[2] <= 1.0 + 1e-6
    assert all(b <= 3.0 for b in budgets)
    # The data directory's lock is free again: another server could start now.
    fd = os.open(lock, os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    finally:
        os.close(fd)
    assert h.hoga.db._engine is None
