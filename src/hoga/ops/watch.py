"""The server's operational watch: scheduled backups with retention, and disk space.

* Backups: with ``HOGA_BACKUP_DIR`` set, an archive is written at ``HOGA_BACKUP_AT`` (a daily
  KST time, or an interval) and all but the newest ``HOGA_BACKUP_KEEP`` are deleted. A failed
  backup is logged and raised as an admin alert (``backup_failed``); the next one is tried at
  the next scheduled time.
* Disk: every minute the free space of the data dir's file system is compared with
  ``HOGA_DISK_ALERT_PERCENT``; crossing below raises one ``disk_low`` admin alert (again only
  after it recovered above the threshold plus one point).

``alert(event, title, body)`` is whatever the server wires in (the notifier's admin alerts).
"""

from __future__ import annotations

import asyncio
import logging
import shutil
from collections.abc import Awaitable, Callable
from datetime import datetime
from pathlib import Path

from hoga.config import Settings
from hoga.domain.clock import Clock
from hoga.ops.backup import BackupResult, create_backup, prune
from hoga.ops.schedule import parse_backup_at

log = logging.getLogger(__name__)

Alert = Callable[[str, str, str], Awaitable[None]]


class OpsWatch:
    """See the module docstring."""

    def __init__(
        self,
        settings: Settings,
        clock: Clock,
        alert: Alert,
        *,
        on_backup: Callable[[str], None] | None = None,
        disk_usage: Callable[[Path], tuple[int, int, int]] | None = None,
    ) -> None:
        self.settings = settings
        self.clock = clock
        self.alert = alert
        self.on_backup = on_backup or (lambda _result: None)
        self.disk_usage = disk_usage or _disk_usage
        self.schedule = parse_backup_at(settings.backup_at)
        self.next_backup: datetime | None = (
            self.schedule.next_after(clock.now()) if settings.backup_dir else None
        )
        self.disk_low = False
        self.last_backup: BackupResult | None = None
        self.last_error: str | None = None

    async def run(self) -> None:
        while True:
            await asyncio.sleep(60.0)
            try:
                await self.check_disk()
                if self.next_backup is not None and self.clock.now() >= self.next_backup:
                    self.next_backup = self.schedule.next_after(self.clock.now())
                    await self.backup_now()
            except Exception:
                log.exception("operations watch round failed")

    async def backup_now(self) -> BackupResult | None:
        """One scheduled backup plus retention; a failure becomes an admin alert."""
        out = self.settings.backup_dir
        assert out is not None
        try:
            result = await create_backup(self.settings, Path(out))
            removed = prune(Path(out), self.settings.backup_keep)
        except Exception as e:
            self.last_error = f"{type(e).__name__}: {e}"
            self.on_backup("failed")
            log.error("scheduled backup failed: %s", self.last_error)
            await self.alert(
                "backup_failed",
                "hoga: 백업 실패 (backup failed)",
                f"예약 백업이 실패했습니다 (the scheduled backup into {out} failed): {self.last_error}",
            )
            return None
        self.last_backup, self.last_error = result, None
        self.on_backup("ok")
        if removed:
            log.info("backup retention: removed %d old archive(s)", len(removed))
        return result

    async def check_disk(self) -> float:
        """Free space of the data dir's disk in percent; alerts once when it falls too low."""
        data = Path(self.settings.data_dir)
        total, _used, free = await asyncio.to_thread(self.disk_usage, data)
        percent = 100.0 * free / total if total else 100.0
        threshold = self.settings.disk_alert_percent
        if percent < threshold and not self.disk_low:
            self.disk_low = True
            log.error("disk nearly full: %.1f%% free on the data dir's disk", percent)
            await self.alert(
                "disk_low",
                "hoga: 디스크 공간 부족 (disk nearly full)",
                f"데이터 디렉터리의 디스크 여유 공간이 {percent:.1f}%입니다 "
                f"(the data dir's disk has {percent:.1f}% free, below {threshold:g}%)",
            )
        elif percent >= threshold + 1.0 and self.disk_low:
            self.disk_low = False
            log.info("disk space recovered: %.1f%% free", percent)
        return percent


def _disk_usage(path: Path) -> tuple[int, int, int]:
    usage = shutil.disk_usage(path if path.exists() else Path("."))
    return usage.total, usage.used, usage.free
