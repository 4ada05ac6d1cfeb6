"""Refresh-token families (sign-in sessions) and TOTP recovery codes."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import and_, delete, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from hoga.store import tables as t
from hoga.store.rows import from_row


@dataclass(frozen=True, slots=True)
class RefreshRecord:
    id: int
    user_id: int
    family_id: str
    created_at: datetime
    expires_at: datetime
    used_at: datetime | None
    revoked_at: datetime | None
    ip: str | None
    user_agent: str | None


def _rec(row: Any) -> RefreshRecord:
    return from_row(RefreshRecord, row)


async def add_refresh(
    conn: AsyncConnection,
    user_id: int,
    *,
    family_id: str,
    token_hash: str,
    now: datetime,
    expires_at: datetime,
    ip: str | None,
    user_agent: str | None,
) -> None:
    await conn.execute(
        insert(t.refresh_tokens).values(
            user_id=user_id,
            family_id=family_id,
            token_hash=token_hash,
            created_at=now,
            expires_at=expires_at,
            ip=ip,
            user_agent=(user_agent or "")[:255] or None,
        )
    )


async def find_refresh(conn: AsyncConnection, token_hash: str) -> RefreshRecord | None:
    """Look a presented token up by hash (the system actor: the owner is not known yet)."""
    row = (
        await conn.execute(
            select(t.refresh_tokens).where(t.refresh_tokens.c.token_hash == token_hash)
        )
    ).first()
    return _rec(row) if row else None


async def mark_used(conn: AsyncConnection, user_id: int, record_id: int, now: datetime) -> bool:
    """Mark a token used; False if someone else used it first (a race counts as reuse)."""
    res = await conn.execute(
        update(t.refresh_tokens)
        .where(
            t.refresh_tokens.c.id == record_id,
            t.refresh_tokens.c.user_id == user_id,
            t.refresh_tokens.c.used_at.is_(None),
        )
        .values(used_at=now)
    )
    return res.rowcount == 1


async def revoke_family(conn: AsyncConnection, user_id: int, family_id: str, now: datetime) -> None:
    await conn.execute(
        update(t.refresh_tokens)
        .where(
            t.refresh_tokens.c.user_id == user_id,
            t.refresh_tokens.c.family_id == family_id,
            t.refresh_tokens.c.revoked_at.is_(None),
        )
        .values(revoked_at=now)
    )


async def revoke_all(conn: AsyncConnection, user_id: int, now: datetime) -> list[str]:
    fams = await active_families(conn, user_id, now)
    await conn.execute(
        update(t.refresh_tokens)
        .where(t.refresh_tokens.c.user_id == user_id, t.refresh_tokens.c.revoked_at.is_(None))
        .values(revoked_at=now)
    )
    return [f.family_id for f in fams]


async def family_revoked(conn: AsyncConnection, user_id: int, family_id: str) -> bool:
    row = (
        await conn.execute(
            select(t.refresh_tokens.c.id)
            .where(
                t.refresh_tokens.c.user_id == user_id,
                t.refresh_tokens.c.family_id == family_id,
                t.refresh_tokens.c.revoked_at.is_not(None),
            )
            .limit(1)
        )
    ).first()
    return row is not None


async def active_families(
    conn: AsyncConnection, user_id: int, now: datetime
) -> list[RefreshRecord]:
    """The newest live token of each unrevoked, unexpired family: the user's sessions."""
    rows = await conn.execute(
        select(t.refresh_tokens)
        .where(
            t.refresh_tokens.c.user_id == user_id,
            t.refresh_tokens.c.revoked_at.is_(None),
            t.refresh_tokens.c.used_at.is_(None),
            t.refresh_tokens.c.expires_at > now,
        )
        .order_by(t.refresh_tokens.c.created_at.desc())
    )
    return [_rec(r) for r in rows]


async def purge_expired(conn: AsyncConnection, before: datetime) -> None:
    await conn.execute(delete(t.refresh_tokens).where(t.refresh_tokens.c.expires_at < before))


async def replace_recovery_codes(
    conn: AsyncConnection, user_id: int, hashes: list[str], now: datetime
) -> None:
    await conn.execute(delete(t.recovery_codes).where(t.recovery_codes.c.user_id == user_id))
    if hashes:
        await conn.execute(
            insert(t.recovery_codes),
            [{"user_id": user_id, "code_hash": h, "created_at": now} for h in hashes],
        )


async def use_recovery_code(
    conn: AsyncConnection, user_id: int, code_hash: str, now: datetime
) -> bool:
    res = await conn.execute(
        update(t.recovery_codes)
        .where(
            and_(
                t.recovery_codes.c.user_id == user_id,
                t.recovery_codes.c.code_hash == code_hash,
                t.recovery_codes.c.used_at.is_(None),
            )
        )
        .values(used_at=now)
    )
    return res.rowcount == 1


async def count_recovery_codes(conn: AsyncConnection, user_id: int) -> int:
    rows = await conn.execute(
        select(t.recovery_codes.c.id).where(
            t.recovery_codes.c.user_id == user_id, t.recovery_codes.c.used_at.is_(None)
        )
    )
    return len(rows.all())
