"""Strict sliding-window rate limits.

A broker that allows "18 requests per second" must never see 19 in any one-second window - a
token bucket would let a burst of 18 follow a full bucket's worth and exceed that. A sliding
window keeps the timestamps of the last ``limit`` events and allows the next one only when the
oldest has left the window. An optional safety margin widens the window a little so network
jitter cannot bunch requests up at the broker.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from typing import Protocol


class RateLimit(Protocol):
    """What the dispatcher asks of a limit: ``SlidingWindow`` here, or a cap shared by the
    servers of a cluster (``hoga.cluster.quota.SharedQuota``). ``limit`` is what this process
    may use now; ``record`` is called only after ``available_at(now) <= now``."""

    @property
    def limit(self) -> int: ...

    @property
    def window(self) -> float: ...

    def available_at(self, now: float) -> float: ...

    def record(self, now: float) -> None: ...

    def in_window(self, now: float) -> int: ...


class SlidingWindow:
    """At most ``limit`` events in any ``window`` seconds (times from the caller's clock)."""

    __slots__ = ("_events", "limit", "window")

    def __init__(self, limit: int, window: float = 1.0, margin: float = 0.0) -> None:
        if limit < 1:
            raise ValueError("a rate limit allows at least one event per window")
        self.limit = limit
        self.window = window + margin
        self._events: deque[float] = deque()

    @classmethod
    def per_second(cls, rate: float, margin: float = 0.0) -> SlidingWindow:
        """``rate`` per second; fractional rates become 1 per ``1/rate`` seconds."""
        if rate >= 1:
            return cls(int(rate), 1.0, margin)
        return cls(1, 1.0 / rate, margin)

    def _trim(self, now: float) -> None:
        # "t + window <= now", not "t <= now - window": the two differ in floating point,
        # and only this form agrees with available_at() (which answers t + window), so an
        # event never leaves the window before the time we said it would.
        ev = self._events
        window = self.window
        while ev and ev[0] + window <= now:
            ev.popleft()

    def available_at(self, now: float) -> float:
        """The earliest time (>= now) at which one more event is allowed."""
        self._trim(now)
        if len(self._events) < self.limit:
            return now
        return self._events[0] + self.window

    def try_acquire(self, now: float) -> bool:
        if self.available_at(now) <= now:
            self._events.append(now)
            return True
        return False

    def record(self, now: float) -> None:
        self._events.append(now)

    def in_window(self, now: float) -> int:
        self._trim(now)
        return len(self._events)


def available_at(limits: Iterable[RateLimit], now: float) -> float:
    """When every limiter allows one more event."""
    return max((lim.available_at(now) for lim in limits), default=now)


def acquire_all(limits: Iterable[RateLimit], now: float) -> bool:
    """Take one slot from every limiter, or none if any is full."""
    lims = list(limits)
    if available_at(lims, now) > now:
        return False
    for lim in lims:
        lim.record(now)
    return True
