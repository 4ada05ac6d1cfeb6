"""Stopping background tasks: cancel the asyncio tasks a part owns, then wait for them.

A leaf module (it imports nothing from hoga), so any room may use it except the adapters
(``brokers/``, ``marketdata/feeds/``), which import only ``hoga.domain``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any


async def cancel_and_wait(
    tasks: Iterable[asyncio.Task[Any]], *, swallow_errors: bool = False
) -> None:
    """Cancel every task, then wait for each to end.

    All are cancelled before the first is awaited, so they wind down together. A task's
    ``CancelledError`` is expected and dropped; any other exception a task ended with is raised
    (the remaining tasks are then not awaited) unless ``swallow_errors``, for tasks whose
    failure was already reported or does not matter once they are stopped.
    """
    pending = list(tasks)
    for task in pending:
        task.cancel()
    current = asyncio.current_task()
    # A stop() may itself run in a task being cancelled (shutdown on a signal): that
    # cancellation was asked before we started and must not cut the waiting short. One asked
    # while we wait (a caller's timeout) must reach the caller.
    cancelled_before = current.cancelling() if current is not None else 0
    for task in pending:
        try:
            await task
        except asyncio.CancelledError:
            if current is not None and current.cancelling() > cancelled_before:
                raise
        except Exception:
            if not swallow_errors:
                raise
