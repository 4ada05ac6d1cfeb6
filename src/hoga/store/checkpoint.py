"""Write-ahead-log checkpoints for SQLite, off the event loop.

hoga runs SQLite statements inline on the event loop (``store/inline_sqlite.py``). SQLite's own
automatic checkpoint runs inside whichever commit crosses the WAL size threshold, so about one
commit in a hundred on the order path paid several milliseconds for copying pages - the whole
99th percentile of submit latency. The checkpointer copies them from a thread of its own (the
``sqlite3`` module releases the GIL while SQLite works), in PASSIVE mode, which never waits for
and never blocks readers or writers. The connection's automatic checkpoint stays on, at a larger
threshold, as a backstop should this thread fall behind.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
from pathlib import Path

log = logging.getLogger(__name__)

#: Pages the WAL may reach before a commit checkpoints inline (the backstop; ~80 MB at 4 KiB).
BACKSTOP_PAGES = 20_000


class WalCheckpointer:
    """Runs ``PRAGMA wal_checkpoint(PASSIVE)`` on ``path`` every ``interval`` seconds from a
    worker thread with its own connection. ``start``/``stop`` are idempotent; a failed
    checkpoint is logged and retried at the next interval, never raised."""

    def __init__(self, path: Path, interval: float = 1.0) -> None:
        self.path = path
        self.interval = interval
        self.runs = 0
        self._conn: sqlite3.Connection | None = None
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(
                self._loop(), name="sqlite-checkpoint"
            )

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._conn is not None:
            await asyncio.to_thread(self._conn.close)
            self._conn = None

    async def checkpoint(self) -> None:
        """One PASSIVE checkpoint now, in the worker thread."""
        await asyncio.to_thread(self._checkpoint)
        self.runs += 1

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            try:
                await self.checkpoint()
            except sqlite3.Error as e:
                log.warning("SQLite checkpoint failed (will retry): %s", e)

    def _checkpoint(self) -> None:
        if self._conn is None:
            self._conn = sqlite3.connect(self.path, check_same_thread=False, timeout=0)
        self._conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
