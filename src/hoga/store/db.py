"""The database handle: engines, transactions bound to an acting user, migrations.

Every transaction names its actor. On PostgreSQL the actor becomes ``app.user_id`` for that
transaction (``set_config(..., true)``, i.e. ``SET LOCAL``), and row-level-security policies let
the transaction see only that user's rows. On SQLite the repositories' explicit ``user_id``
filters are the only wall, and transactions are serialised (one writer).

PostgreSQL roles (issue 12, ``store/rls.py``): user transactions run as the **app role**,
whose policy admits only rows of ``app.user_id``; system transactions (start-up, dispatcher,
reconciliation, admin pages) run as the **system role**, whose policy admits every row. No
setting a connection can change widens the app role. Two ways to connect:

* **separate logins** (production): ``HOGA_DATABASE_URL`` logs in as the app role itself,
  ``HOGA_DATABASE_SYSTEM_URL`` as the system role (its own pool) and migrations use
  ``HOGA_DATABASE_OWNER_URL``. A user-path connection has no other role to switch to.
* **one superuser URL** (development and tests only, ``HOGA_DATABASE_ALLOW_SUPERUSER``): each
  transaction switches to the actor's role with ``SET LOCAL ROLE``. Code could ``RESET ROLE``
  back to the superuser, so a server refuses this unless told it is not production.
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


#: What reaching the database can fail with: the network, the server, the login.
_CONNECT_ERRORS = (OSError, OperationalError, DBAPIError)


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

    def __init__(
        self,
        url: str,
        *,
        app_role: str | None = None,
        system_role: str | None = None,
        owner_url: str | None = None,
        system_url: str | None = None,
        allow_superuser: bool = True,
        echo: bool = False,
    ) -> None:
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
        base = parsed.database or "hoga"
        self.app_role = (app_role or default_role(base, "app")) if self.is_postgres else None
        self.system_role = (
            (system_role or default_role(base, "system")) if self.is_postgres else None
        )
        self.owner_url = owner_url if self.is_postgres else None
        self.system_url = system_url if self.is_postgres else None
        #: Separate logins per role (see module doc) when an owner URL is configured.
        self.separate_logins = self.owner_url is not None
        self.allow_superuser = allow_superuser
        self._echo = echo
        self._engine: AsyncEngine | None = None
        self._system_engine: AsyncEngine | None = None
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

    def _make_engine(self, *, as_app: bool, url: str | None = None) -> AsyncEngine:
        kwargs: dict[str, Any] = {"echo": self._echo}
        url = url or self.url
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
            if as_app and self.app_role and not self.separate_logins:
                # One superuser login (development): act as the app role from the first
                # statement on; each transaction then names its actor's role.
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
        if self.separate_logins:
            if not self.system_url:
                raise DatabaseUnavailable(
                    "HOGA_DATABASE_OWNER_URL is set: HOGA_DATABASE_SYSTEM_URL must name the "
                    f"system role's login ({self.system_role}) - see docs/operations.md",
                    code="db.roles",
                )
            self._system_engine = self._make_engine(as_app=False, url=self.system_url)
        try:
            async with self._engine.connect() as conn:
                await conn.execute(text("select 1"))
                if self.is_postgres:
                    await self._check_login(conn, self.app_role, self.url)
            if self._system_engine is not None:
                async with self._system_engine.connect() as conn:
                    await self._check_login(conn, self.system_role, self.system_url or "")
        except _CONNECT_ERRORS as e:
            await self._dispose_engines()
            raise self._unreachable("open", e) from None
        except DatabaseUnavailable:
            await self._dispose_engines()
            raise
        if self.checkpointer is not None:
            self.checkpointer.start()

    async def _check_login(self, conn: AsyncConnection, role: str | None, url: str) -> None:
        """Refuse logins that could widen themselves: a superuser session (it can RESET ROLE
        to itself) unless allowed for development, and a separate login that is not its role."""
        row = (
            await conn.execute(
                text(
                    "select session_user, rolsuper, rolbypassrls from pg_roles "
                    "where rolname = session_user"
                )
            )
        ).one()
        who, superuser, bypass = str(row[0]), bool(row[1]), bool(row[2])
        if self.separate_logins:
            if who != role or superuser or bypass:
                raise DatabaseUnavailable(
                    f"{describe_url(url)} logs in as {who!r}; it must log in as the role "
                    f"{role!r} itself (no superuser, no BYPASSRLS) - see docs/operations.md",
                    code="db.roles",
                )
        elif superuser and not self.allow_superuser:
            raise DatabaseUnavailable(
                f"{describe_url(url)} logs in as the superuser {who!r}: a server must log in "
                "as its app role (HOGA_DATABASE_URL), with HOGA_DATABASE_SYSTEM_URL and "
                "HOGA_DATABASE_OWNER_URL for the system role and migrations - see "
                "docs/operations.md. HOGA_DATABASE_ALLOW_SUPERUSER=true is for development only.",
                code="db.superuser",
            )

    def _unreachable(self, doing: str, e: BaseException) -> DatabaseUnavailable:
        """The refusal when the database cannot be reached to ``doing`` it (open, migrate)."""
        return DatabaseUnavailable(
            f"cannot {doing} database {describe_url(self.url)}: {_root_cause(e)}",
            code="db.unreachable",
        )

    async def _dispose_engines(self) -> None:
        for engine in (self._engine, self._system_engine):
            if engine is not None:
                await engine.dispose()
        self._engine = self._system_engine = None

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
            await self._dispose_engines()
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
        except _CONNECT_ERRORS as e:
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

        owner = self._make_engine(as_app=False, url=self.owner_url)
        try:
            async with owner.begin() as conn:
                if self.is_postgres:
                    # Servers of a cluster start side by side: one migrates (and re-grants) at
                    # a time, the others wait and find the schema at head.
                    await conn.execute(
                        text("select pg_advisory_xact_lock(hashtext('hoga.migrate'))")
                    )
                applied: list[str] = await conn.run_sync(upgrade_sync)
                if self.is_postgres and self.app_role and self.system_role:
                    from hoga.store.rls import ensure_rls

                    await ensure_rls(
                        conn,
                        self.app_role,
                        self.system_role,
                        switch_roles=not self.separate_logins,
                    )
        except _CONNECT_ERRORS as e:
            raise self._unreachable("migrate", e) from None
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

        owner = self._make_engine(as_app=False, url=self.owner_url)
        try:
            async with owner.connect() as conn:
                current = await conn.run_sync(current_revision)
        except _CONNECT_ERRORS as e:
            raise self._unreachable("open", e) from None
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
            engine = self.engine
            if actor.system and self._system_engine is not None:
                engine = self._system_engine  # the system role's own login and pool
            async with engine.begin() as conn:
                uid = "" if actor.user_id is None else str(actor.user_id)
                if self.separate_logins:
                    await conn.execute(
                        text("select set_config('app.user_id', :uid, true)"), {"uid": uid}
                    )
                else:
                    # One login: the transaction takes its actor's role (SET LOCAL ROLE).
                    role = self.system_role if actor.system else self.app_role
                    await conn.execute(
                        text(
                            "select set_config('role', :role, true), "
                            "set_config('app.user_id', :uid, true)"
                        ),
                        {"role": role, "uid": uid},
                    )
                yield conn
        except (DBAPIError, OSError, sqlite3.Error, asyncpg.InterfaceError) as e:
            fault = classify(e)
            if fault is None:
                raise
            log.warning("storage fault (%s): transaction rolled back", fault.cause)
            # Not chained: the driver's text may quote statement parameters.
            raise fault from None


def default_role(database: str, kind: str) -> str:
    """``<database>_app`` / ``<database>_system``: roles are cluster-wide in PostgreSQL, so two
    hoga databases on one cluster must not share them by default."""
    safe = "".join(c if c.isalnum() or c == "_" else "_" for c in database.lower())[:50]
    return f"{safe}_{kind}"


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
