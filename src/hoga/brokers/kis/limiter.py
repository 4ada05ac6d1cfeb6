"""A per-app-key pacer for every REST call the adapter makes.

KIS counts requests per app key (kis.md §7), whatever they are: orders, reports, balance,
tokens. The dispatcher paces orders per account, but reports, balance queries, token issues and
reconciliation bypass it, so the adapter paces every call of a key through one of these. It
waits (never drops) and keeps the domain's strict sliding window, widened by a small margin so
that network jitter cannot bunch requests together at the broker.
"""

from __future__ import annotations

import asyncio

from hoga.domain.ratelimit import SlidingWindow


class KeyPacer:
    """At most ``rate`` calls per ``window`` seconds; ``acquire()`` waits for a slot (FIFO)."""

    def __init__(self, rate: float, window: float = 1.0, margin: float = 0.05) -> None:
        if rate >= 1:
            self._window = SlidingWindow(int(rate), window, margin)
        else:
            self._window = SlidingWindow(1, window / rate, margin)
        self._lock = asyncio.Lock()
        self.waited = 0.0
        self.calls = 0

    @property
    def limit(self) -> int:
        return self._window.limit

    async def acquire(self) -> None:
        loop = asyncio.get_running_loop()
        async with self._lock:
            while True:
                now = loop.time()
                at = self._window.available_at(now)
                if at <= now:
                    self._window.record(now)
                    self.calls += 1
                    return
                self.waited += at - now
                await asyncio.sleep(at - now)

    def in_window(self) -> int:
        return self._window.in_window(asyncio.get_running_loop().time())
