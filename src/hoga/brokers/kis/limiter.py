"""A per-app-key pacer for every REST call the adapter makes.

KIS counts requests per app key (kis.md §7), whatever they are: orders, reports, balance,
tokens. The dispatcher paces orders per account, but reports, balance queries, token issues and
reconciliation bypass it, so the adapter paces every call of a key through one of these.

The broker counts *arrivals*, which the client cannot see: a request can spend any time on the
way. So a slot is held from before the request leaves until its answer (or failure) is back,
and the window is measured from that end. A request that arrived no later than its answer
and a later one that left at least ``window`` after that answer cannot share a broker-side
window, however the network delays them - at the cost of one round trip of throughput per
window. It waits (never drops) and serves callers in order.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator


class PacerBusy(Exception):
    """The queue for the key did not free a slot within the caller's bound."""

    def __init__(self, waited: float) -> None:
        super().__init__(f"no request slot after {waited:.1f}s")
        self.waited = waited


class KeyPacer:
    """At most ``rate`` calls per ``window`` seconds, measured at the broker's end."""

    def __init__(self, rate: float, window: float = 1.0, margin: float = 0.01) -> None:
        if rate <= 0:
            raise ValueError("rate must be positive")
        if rate >= 1:
            self.limit, self.window = int(rate), window + margin
        else:
            self.limit, self.window = 1, window / rate + margin
        self._inflight = 0
        self._ended: list[float] = []
        self._changed = asyncio.Event()
        self._queue = asyncio.Lock()
        self.calls = 0
        self.waited = 0.0

    def _trim(self, now: float) -> None:
        cutoff = now - self.window
        self._ended = [t for t in self._ended if t > cutoff]

    @contextlib.asynccontextmanager
    async def slot(self, max_wait: float | None = None) -> AsyncIterator[None]:
        """Hold one request slot for the duration of the ``async with`` block.

        ``max_wait`` bounds the time spent queueing; past it ``PacerBusy`` is raised and
        nothing was sent.
        """
        loop = asyncio.get_running_loop()
        started = loop.time()
        deadline = None if max_wait is None else started + max_wait
        try:
            await asyncio.wait_for(self._queue.acquire(), max_wait)
        except TimeoutError:
            raise PacerBusy(loop.time() - started) from None
        try:
            while True:
                now = loop.time()
                self._trim(now)
                if self._inflight + len(self._ended) < self.limit:
                    break
                if deadline is not None and now >= deadline:
                    raise PacerBusy(now - started)
                self._changed.clear()
                timeout = min(self._ended) + self.window - now if self._ended else None
                if deadline is not None:
                    timeout = deadline - now if timeout is None else min(timeout, deadline - now)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._changed.wait(), timeout)
            self._inflight += 1
            self.calls += 1
            self.waited += loop.time() - started
        finally:
            self._queue.release()
        try:
            yield
        finally:
            self._inflight -= 1
            self._ended.append(loop.time())
            self._changed.set()

    def in_window(self) -> int:
        self._trim(asyncio.get_running_loop().time())
        return self._inflight + len(self._ended)
