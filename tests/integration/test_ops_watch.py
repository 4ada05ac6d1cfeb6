"""Scheduled backups (retention, a failure is an admin alert) and the disk-space alert."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pytest

from hoga.domain.clock import KST, ManualClock
from hoga.ops.backup import archives
from hoga.ops.schedule import BackupSchedule, parse_backup_at
from hoga.ops.watch import OpsWatch
from tests.helpers import make_settings, running


def test_backup_at_is_a_kst_time_or_an_interval() -> None:
    daily = parse_backup_at("03:30")
    at = datetime(2026, 12, 4, 3, 29, tzinfo=KST)
    assert daily.next_after(at) == datetime(2026, 12, 4, 3, 30, tzinfo=KST)
    assert daily.next_after(at.replace(minute=30)) == datetime(2026, 12, 5, 3, 30, tzinfo=KST)
    assert parse_backup_at("6h") == BackupSchedule(every=21600.0)
    for bad in ("25:00", "3h30", "10s", "", "daily"):
        with pytest.raises(ValueError, match=r"expected HH:MM|at least 60"):
            parse_backup_at(bad)


async def test_scheduled_backups_keep_the_newest_and_alert_on_failure(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'var' / 'hoga.db'}"
    async with running(tmp_path, url, backup_dir=tmp_path / "backups", backup_keep=2) as h:
        alerts: list[tuple[str, str, str]] = []

        async def alert(event: str, title: str, body: str) -> None:
            alerts.append((event, title, body))

        watch = OpsWatch(h.hoga.settings, h.hoga.clock, alert)
        for _ in range(3):
            assert await watch.backup_now() is not None
        assert len(archives(tmp_path / "backups")) == 2
        assert alerts == []

        # The backup dir cannot be created (a file is in the way): one admin alert.
        blocked = tmp_path / "blocked"
        blocked.write_text("not a directory")
        broken = OpsWatch(
            make_settings(tmp_path, url, backup_dir=blocked / "sub"), h.hoga.clock, alert
        )
        assert await broken.backup_now() is None
        assert [a[0] for a in alerts] == ["backup_failed"]
        assert "backup failed" in alerts[0][1]


async def test_disk_alert_once_until_recovered(tmp_path: Path) -> None:
    free = [50]
    alerts: list[str] = []

    async def alert(event: str, title: str, body: str) -> None:
        alerts.append(event)

    settings = make_settings(tmp_path, "sqlite+aiosqlite:///x.db", disk_alert_percent=5)
    watch = OpsWatch(
        settings,
        ManualClock(datetime(2026, 12, 4, 9, tzinfo=KST)),
        alert,
        disk_usage=lambda _p: (100, 100 - free[0], free[0]),
    )
    for value, expected in (
        (50, []),
        (4, ["disk_low"]),
        (3, ["disk_low"]),
        (5, ["disk_low"]),
        (7, ["disk_low"]),
        (2, ["disk_low", "disk_low"]),
    ):
        free[0] = value
        await watch.check_disk()
        assert alerts == expected, value
