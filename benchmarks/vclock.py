"""A virtual-time asyncio event loop for simulations that must run faster than the clock.

When nothing is ready to run, time jumps to the next scheduled timer, so a 500-second burst at
10 orders/s finishes in a moment while every ``loop.time()``-based rate decision sees exactly
the times it would in real life. Only for code with no real I/O (no sockets, no threads): a
wait on a thread would be skipped over.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


class VirtualTimeLoop(asyncio.SelectorEventLoop):
    """See the module docstring."""

    def __init__(self) -> None:
        super().__init__()
        self._now = 0.0

    def time(self) -> float:
        return self._now

    def _run_once(self) -> None:
        ready: Any = self._ready  # type: ignore[attr-defined]
        scheduled: Any = self._scheduled  # type: ignore[attr-defined]
        if scheduled:
            nxt = min((h._when for h in scheduled if not h._cancelled), default=None)
            # Jump when idle; also when the next timer is due within the clock's resolution,
            # since the loop runs such timers early and time must not stand still for them.
            if (
                nxt is not None
                and nxt > self._now
                and (not ready or nxt - self._now <= self._clock_resolution)
            ):
                self._now = nxt
        super()._run_once()  # type: ignore[misc]


def run_virtual(coro: Coroutine[Any, Any, T]) -> T:
    loop = VirtualTimeLoop()
    try:
        return loop.run_until_complete(coro)
    finally:
        loop.close()
