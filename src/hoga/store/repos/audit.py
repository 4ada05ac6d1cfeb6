"""The audit log: who did what, when, from where."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncConnection

from hoga.store import tables as t
from hoga.store.rows import from_row

_INSERT = insert(t.audit_log)


@dataclass(frozen=True, slots=True)
class AuditEntry:
    id: int
    user_id: int | None
    actor_id: int | None
    ts: datetime
    action: str
    target: str | None
    ip: str | None
    detail: dict[str, Any]


async def record(
    conn: AsyncConnection,
    *,
    action: str,
    now: datetime,
    user_id: int | None,
    actor_id: int | None = None,
    target: str | None = None,
    ip: str | None = None,
    detail: dict[str, Any] | None = None,
) -> None:
    """Append an entry. ``user_id`` is whose history it belongs to; ``actor_id`` who acted."""
    await conn.execute(
        _INSERT,
        {
            "user_id": user_id,
            "actor_id": actor_id if actor_id is not None else user_id,
            "ts": now,
            "action": action,
            "target": target,
            "ip": ip,
            "detail": detail or {},
        },
    )


def _entry(r: Any) -> AuditEntry:
    return from_row(AuditEntry, r, detail=dict(r.detail or {}))


async def list_for_user(
    conn: AsyncConnection, user_id: int, limit: int = 100, before_id: int | None = None
) -> list[AuditEntry]:
    q = select(t.audit_log).where(t.audit_log.c.user_id == user_id)
    if before_id is not None:
        q = q.where(t.audit_log.c.id < before_id)
    rows = await conn.execute(q.order_by(t.audit_log.c.id.desc()).limit(limit))
    return [_entry(r) for r in rows]


async def list_all(
    conn: AsyncConnection,
    limit: int = 200,
    before_id: int | None = None,
    action: str | None = None,
    user_id: int | None = None,
) -> list[AuditEntry]:
    """Every entry (admins, through the system actor)."""
    q = select(t.audit_log)
    if before_id is not None:
        q = q.where(t.audit_log.c.id < before_id)
    if action:
        q = q.where(t.audit_log.c.action == action)
    if user_id is not None:
        q = q.where(t.audit_log.c.user_id == user_id)
    rows = await conn.execute(q.order_by(t.audit_log.c.id.desc()).limit(limit))
    return [_entry(r) for r in rows]
