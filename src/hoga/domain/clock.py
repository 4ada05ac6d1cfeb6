"""Clocks. Code reads time only through a Clock so tests and simulations can control it."""

from __future__ import annotations

import time as _time
from datetime import datetime, timedelta
from typing import Protocol
from zoneinfo import ZoneInfo

KST = ZoneInfo("Asia/Seoul")


class Clock(Protocol):
    """Wall time (aware, KST) and a monotonic counter for measuring intervals."""

    def now(self) -> datetime: ...

    def time(self) -> float: ...

    def monotonic(self) -> float: ...


class SystemClock:
    """The real clock."""

    def now(self) -> datetime:
        return datetime.now(KST)

    def time(self) -> float:
        return _time.time()

    def monotonic(self) -> float:
        return _time.monotonic()


class ManualClock:
    """A clock that moves only when told to (tests, simulations)."""

    def __init__(self, start: datetime) -> None:
        if start.tzinfo is None:
            raise ValueError("ManualClock needs an aware datetime")
        self._t = start.timestamp()
        self._mono = 0.0

    def now(self) -> datetime:
        return datetime.fromtimestamp(self._t, KST)

    def time(self) -> float:
        return self._t

    def monotonic(self) -> float:
        return self._mono

    def advance(self, seconds: float | timedelta) -> None:
        s = seconds.total_seconds() if isinstance(seconds, timedelta) else float(seconds)
        if s < 0:
            raise ValueError("time does not go backwards")
        self._t += s
        self._mono += s

    def set(self, when: datetime) -> None:
        self.advance(when.timestamp() - self._t)
