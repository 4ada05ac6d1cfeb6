"""The ``auth_changes`` outbox: sign-in changes every running server must apply.

Kinds: ``user.disabled`` (refuse the user's tokens, stop their strategies, close their
sockets), ``user.changed`` (any other change to the user row: drop cached copies) and
``session.revoked`` (one sign-in session ended: logout, a revoked session, a password change
ending the other sessions, a reused refresh token).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from hoga.store import tables as t

USER_DISABLED = "user.disabled"
USER_CHANGED = "user.changed"
SESSION_REVOKED = "session.revoked"


@dataclass(frozen=True, slots=True)
class AuthChange:
    """One row of the outbox."""

    id: int
    user_id: int
    kind: str
    session_id: str | None


async def record(
    conn: AsyncConnection,
    user_id: int,
    kind: str,
    now: datetime,
    session_id: str | None = None,
) -> None:
    await conn.execute(
        t.auth_changes.insert().values(
            user_id=user_id, kind=kind, session_id=session_id, created_at=now
        )
    )


async def last_id(conn: AsyncConnection) -> int:
    value = (await conn.execute(select(func.max(t.auth_changes.c.id)))).scalar()
    return int(value or 0)


async def since(conn: AsyncConnection, after_id: int, limit: int = 500) -> list[AuthChange]:
    rows = await conn.execute(
        select(t.auth_changes)
        .where(t.auth_changes.c.id > after_id)
        .order_by(t.auth_changes.c.id)
        .limit(limit)
    )
    return [AuthChange(r.id, r.user_id, r.kind, r.session_id) for r in rows]


async def prune(conn: AsyncConnection, before: datetime, keep_after_id: int) -> None:
    """Forget rows older than ``before`` that every poller has read (ids up to ``keep_after_id``);
    the newest row always stays so ids keep growing on SQLite."""
    newest = await last_id(conn)
    await conn.execute(
        delete(t.auth_changes).where(
            t.auth_changes.c.created_at < before,
            t.auth_changes.c.id <= keep_after_id,
            t.auth_changes.c.id < newest,
        )
    )
