"""Which database errors are faults of the storage itself, and what to call them.

A transaction that fails because the database is unreachable, its connection was terminated
(``pg_terminate_backend``, a server restart), its disk is full or it had an I/O error is not a
bug in the request: it is answered 503 with ``storage.unavailable`` or ``storage.full``, and the
services that run in the background retry it. ``classify`` recognises those errors whatever
layer raised them (SQLAlchemy's wrapper, the DB-API driver, asyncpg, the socket); anything else
- a constraint violation, a programming error - is left alone.
"""

from __future__ import annotations

import sqlite3

import asyncpg
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import InterfaceError as SAInterfaceError

from hoga.domain.errors import StorageFull, StorageUnavailable

# SQLite primary result codes (https://www.sqlite.org/rescode.html).
_SQLITE_FULL = 13
_SQLITE_UNAVAILABLE = frozenset(
    {
        5,  # BUSY (another process held the lock past busy_timeout)
        6,  # LOCKED
        8,  # READONLY (e.g. the file or its directory became read-only)
        10,  # IOERR (ENOSPC on some writes, a failing disk)
        11,  # CORRUPT
        14,  # CANTOPEN
        26,  # NOTADB
    }
)
# PostgreSQL SQLSTATEs: class 08 (connection), 53 (insufficient resources), 57P (operator
# intervention: admin/crash shutdown, cannot connect now), 58 (system error, e.g. I/O).
_PG_FULL = "53100"
_PG_UNAVAILABLE_PREFIXES = ("08", "53", "57P", "58")


def _chain(exc: BaseException) -> list[BaseException]:
    seen: list[BaseException] = []
    todo: list[BaseException | None] = [exc]
    while todo:
        e = todo.pop()
        if e is None or any(e is s for s in seen) or len(seen) > 12:
            continue
        seen.append(e)
        todo += [getattr(e, "orig", None), e.__cause__, e.__context__]
    return seen


def _sqlstate(e: BaseException) -> str | None:
    for attr in ("sqlstate", "pgcode"):
        value = getattr(e, attr, None)
        if isinstance(value, str) and value:
            return value
    return None


def _fault(kind: type[StorageUnavailable], cause: str) -> StorageUnavailable:
    fault = kind()
    # For logs only (never the API answer): which layer failed, without statement parameters.
    fault.cause = cause
    return fault


def classify(exc: BaseException) -> StorageUnavailable | None:
    """The storage fault ``exc`` stands for, or None when it is not one."""
    fault: StorageUnavailable | None = None
    for e in _chain(exc):
        if isinstance(e, sqlite3.Error):
            code = getattr(e, "sqlite_errorcode", None)
            primary = code & 0xFF if isinstance(code, int) else None
            if primary == _SQLITE_FULL or "database or disk is full" in str(e):
                return _fault(StorageFull, "sqlite: disk full")
            if primary in _SQLITE_UNAVAILABLE or (
                isinstance(e, sqlite3.ProgrammingError) and "closed" in str(e)
            ):
                fault = _fault(StorageUnavailable, f"sqlite: {type(e).__name__}")
            continue
        state = _sqlstate(e)
        if state == _PG_FULL:
            return _fault(StorageFull, "postgresql: disk full")
        if state is not None and state.startswith(_PG_UNAVAILABLE_PREFIXES):
            fault = fault or _fault(StorageUnavailable, f"postgresql: {state}")
        elif isinstance(e, asyncpg.InterfaceError | asyncpg.PostgresConnectionError):
            fault = fault or _fault(StorageUnavailable, f"postgresql: {type(e).__name__}")
        elif isinstance(e, DBAPIError) and e.connection_invalidated:
            fault = fault or _fault(StorageUnavailable, "connection lost")
        elif isinstance(e, SAInterfaceError):
            fault = fault or _fault(StorageUnavailable, "driver interface error")
        elif isinstance(e, OSError | TimeoutError):
            fault = fault or _fault(StorageUnavailable, type(e).__name__)
    return fault
