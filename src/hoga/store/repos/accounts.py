"""Broker accounts (paper, KIS, Kiwoom), with credentials stored only as vault ciphertext."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from hoga.domain.errors import Conflict, NotFound
from hoga.store import tables as t
from hoga.store.repos import new_id
from hoga.store.rows import from_row


@dataclass(frozen=True, slots=True)
class AccountRecord:
    """A linked account. ``secrets_enc`` is the vault envelope; it is never shown to anyone."""

    id: int
    user_id: int
    broker: str
    env: str
    label: str
    account_masked: str
    app_key_masked: str | None
    fingerprint: str
    secrets_enc: str | None
    key_id: str | None
    commission_rate: Decimal
    base_url: str | None
    ws_url: str | None
    is_active: bool
    last_test_at: datetime | None
    last_test_ok: bool | None
    last_test_message: str | None
    created_at: datetime

    @property
    def is_paper(self) -> bool:
        return self.broker == "paper"


def _account(row: Any) -> AccountRecord:
    return from_row(AccountRecord, row, commission_rate=Decimal(row.commission_rate))


async def create_account(
    conn: AsyncConnection,
    user_id: int,
    *,
    broker: str,
    env: str,
    label: str,
    account_masked: str,
    fingerprint: str,
    commission_rate: Decimal,
    app_key_masked: str | None = None,
    now: datetime,
    secrets_enc: str | None = None,
    key_id: str | None = None,
    base_url: str | None = None,
    ws_url: str | None = None,
) -> AccountRecord:
    try:
        async with conn.begin_nested():
            res = await conn.execute(
                insert(t.broker_accounts).values(
                    user_id=user_id,
                    broker=broker,
                    env=env,
                    label=label,
                    account_masked=account_masked,
                    app_key_masked=app_key_masked,
                    fingerprint=fingerprint,
                    secrets_enc=secrets_enc,
                    key_id=key_id,
                    commission_rate=str(commission_rate),
                    base_url=base_url,
                    ws_url=ws_url,
                    is_active=True,
                    created_at=now,
                    updated_at=now,
                )
            )
    except IntegrityError:
        raise Conflict(
            "이미 연결된 계좌입니다 (account already linked)", "account.exists"
        ) from None
    acct = await get_account(conn, user_id, new_id(res))
    assert acct is not None
    return acct


async def get_account(conn: AsyncConnection, user_id: int, account_id: int) -> AccountRecord | None:
    row = (
        await conn.execute(
            select(t.broker_accounts).where(
                t.broker_accounts.c.id == account_id, t.broker_accounts.c.user_id == user_id
            )
        )
    ).first()
    return _account(row) if row else None


async def owner_of(conn: AsyncConnection, account_id: int) -> int | None:
    """The user an account belongs to, active or not (system actor: execution events name an
    account, not a user)."""
    row = (
        await conn.execute(
            select(t.broker_accounts.c.user_id).where(t.broker_accounts.c.id == account_id)
        )
    ).first()
    return int(row[0]) if row else None


async def require_account(conn: AsyncConnection, user_id: int, account_id: int) -> AccountRecord:
    acct = await get_account(conn, user_id, account_id)
    if acct is None or not acct.is_active:
        raise NotFound("계좌를 찾을 수 없습니다 (no such account)", "account.not_found")
    return acct


async def list_accounts(conn: AsyncConnection, user_id: int) -> list[AccountRecord]:
    rows = await conn.execute(
        select(t.broker_accounts)
        .where(t.broker_accounts.c.user_id == user_id, t.broker_accounts.c.is_active)
        .order_by(t.broker_accounts.c.id)
    )
    return [_account(r) for r in rows]


async def paper_account(conn: AsyncConnection, user_id: int) -> AccountRecord | None:
    row = (
        await conn.execute(
            select(t.broker_accounts)
            .where(t.broker_accounts.c.user_id == user_id, t.broker_accounts.c.broker == "paper")
            .order_by(t.broker_accounts.c.id)
            .limit(1)
        )
    ).first()
    return _account(row) if row else None


async def all_active_accounts(conn: AsyncConnection) -> list[AccountRecord]:
    """Every active account of every user: for the system actor at start-up only."""
    rows = await conn.execute(
        select(t.broker_accounts)
        .where(t.broker_accounts.c.is_active)
        .order_by(t.broker_accounts.c.id)
    )
    return [_account(r) for r in rows]


async def update_account(
    conn: AsyncConnection, user_id: int, account_id: int, **values: Any
) -> None:
    await conn.execute(
        update(t.broker_accounts)
        .where(t.broker_accounts.c.id == account_id, t.broker_accounts.c.user_id == user_id)
        .values(**values)
    )
