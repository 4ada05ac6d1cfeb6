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


async def test_a_callers_timeout_reaches_the_caller() -> None:
    """Cancelling the waiter (``wait_for`` timing out a ``stop()``) is not swallowed as if it
    were the awaited task's own expected cancellation."""
    release = asyncio.Event()

    async def slow_to_stop() -> None:
        try:
            await asyncio.Event().wait()
        finally:
            await release.wait()  # a clean-up that takes its time

    task = asyncio.create_task(slow_to_stop())
    await asyncio.sleep(0)
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(cancel_and_wait([task]), 0.05)
    release.set()
    await asyncio.gather(task, return_exceptions=True)


async def test_a_stop_inside_a_cancelled_task_still_waits_for_every_task() -> None:
    """Shutdown on a signal runs stop() in a task already being cancelled: that older
    cancellation must not end the waiting after the first task."""
    log: list[str] = []
    children = [asyncio.create_task(_forever(log, n)) for n in ("a", "b")]
    entered = asyncio.Event()

    async def server() -> None:
        try:
            entered.set()
            await asyncio.Event().wait()
        finally:
            await cancel_and_wait(children)
            log.append("stopped")

    main = asyncio.create_task(server())
    await entered.wait()
    main.cancel()
    with pytest.raises(asyncio.CancelledError):
        await main
    assert sorted(log) == ["a", "b", "stopped"]
