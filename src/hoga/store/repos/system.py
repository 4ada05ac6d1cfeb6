"""Server-wide state rows (``system_state``): small JSON documents by key.

Used for what one process decides and another must see: the paused state (set by ``hoga
pause``/``resume``, ``hoga serve --paused`` or a restore, applied by the running server) and the
vault's key state (which key encrypts, which are retired). Not a tenant table.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from hoga.store import tables as t

Lock = Literal["share", "update"] | None


async def get(conn: AsyncConnection, key: str, *, lock: Lock = None) -> dict[str, Any] | None:
    """The document under ``key``, or None. ``lock`` takes a row lock on PostgreSQL (``FOR
    SHARE``/``FOR UPDATE``) until the transaction ends; SQLite serialises writers anyway."""
    stmt = t.system_state.select().where(t.system_state.c.key == key)
    if lock is not None and conn.dialect.name == "postgresql":
        stmt = stmt.with_for_update(read=lock == "share")
    row = (await conn.execute(stmt)).first()
    if row is None or not isinstance(row.value, dict):
        return None
    return dict(row.value)


async def put(conn: AsyncConnection, key: str, value: dict[str, Any], now: datetime) -> None:
    """Insert or replace the document under ``key`` (one statement: two writers racing to
    create the row do not collide)."""
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    stmt = dialect.insert(t.system_state).values(key=key, value=value, updated_at=now)
    await conn.execute(
        stmt.on_conflict_do_update(
            index_elements=[t.system_state.c.key],
            set_={"value": stmt.excluded.value, "updated_at": stmt.excluded.updated_at},
        )
    )
