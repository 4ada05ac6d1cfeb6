"""The database handle: engines, transactions bound to an acting user, migrations.

Every transaction names its actor. On PostgreSQL the actor becomes ``app.user_id`` for that
transaction (``set_config(..., true)``, i.e. ``SET LOCAL``), and row-level-security policies let
the transaction see only that user's rows. The server runs as a role that owns nothing and
cannot bypass RLS; only migrations run as the owner. On SQLite the repositories' explicit
``user_id`` filters are the only wall, and transactions are serialised (one writer).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
from sqlalchemy import event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, OperationalError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from hoga.domain.errors import ServiceUnavailable, StorageUnavailable
from hoga.store.checkpoint import BACKSTOP_PAGES, WalCheckpointer
from hoga.store.faults import classify
from hoga.store.private import private_dir, private_file, tighten

log = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).with_name("migrations")


@dataclass(frozen=True, slots=True)
class Actor:
    """Who a transaction acts for: one user, or the system itself (start-up, dispatcher, admin)."""

    user_id: int | None
    system: bool = False

    @staticmethod
    def user(user_id: int) -> Actor:
        return Actor(user_id=user_id)

    def __post_init__(self) -> None:
        if not self.system and self.user_id is None:
            raise ValueError("a user actor needs a user id")


SYSTEM = Actor(user_id=None, system=True)


class DatabaseUnavailable(ServiceUnavailable):
    """The database cannot be reached or opened; the message says which URL and why."""


class SchemaMismatch(ServiceUnavailable):
    """The database's schema is not the one this hoga was built for (behind, or newer).

    Only ``hoga db upgrade`` and ``hoga serve`` migrate; every other command refuses with this
    instead, because a migration takes exclusive locks that stall the live server's order path
    behind any long reader (a nightly ``pg_dump``).
    """


def describe_url(url: str) -> str:
    """The URL without its password, fit for messages and logs."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return "<unparseable database URL>"


class Database:
    """Owns the engines and hands out transactions.

    ``tx(actor)`` is the only way code reads or writes: it opens a transaction, binds the actor
    for row-level security and commits on success, rolls back on error.
    """

    def __init__(self, url: str, *, app_role: str | None = "hoga_app", echo: bool = False) -> None:
        try:
            parsed = make_url(url)
        except ArgumentError:
            raise DatabaseUnavailable(
                f"HOGA_DATABASE_URL is not a database URL: {url!r}", code="db.bad_url"
            ) from None
        self.url = url
        self.is_postgres = parsed.get_backend_name() == "postgresql"
        self.is_sqlite = parsed.get_backend_name() == "sqlite"
        if not (self.is_postgres or self.is_sqlite):
            raise DatabaseUnavailable(
                f"unsupported database {parsed.get_backend_name()!r}: use sqlite or postgresql",
                code="db.unsupported",
            )
        self.app_role = app_role if self.is_postgres else None
        self._echo = echo
        self._engine: AsyncEngine | None = None
        self._closed = False
        # SQLite has one writer; serialising transactions avoids SQLITE_BUSY and upgrade deadlocks.
        self._sqlite_lock = asyncio.Lock() if self.is_sqlite else None
        # SQLite: one connection held for the server's life; checking a connection out of a
        # pool and back costs more than the transaction itself.
        self._sqlite_conn: AsyncConnection | None = None
        self.checkpointer: WalCheckpointer | None = None
        if self.is_sqlite:
            db_path = parsed.database
            if db_path and db_path != ":memory:":
                self.checkpointer = WalCheckpointer(Path(db_path))

    # --- lifecycle

    def _make_engine(self, *, as_app: bool) -> AsyncEngine:
        kwargs: dict[str, Any] = {"echo": self._echo}
        url = self.url
        if self.is_sqlite:
            from hoga.store.inline_sqlite import inline_url

            db_path = make_url(self.url).database
            if db_path and db_path != ":memory:":
                # 0700 directory, 0600 file: SQLite gives -wal and -shm the file's mode.
                path = Path(db_path)
                private_dir(path.parent)
                private_file(path)
                for suffix in ("-wal", "-shm"):
                    tighten(path.with_name(path.name + suffix))
            url = inline_url(self.url)
            # The connection is opened, used and closed on the event loop's thread only (the
            # checkpointer has its own); sqlite3 then refuses any other thread outright
            # instead of letting two threads into one connection.
            kwargs["connect_args"] = {"check_same_thread": True}
        else:
            settings = {"application_name": "hoga"}
            if as_app and self.app_role:
                # The server's connections act as the app role from the first statement on.
                settings["role"] = self.app_role
            kwargs["connect_args"] = {"server_settings": settings, "timeout": 10}
            kwargs["pool_size"] = 10
            kwargs["pool_pre_ping"] = True
        engine = create_async_engine(url, **kwargs)
        if self.is_sqlite:
            event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        return engine

    async def start(self) -> None:
        """Open the engine and prove the database answers."""
        self._closed = False
        self._engine = self._make_engine(as_app=True)
        try:
            async with self._engine.connect() as conn:
                await conn.execute(text("select 1"))
        except (OSError, OperationalError, DBAPIError) as e:
            await self._engine.dispose()
            self._engine = None
            raise DatabaseUnavailable(
                f"cannot open database {describe_url(self.url)}: {_root_cause(e)}",
                code="db.unreachable",
            ) from None
        if self.checkpointer is not None:
            self.checkpointer.start()

    async def close(self, grace: float = 2.0) -> None:
        """Close the engines. On SQLite, a transaction in progress is let finish first (up to
        ``grace`` seconds): the held connection is never closed under a running statement."""
        self._closed = True
        if self.checkpointer is not None:
            await self.checkpointer.stop()
        lock = self._sqlite_lock
        acquired = False
        if lock is not None:
            try:
                await asyncio.wait_for(lock.acquire(), grace)
                acquired = True
            except TimeoutError:
                log.warning("closing SQLite with a transaction still open after %.0f s", grace)
        try:
            if self._sqlite_conn is not None:
                await self._sqlite_conn.close()
                self._sqlite_conn = None
            if self._engine is not None:
                await self._engine.dispose()
                self._engine = None
        finally:
            if acquired and lock is not None:
                lock.release()

    async def ping(self, within: float = 2.0) -> str | None:
        """None when the database answers a trivial query within ``within`` s; else why not."""
        if self._engine is None:
            return "not open"
        try:
            async with asyncio.timeout(within):
                async with self.tx(SYSTEM) as conn:
                    await conn.execute(text("select 1"))
        except TimeoutError:
            return f"no answer within {within:g}s"
        except (OSError, OperationalError, DBAPIError) as e:
            return _root_cause(e)
        return None

    @property
    def engine(self) -> AsyncEngine:
        if self._engine is None:
            if self._closed:
                raise _closed_error()
            raise RuntimeError("Database.start() has not been called")
        return self._engine

    # --- migrations

    async def migrate(self) -> list[str]:
        """Apply pending migrations as the owner; on PostgreSQL, (re)apply RLS and grants.

        Returns the revisions applied.
        """
        from hoga.store.migrate import upgrade_sync

        owner = self._make_engine(as_app=False)
        try:
            async with owner.begin() as conn:
                applied: list[str] = await conn.run_sync(upgrade_sync)
                if self.is_postgres and self.app_role:
                    from hoga.store.rls import ensure_rls

                    await ensure_rls(conn, self.app_role)
        except (OSError, OperationalError, DBAPIError) as e:
            raise DatabaseUnavailable(
                f"cannot migrate database {describe_url(self.url)}: {_root_cause(e)}",
                code="db.unreachable",
            ) from None
        finally:
            await owner.dispose()
        return applied

    async def require_schema(self) -> str:
        """Check, without changing anything, that the schema is at this hoga's head revision.

        Reads only ``alembic_version`` (as the owner: the app role may not see it), so it takes
        no lock beyond ACCESS SHARE on that one table. Returns the revision; raises
        ``SchemaMismatch`` with a one-line remedy otherwise.
        """
        from hoga.store.migrate import check_revision, current_revision

        owner = self._make_engine(as_app=False)
        try:
            async with owner.connect() as conn:
                current = await conn.run_sync(current_revision)
        except (OSError, OperationalError, DBAPIError) as e:
            raise DatabaseUnavailable(
                f"cannot open database {describe_url(self.url)}: {_root_cause(e)}",
                code="db.unreachable",
            ) from None
        finally:
            await owner.dispose()
        problem = check_revision(current)
        if problem is not None:
            raise SchemaMismatch(problem, code="db.schema_mismatch")
        assert current is not None
        return current

    # --- transactions

    @contextlib.asynccontextmanager
    async def tx(self, actor: Actor) -> AsyncIterator[AsyncConnection]:
        """A transaction acting for ``actor``; commits when the block exits cleanly.

        A storage fault anywhere in it (connection lost, disk full, I/O error; see
        ``store/faults.py``) rolls it back and surfaces as ``StorageUnavailable`` /
        ``StorageFull`` (503); every other error passes through unchanged.
        """
        try:
            if self._sqlite_lock is not None:
                async with self._sqlite_lock:
                    if (
                        self._sqlite_conn is None
                        or self._sqlite_conn.closed
                        or self._sqlite_conn.invalidated
                    ):
                        self._sqlite_conn = await self.engine.connect()
                    conn = self._sqlite_conn
                    async with conn.begin():
                        yield conn
                return
            async with self.engine.begin() as conn:
                await conn.execute(
                    text(
                        "select set_config('app.user_id', :uid, true), set_config('app.system', :sys, true)"
                    ),
                    {
                        "uid": "" if actor.user_id is None else str(actor.user_id),
                        "sys": "on" if actor.system else "off",
                    },
                )
                yield conn
        except (DBAPIError, OSError, sqlite3.Error, asyncpg.InterfaceError) as e:
            fault = classify(e)
            if fault is None:
                raise
            log.warning("storage fault (%s): transaction rolled back", fault.cause)
            # Not chained: the driver's text may quote statement parameters.
            raise fault from None


def _closed_error() -> StorageUnavailable:
    fault = StorageUnavailable()
    fault.cause = "database closed"
    return fault


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA busy_timeout=5000")
    # Checkpoints normally come from WalCheckpointer's thread; this is the backstop.
    cur.execute(f"PRAGMA wal_autocheckpoint={BACKSTOP_PAGES}")
    cur.close()


def _root_cause(e: BaseException) -> str:
    inner: BaseException = e
    while True:
        nxt = getattr(inner, "orig", None) or inner.__cause__
        if nxt is None or nxt is inner:
            break
        inner = nxt
    return str(inner).strip().splitlines()[0] if str(inner).strip() else type(inner).__name__
