"""Applying sign-in changes made anywhere - this server's API, ``hoga user disable`` from a
shell, another process - within a fraction of a second.

Whoever disables a user or ends a session writes an ``auth_changes`` row in the same
transaction (``security/auth.py``); the process's memory is not where the truth lives. The
running server's ``AuthChangeWatcher`` polls that outbox every ``interval`` (0.25 s) and, for
each new row, drops the ``AuthService`` caches it made stale and calls its listeners: the
composition root stops a disabled user's strategies, the API closes WebSockets of the user or
the ended session. A change written by this process wakes the watcher at once.

Listeners must be idempotent: a change may be seen twice (written here and read back).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from datetime import timedelta

from hoga.domain.clock import Clock
from hoga.domain.errors import StorageUnavailable
from hoga.security.auth import AuthService
from hoga.store.db import SYSTEM, Database
from hoga.store.repos import auth_changes as repo
from hoga.store.repos.auth_changes import SESSION_REVOKED as SESSION_REVOKED
from hoga.store.repos.auth_changes import USER_DISABLED as USER_DISABLED
from hoga.store.repos.auth_changes import AuthChange as AuthChange
from hoga.tasks import cancel_and_wait

log = logging.getLogger(__name__)

Listener = Callable[[AuthChange], Awaitable[None]]
#: Rows older than this are deleted (every server has long read them).
KEEP = timedelta(days=1)


class AuthChangeWatcher:
    """Polls ``auth_changes`` and applies each new row once, in order (see module doc)."""

    def __init__(
        self, db: Database, auth: AuthService, clock: Clock, *, interval: float = 0.25
    ) -> None:
        self._db = db
        self._auth = auth
        self._clock = clock
        self.interval = interval
        self.listeners: list[Listener] = []
        self._last = 0
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._polls = 0
        auth.on_change_written.append(self._wake.set)

    async def start(self) -> None:
        """Skip what happened before this server started (its caches are empty anyway)."""
        async with self._db.tx(SYSTEM) as conn:
            self._last = await repo.last_id(conn)
        self._task = asyncio.get_running_loop().create_task(self._run(), name="auth-changes")

    def wake(self) -> None:
        """Poll now rather than at the next interval (another server wrote a change)."""
        self._wake.set()

    async def stop(self) -> None:
        if self._task is not None:
            await cancel_and_wait([self._task])
            self._task = None

    async def poll(self) -> int:
        """Apply every change written since the last poll; returns how many."""
        async with self._db.tx(SYSTEM) as conn:
            rows = await repo.since(conn, self._last)
        for change in rows:
            self._last = change.id
            self._auth.apply_change(change)
            for listener in self.listeners:
                try:
                    await listener(change)
                except Exception:
                    log.exception("applying %s of user %s failed", change.kind, change.user_id)
        self._polls += 1
        if self._polls % 14_400 == 0:  # about hourly
            async with self._db.tx(SYSTEM) as conn:
                await repo.prune(conn, self._clock.now() - KEEP, self._last)
        return len(rows)

    async def _run(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.interval)
            self._wake.clear()
            try:
                await self.poll()
            except StorageUnavailable as e:
                log.warning("auth changes not read: storage fault (%s)", e.code)
                await asyncio.sleep(1.0)
            except Exception:
                log.exception("reading auth changes failed")
                await asyncio.sleep(1.0)
