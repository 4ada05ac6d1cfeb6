"""The one pacer of every broker adapter: an app key's REST calls, counted as the broker counts.

KIS and Kiwoom both count requests per app key (kis.md §7, kiwoom.md A8), whatever they are:
orders, reports, balance, tokens. The dispatcher paces orders per account, but reports, balance
queries, token issues and reconciliation bypass it, so each adapter passes every call of a key
through one ``Pacer``.

The broker counts a request when it *arrives*, somewhere between our send and our receipt of
the answer, which the client cannot see. So a request holds a slot from before it leaves until
its answer (or failure) is back, and one more ``window`` after that: a new request goes out only
while fewer than ``limit`` requests are in flight or answered within the last ``window``. Then
no ``limit + 1`` requests can arrive within any broker-side window, however the network delays
them (the cost: throughput is ``limit`` per ``window`` + latency). Sends are therefore spaced by
at least the strict sliding window of ``hoga.domain.ratelimit`` too, since a send's slot lasts
at least ``window`` from the send. The pacer waits (never drops) and serves callers in order;
times come from the event loop's monotonic clock.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import AsyncIterator


class PacerBusy(Exception):
    """The queue for the key did not free a slot within the caller's bound (nothing sent)."""

    def __init__(self, waited: float) -> None:
        super().__init__(f"no request slot after {waited:.1f}s")
        self.waited = waited


class Pacer:
    """At most ``rate`` calls per ``window`` seconds (widened by ``margin``), measured at the
    broker's end. A fractional ``rate`` means one call per ``window / rate``."""

    def __init__(self, rate: float, window: float = 1.0, margin: float = 0.0) -> None:
        if rate <= 0:
            raise ValueError("rate must be positive")
        if rate >= 1:
            self.limit, self.window = int(rate), window + margin
        else:
            self.limit, self.window = 1, window / rate + margin
        self.inflight = 0
        self._answered: deque[float] = deque()
        self._changed = asyncio.Event()
        self._queue = asyncio.Lock()
        self.calls = 0
        self.waited = 0.0

    def _busy(self, now: float) -> int:
        cutoff = now - self.window
        done = self._answered
        while done and done[0] <= cutoff:
            done.popleft()
        return self.inflight + len(done)

    async def acquire(self, max_wait: float | None = None) -> None:
        """Wait for a slot and take it; pair every acquire with ``release``.

        ``max_wait`` bounds the time spent queueing; past it ``PacerBusy`` is raised and no
        slot was taken.
        """
        loop = asyncio.get_running_loop()
        started = loop.time()
        deadline = None if max_wait is None else started + max_wait
        waited = self._queue.locked()  # only time spent waiting counts in ``waited``
        try:
            await asyncio.wait_for(self._queue.acquire(), max_wait)
        except TimeoutError:
            raise PacerBusy(loop.time() - started) from None
        try:
            while True:
                now = loop.time()
                if self._busy(now) < self.limit:
                    break
                if deadline is not None and now >= deadline:
                    raise PacerBusy(now - started)
                waited = True
                self._changed.clear()
                timeout = self._answered[0] + self.window - now if self._answered else None
                if deadline is not None:
                    timeout = deadline - now if timeout is None else min(timeout, deadline - now)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._changed.wait(), timeout)
            self.inflight += 1
            self.calls += 1
            if waited:
                self.waited += loop.time() - started
        finally:
            self._queue.release()

    def release(self) -> None:
        """The request's answer (or failure) is in: its slot expires one window from now."""
        self.inflight -= 1
        self._answered.append(asyncio.get_running_loop().time())
        self._changed.set()

    @contextlib.asynccontextmanager
    async def slot(self, max_wait: float | None = None) -> AsyncIterator[None]:
        """Hold one slot for the duration of the ``async with`` block (see ``acquire``)."""
        await self.acquire(max_wait)
        try:
            yield
        finally:
            self.release()

    def in_window(self) -> int:
        """Requests in flight or answered within the last window."""
        return self._busy(asyncio.get_running_loop().time())
