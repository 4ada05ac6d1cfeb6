"""``hoga.tasks.cancel_and_wait``: every task cancelled before any is awaited; a task's own
failure raised unless swallowed."""

from __future__ import annotations

import asyncio

import pytest

from hoga.tasks import cancel_and_wait


async def _forever(log: list[str], name: str) -> None:
    try:
        await asyncio.Event().wait()
    finally:
        log.append(name)


async def _fails() -> None:
    raise ValueError("boom")


async def test_cancels_all_and_waits_for_each() -> None:
    log: list[str] = []
    tasks = [asyncio.create_task(_forever(log, n)) for n in ("a", "b")]
    await asyncio.sleep(0)
    await cancel_and_wait(t for t in tasks)
    assert sorted(log) == ["a", "b"]
    assert all(t.cancelled() for t in tasks)


async def test_a_tasks_failure_is_raised_unless_swallowed() -> None:
    failed = asyncio.create_task(_fails())
    await asyncio.sleep(0)
    with pytest.raises(ValueError, match="boom"):
        await cancel_and_wait([failed])
    log: list[str] = []
    failed = asyncio.create_task(_fails())
    other = asyncio.create_task(_forever(log, "other"))
    await asyncio.sleep(0)
    await cancel_and_wait([failed, other], swallow_errors=True)
    assert log == ["other"]
