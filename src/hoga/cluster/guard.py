"""The guard a clustered server runs under, in place of the single-server guard.

Several servers share one database, so the PostgreSQL advisory lock that keeps a second server
out is not taken; what keeps two servers from sending one user's orders is the user lease
(``leases.py``). What stays: one process per data directory (the paper broker's journal and
the key files live there). What is new: PostgreSQL is required - SQLite is one file on one
machine and cannot be shared - and NATS must be reachable at start-up (``acquire`` connects
the bus and registers the member; a second live server with the same instance id is refused),
and the vault key and token secret must be given in the settings, the same on every server.
``check`` is True while NATS is connected: the watch loop asks every 5 s and, while it is
False, the send gate holds every send (``server.lock_lost``, shown by ``GET /ready`` as a
degraded dispatcher) - a belt on top of the leases' own fence.
"""

from __future__ import annotations

import time
from pathlib import Path

from sqlalchemy.engine import make_url

from hoga.cluster.bus import ClusterBus
from hoga.cluster.members import DuplicateInstance, Members
from hoga.config import ConfigError, Settings
from hoga.store.instance_lock import LOCK_FILE, FileLock, ServerRunning


class ClusterGuard:
    """``ServerGuard`` for cluster mode (see the module docstring)."""

    def __init__(
        self, settings: Settings, data_dir: Path, bus: ClusterBus, members: Members
    ) -> None:
        database_url = settings.sqlalchemy_url
        if settings.master_key is None or settings.jwt_secret is None:
            # Each server would make its own key files: another server could neither read the
            # accounts' credentials nor accept the users' tokens.
            raise ConfigError(
                "cluster mode needs the same HOGA_MASTER_KEY and HOGA_JWT_SECRET on every "
                "server (the per-data-directory key files cannot be shared)"
            )
        if make_url(database_url).get_backend_name() != "postgresql":
            raise ConfigError(
                "cluster mode (HOGA_CLUSTER_NATS_URL) needs PostgreSQL: the servers of a "
                "cluster share one database, and SQLite is a file on one machine "
                "(set HOGA_DATABASE_URL=postgresql+asyncpg://...)"
            )
        self.data_dir = data_dir
        self.file = FileLock(data_dir / LOCK_FILE)
        self.bus = bus
        self.members = members
        self.lost = False
        self.acquired_at: float | None = None

    async def acquire(self) -> None:
        self.file.acquire(f"data directory {self.data_dir}")
        try:
            try:
                await self.bus.start()
            except Exception as e:
                raise ConfigError(
                    f"cluster mode: NATS at {self.bus.url} is not reachable "
                    f"({type(e).__name__}); a clustered server does not start alone"
                ) from None
            try:
                await self.members.start()
            except DuplicateInstance as e:
                raise ServerRunning(f"{e}; stop it first", "server.already_running") from None
        except BaseException:
            await self.bus.stop()
            self.file.release()
            raise
        self.acquired_at = time.time()

    async def check(self) -> bool:
        ok = self.bus.connected
        self.lost = not ok
        return ok

    async def release(self) -> None:
        await self.members.stop()
        await self.bus.stop()
        self.file.release()
        self.acquired_at = None
