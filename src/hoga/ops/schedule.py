"""``HOGA_BACKUP_AT``: a daily KST time (``03:30``) or an interval (``6h``, ``30m``, ``90s``)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, time, timedelta

from hoga.domain.clock import KST

_INTERVAL = re.compile(r"^\s*(\d+)\s*([smhd])\s*$")
_DAILY = re.compile(r"^\s*(\d{1,2}):(\d{2})\s*$")
_UNIT = {"s": 1, "m": 60, "h": 3600, "d": 86400}


@dataclass(frozen=True)
class BackupSchedule:
    """Either ``daily`` at a KST wall-clock time, or ``every`` N seconds."""

    daily: time | None = None
    every: float | None = None

    def next_after(self, now: datetime) -> datetime:
        """The first run strictly after ``now`` (an aware datetime)."""
        if self.every is not None:
            return now + timedelta(seconds=self.every)
        assert self.daily is not None
        local = now.astimezone(KST)
        run = local.replace(hour=self.daily.hour, minute=self.daily.minute, second=0, microsecond=0)
        if run <= local:
            run += timedelta(days=1)
        return run


def parse_backup_at(text: str) -> BackupSchedule:
    """Parse ``HOGA_BACKUP_AT``; ValueError with what is expected otherwise."""
    m = _INTERVAL.match(text)
    if m:
        seconds = int(m.group(1)) * _UNIT[m.group(2)]
        if seconds < 60:
            raise ValueError("a backup interval must be at least 60 s")
        return BackupSchedule(every=float(seconds))
    m = _DAILY.match(text)
    if m and int(m.group(1)) < 24 and int(m.group(2)) < 60:
        return BackupSchedule(daily=time(int(m.group(1)), int(m.group(2))))
    raise ValueError(f"expected HH:MM (KST, daily) or an interval like 6h or 30m, got {text!r}")
