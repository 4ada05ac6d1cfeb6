"""SQLite for the async engine, executed inline on the event loop thread.

aiosqlite runs every statement on a helper thread; each call crosses threads several times, which
costs about half a millisecond per statement on a small machine - while SQLite itself answers an
indexed read in microseconds and commits a WAL transaction (synchronous=NORMAL) in tens of
microseconds. hoga's SQLite transactions are small and serialised anyway (one writer), so they
run here directly: the standard pysqlite dialect, declared async so SQLAlchemy's asyncio layer
accepts it (its greenlet bridge then simply runs the synchronous calls to completion).

Transactions are pysqlite's (it BEGINs before the first INSERT/UPDATE/DELETE; reads before
that run outside it, which costs nothing), with one repair: a SAVEPOINT first opens the real
transaction (``do_savepoint``), or its RELEASE would commit.

The cost: a statement blocks the event loop while it runs. That is microseconds for what hoga
does per order; bulk reads (chart bars, audit pages) are bounded by their LIMITs.

SQLAlchemy's async layer insists that an async driver actually awaits something (it refuses
plain sync drivers); the cursor awaits a finished no-op before each statement, which costs a
greenlet switch, not a trip through the event loop.
"""

from __future__ import annotations

import sqlite3
from typing import Any

from sqlalchemy.dialects import registry
from sqlalchemy.dialects.sqlite.pysqlite import SQLiteDialect_pysqlite
from sqlalchemy.pool import StaticPool
from sqlalchemy.util.concurrency import await_, in_greenlet


async def _done() -> None:
    return None


def _touch_async() -> None:
    if in_greenlet():
        await_(_done())


class InlineCursor(sqlite3.Cursor):
    """A sqlite3 cursor that satisfies SQLAlchemy's "an async driver awaits" check."""

    def execute(self, sql: str, parameters: Any = (), /) -> InlineCursor:
        _touch_async()
        super().execute(sql, parameters)
        return self

    def executemany(self, sql: str, seq_of_parameters: Any, /) -> InlineCursor:
        _touch_async()
        super().executemany(sql, seq_of_parameters)
        return self

    async def _async_soft_close(self) -> None:
        # The async layer asks async cursors to buffer their rows before the connection is
        # reused; a sqlite3 cursor keeps its rows readable, so there is nothing to do.
        return None


class InlineConnection(sqlite3.Connection):
    """A sqlite3 connection whose cursors are InlineCursors."""

    def cursor(self, factory: Any = InlineCursor) -> Any:
        return super().cursor(factory)


class SQLiteDialect_inline(SQLiteDialect_pysqlite):
    """pysqlite, marked async-capable; see the module docstring."""

    driver = "hoga_inline"
    is_async = True
    supports_statement_cache = True

    def connect(self, *cargs: Any, **cparams: Any) -> Any:
        cparams.setdefault("factory", InlineConnection)
        return super().connect(*cargs, **cparams)

    def do_savepoint(self, connection: Any, name: str) -> None:
        # pysqlite opens a transaction only before an INSERT/UPDATE/DELETE, so a SAVEPOINT
        # issued after reads alone would *start* the transaction - and its RELEASE would
        # commit everything so far (a fill row committed without its order, position and
        # cash updates when a later write met a full disk). Open the real transaction first.
        # (Here rather than in a "savepoint" event: any connection event listener puts every
        # statement of the engine through SQLAlchemy's slower event path.)
        dbapi = connection.connection.dbapi_connection
        if not dbapi.in_transaction:
            sqlite3.Connection.execute(dbapi, "BEGIN IMMEDIATE").close()
        super().do_savepoint(connection, name)  # type: ignore[no-untyped-call]

    @classmethod
    def get_pool_class(cls, url: Any) -> Any:
        # One connection, used only from the event loop thread, serialised by Database.tx.
        return StaticPool


registry.register("sqlite.hoga_inline", __name__, "SQLiteDialect_inline")


def inline_url(url: str) -> str:
    """Point any SQLite URL at this driver (``sqlite://``, ``sqlite+aiosqlite://``...)."""
    scheme, sep, rest = url.partition("://")
    return f"sqlite+hoga_inline{sep}{rest}" if scheme.startswith("sqlite") else url
