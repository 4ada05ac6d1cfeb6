"""Users and tiers."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from hoga.domain.errors import Conflict, NotFound
from hoga.domain.tiers import Tier
from hoga.store import tables as t
from hoga.store.repos import new_id
from hoga.store.rows import from_row


@dataclass(frozen=True, slots=True)
class UserRecord:
    """A user as stored. ``password_hash`` and ``totp_secret_enc`` never leave the server."""

    id: int
    username: str
    password_hash: str
    tier: str
    is_admin: bool
    is_active: bool
    totp_enabled: bool
    totp_secret_enc: str | None
    ip_allowlist: list[str]
    max_order_value: int | None
    daily_loss_limit: int | None
    trading_state: str
    api_calls_per_minute: int | None
    created_at: datetime
    password_changed_at: datetime


def _user(row: Any) -> UserRecord:
    return from_row(UserRecord, row, ip_allowlist=list(row.ip_allowlist or []))


async def create_user(
    conn: AsyncConnection,
    *,
    username: str,
    password_hash: str,
    tier: str,
    is_admin: bool,
    now: datetime,
) -> UserRecord:
    if await get_tier(conn, tier) is None:
        raise NotFound(f"등급 {tier!r}이(가) 없습니다 (unknown tier)", "tier.not_found")
    try:
        async with conn.begin_nested():
            res = await conn.execute(
                insert(t.users).values(
                    username=username,
                    password_hash=password_hash,
                    tier=tier,
                    is_admin=is_admin,
                    is_active=True,
                    totp_enabled=False,
                    ip_allowlist=[],
                    trading_state="ACTIVE",
                    created_at=now,
                    password_changed_at=now,
                )
            )
    except IntegrityError:
        raise Conflict(
            f"사용자 {username!r}이(가) 이미 있습니다 (username taken)", "user.exists"
        ) from None
    user = await get_user(conn, new_id(res))
    assert user is not None
    return user


async def get_user(conn: AsyncConnection, user_id: int) -> UserRecord | None:
    row = (await conn.execute(select(t.users).where(t.users.c.id == user_id))).first()
    return _user(row) if row else None


async def get_user_by_username(conn: AsyncConnection, username: str) -> UserRecord | None:
    row = (await conn.execute(select(t.users).where(t.users.c.username == username))).first()
    return _user(row) if row else None


async def list_users(conn: AsyncConnection) -> list[UserRecord]:
    rows = await conn.execute(select(t.users).order_by(t.users.c.id))
    return [_user(r) for r in rows]


async def count_active_users(conn: AsyncConnection) -> int:
    n = await conn.execute(select(func.count()).select_from(t.users).where(t.users.c.is_active))
    return int(n.scalar_one())


async def update_user(conn: AsyncConnection, user_id: int, **values: Any) -> UserRecord:
    await conn.execute(update(t.users).where(t.users.c.id == user_id).values(**values))
    user = await get_user(conn, user_id)
    if user is None:
        raise NotFound("사용자를 찾을 수 없습니다", "user.not_found")
    return user


def _tier(row: Any) -> Tier:
    return from_row(Tier, row)


async def get_tier(conn: AsyncConnection, name: str) -> Tier | None:
    row = (await conn.execute(select(t.tiers).where(t.tiers.c.name == name))).first()
    return _tier(row) if row else None


async def list_tiers(conn: AsyncConnection) -> list[Tier]:
    rows = await conn.execute(select(t.tiers).order_by(t.tiers.c.daily_trades))
    return [_tier(r) for r in rows]


async def update_tier(conn: AsyncConnection, name: str, now: datetime, **values: Any) -> Tier:
    res = await conn.execute(
        update(t.tiers).where(t.tiers.c.name == name).values(updated_at=now, **values)
    )
    if res.rowcount == 0:
        raise NotFound(f"등급 {name!r}이(가) 없습니다 (unknown tier)", "tier.not_found")
    tier = await get_tier(conn, name)
    assert tier is not None
    return tier
