"""One server per database and data directory.

Two ``hoga serve`` processes on one database would both send every queued order (each has its
own in-memory queue built from the same rows), and two on one data directory would interleave
the paper broker's journal. ``SingleServerGuard`` makes the second refuse to start:

* **data directory** - an OS file lock (``fcntl.flock``) on ``<data_dir>/hoga.lock``, held on
  an open descriptor for the process's life, and a SQLite database gets the same lock beside
  its file (``<db>.lock``), wherever it lives. The kernel drops a flock when the process dies,
  however it dies (kill -9 included); the file's text (pid, host, start) only names the holder.
* **PostgreSQL** - a session-level advisory lock (``pg_try_advisory_lock``) held on a dedicated
  connection that does nothing else. Its key is derived from the database name. PostgreSQL
  releases it when that session ends - process death included - and the connection's
  ``application_name`` names the holder for ``pg_stat_activity``.

If the lock connection is lost (PostgreSQL restarted, the session terminated), the lock is gone
too: ``check()`` notices, reconnects and takes it again; when another server got it meanwhile,
``check()`` reports the loss so the app stops sending orders.

Cluster mode (a later issue: ``HOGA_CLUSTER_NATS_URL``, several servers sharing one database)
will replace this guard with one that admits peers; ``ServerGuard`` is that seam. Nothing else
in hoga assumes it is alone beyond what the guard enforces.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import json
import logging
import os
import socket
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

from sqlalchemy.engine import make_url

from hoga.domain.errors import Conflict
from hoga.store.db import DatabaseUnavailable

log = logging.getLogger(__name__)

LOCK_FILE = "hoga.lock"


class ServerRunning(Conflict):
    """Another hoga server already holds this data directory or database."""


@dataclass(frozen=True, slots=True)
class Holder:
    """Who holds a lock, as far as can be told (any field may be unknown)."""

    pid: int | None = None
    host: str | None = None
    since: str | None = None

    def describe(self) -> str:
        parts = []
        if self.pid is not None:
            parts.append(f"pid {self.pid}")
        if self.host:
            parts.append(f"on {self.host}")
        if self.since:
            parts.append(f"since {self.since}")
        return " ".join(parts) if parts else "another process"


def _me() -> dict[str, Any]:
    return {
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "since": datetime.now().astimezone().isoformat(timespec="seconds"),
    }


class ServerGuard(Protocol):
    """What the app needs from whatever keeps servers from trampling each other."""

    async def acquire(self) -> None:
        """Take the locks or raise ``ServerRunning`` naming the holder."""

    async def check(self) -> bool:
        """True while this server still holds its locks (re-taking a lost one if it can)."""

    async def release(self) -> None: ...


class FileLock:
    """An exclusive ``flock`` on one file, held until ``release`` or process death."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None

    def acquire(self, what: str) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            os.close(fd)
            if e.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise
            raise ServerRunning(
                f"another hoga server ({self.holder().describe()}) is using {what} "
                f"(lock {self.path}); stop it first",
                "server.already_running",
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(_me()).encode(), 0)
        self._fd = fd

    def holder(self) -> Holder:
        """What the lock file says about its holder (written by the holder itself)."""
        try:
            data = json.loads(self.path.read_text(encoding="utf-8") or "{}")
        except (OSError, ValueError):
            return Holder()
        if not isinstance(data, dict):
            return Holder()
        pid = data.get("pid")
        return Holder(
            pid=pid if isinstance(pid, int) else None,
            host=str(data["host"]) if data.get("host") else None,
            since=str(data["since"]) if data.get("since") else None,
        )

    def is_held_elsewhere(self) -> bool:
        """Whether some other open file description holds the lock now (a probe, not a take)."""
        if not self.path.exists():
            return False
        fd = os.open(self.path, os.O_RDONLY)
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except OSError:
            return True
        finally:
            os.close(fd)  # closing drops the probe's own shared lock
        return False

    def release(self) -> None:
        if self._fd is not None:
            with contextlib.suppress(OSError):
                fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None


def advisory_key(database: str) -> int:
    """The advisory-lock key for one database: a signed 64-bit value derived from its name."""
    digest = hashlib.sha256(f"hoga-server:{database}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def _asyncpg_dsn(url: str) -> tuple[str, str]:
    parsed = make_url(url)
    dsn = parsed.set(drivername="postgresql").render_as_string(hide_password=False)
    return dsn, parsed.database or ""


_HOLDER_SQL = """
select a.pid, a.application_name, host(a.client_addr) as addr, a.backend_start
from pg_locks l join pg_stat_activity a on a.pid = l.pid
where l.locktype = 'advisory' and l.granted and l.objsubid = 1
  and l.database = (select oid from pg_database where datname = current_database())
  and l.classid = $1 and l.objid = $2
"""


def _split_key(key: int) -> tuple[int, int]:
    unsigned = key & 0xFFFF_FFFF_FFFF_FFFF
    return unsigned >> 32, unsigned & 0xFFFF_FFFF


class PgAdvisoryLock:
    """A session-level advisory lock on a connection of its own (see the module docstring)."""

    def __init__(self, url: str) -> None:
        self._dsn, self.database = _asyncpg_dsn(url)
        self.key = advisory_key(self.database)
        self._conn: Any = None
        self.where = f"database {make_url(url).render_as_string(hide_password=True)}"

    async def _connect(self) -> Any:
        import asyncpg

        me = _me()
        name = f"hoga-server pid={me['pid']} host={me['host']}"[:63]
        return await asyncpg.connect(
            self._dsn, timeout=10, server_settings={"application_name": name}
        )

    async def acquire(self) -> None:
        try:
            conn = await self._connect()
        except (OSError, TimeoutError, ValueError) as e:
            raise DatabaseUnavailable(
                f"cannot open {self.where}: {str(e).strip() or type(e).__name__}",
                code="db.unreachable",
            ) from None
        except Exception as e:  # asyncpg's own errors: wrong password, no such database...
            if type(e).__module__.startswith("asyncpg"):
                raise DatabaseUnavailable(
                    f"cannot open {self.where}: {str(e).strip() or type(e).__name__}",
                    code="db.unreachable",
                ) from None
            raise
        try:
            got = await conn.fetchval("select pg_try_advisory_lock($1)", self.key)
            if not got:
                holder = await self._holder(conn)
                raise ServerRunning(
                    f"another hoga server ({holder.describe()}) is using {self.where}; "
                    "stop it first",
                    "server.already_running",
                )
        except BaseException:
            await conn.close()
            raise
        self._conn = conn

    async def _holder(self, conn: Any) -> Holder:
        classid, objid = _split_key(self.key)
        row = await conn.fetchrow(_HOLDER_SQL, classid, objid)
        if row is None:
            return Holder()
        name = row["application_name"] or ""
        fields = dict(p.split("=", 1) for p in name.split() if "=" in p)
        pid = fields.get("pid")
        since = row["backend_start"]
        return Holder(
            pid=int(pid) if pid and pid.isdigit() else None,
            host=fields.get("host") or row["addr"],
            since=since.astimezone().isoformat(timespec="seconds") if since else None,
        )

    async def holder(self) -> Holder | None:
        """Who holds the lock now, from any connection (None when nobody does)."""
        conn = await self._connect()
        try:
            classid, objid = _split_key(self.key)
            row = await conn.fetchrow(_HOLDER_SQL, classid, objid)
            return None if row is None else await self._holder(conn)
        finally:
            await conn.close()

    async def check(self) -> bool:
        if self._conn is not None:
            try:
                await self._conn.fetchval("select 1", timeout=5)
                return True
            except Exception:
                log.warning("the server lock's PostgreSQL connection was lost; taking it again")
                with contextlib.suppress(Exception):
                    self._conn.terminate()
                self._conn = None
        try:
            await self.acquire()
        except ServerRunning as e:
            log.error("lost the one-server lock to another process: %s", e.message)
            return False
        except Exception as e:
            log.warning("cannot take the server lock again yet: %s", type(e).__name__)
            return False
        log.info("server lock taken again")
        return True

    async def release(self) -> None:
        if self._conn is not None:
            conn, self._conn = self._conn, None
            with contextlib.suppress(Exception):
                await conn.execute("select pg_advisory_unlock($1)", self.key)
            with contextlib.suppress(Exception):
                await conn.close(timeout=3)


class SingleServerGuard:
    """The one-server rule: the data-directory lock, a SQLite database's own file lock, and on
    PostgreSQL the advisory lock. ``acquire`` takes all or none."""

    def __init__(self, data_dir: Path, database_url: str) -> None:
        self.data_dir = data_dir
        self.files = [(FileLock(data_dir / LOCK_FILE), f"data directory {data_dir}")]
        self.pg: PgAdvisoryLock | None = None
        backend = make_url(database_url).get_backend_name()
        if backend == "sqlite":
            db_path = make_url(database_url).database
            if db_path and db_path != ":memory:":
                # Beside the file itself, so another data dir naming this file is refused too.
                db_file = Path(db_path).resolve()
                lock = FileLock(db_file.with_name(db_file.name + ".lock"))
                self.files.append((lock, f"database {db_file}"))
        elif backend == "postgresql":
            self.pg = PgAdvisoryLock(database_url)
        self.lost = False
        self.acquired_at: float | None = None

    async def acquire(self) -> None:
        taken: list[FileLock] = []
        try:
            for lock, what in self.files:
                lock.acquire(what)
                taken.append(lock)
            if self.pg is not None:
                await self.pg.acquire()
        except BaseException:
            for lock in taken:
                lock.release()
            raise
        self.acquired_at = time.time()

    async def check(self) -> bool:
        ok = True if self.pg is None else await self.pg.check()
        self.lost = not ok
        return ok

    async def release(self) -> None:
        if self.pg is not None:
            await self.pg.release()
        for lock, _ in self.files:
            lock.release()
        self.acquired_at = None


async def running_server(data_dir: Path, database_url: str) -> Holder | None:
    """Whether a hoga server holds this data directory or database right now (for the CLI).

    A probe: it takes nothing a server would need."""
    for lock, _ in SingleServerGuard(data_dir, database_url).files:
        if lock.is_held_elsewhere():
            return lock.holder()
    if make_url(database_url).get_backend_name() == "postgresql":
        return await PgAdvisoryLock(database_url).holder()
    return None
