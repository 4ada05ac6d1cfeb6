"""Strategies: each user's configured strategies, their status, last error and saved state.

Also the per-strategy reads the runner and the P&L attribution need: the strategy's fills (with
their orders' client ids) and its open orders.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from hoga.domain.errors import Conflict
from hoga.domain.fills import Execution
from hoga.domain.orders import OPEN
from hoga.store import tables as t
from hoga.store.repos import new_id
from hoga.store.rows import from_row

_OPEN = [s.value for s in OPEN]


@dataclass(frozen=True, slots=True)
class StrategyRecord:
    id: int
    user_id: int
    account_id: int
    name: str
    kind: str
    symbols: tuple[str, ...]
    params: dict[str, Any]
    status: str
    last_error: str | None
    error_at: datetime | None
    state: dict[str, Any]
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class StrategyFill(Execution):
    """One of a strategy's fills, with its order's client id."""

    id: int
    order_id: int
    client_order_id: str
    ts: datetime


def _rec(r: Any) -> StrategyRecord:
    return from_row(
        StrategyRecord,
        r,
        symbols=tuple(r.symbols or ()),
        params=dict(r.params or {}),
        state=dict(r.state or {}),
    )


async def create(
    conn: AsyncConnection,
    *,
    user_id: int,
    account_id: int,
    name: str,
    kind: str,
    symbols: list[str],
    params: dict[str, Any],
    now: datetime,
) -> StrategyRecord:
    try:
        async with conn.begin_nested():
            res = await conn.execute(
                insert(t.strategies).values(
                    user_id=user_id,
                    account_id=account_id,
                    name=name,
                    kind=kind,
                    symbols=symbols,
                    params=params,
                    status="created",
                    state={},
                    created_at=now,
                    updated_at=now,
                )
            )
    except IntegrityError:
        raise Conflict(
            f"같은 이름의 전략이 이미 있습니다: {name!r} (a strategy with this name exists)",
            "strategy.exists",
            field="name",
        ) from None
    rec = await get(conn, user_id, new_id(res))
    assert rec is not None
    return rec


async def get(conn: AsyncConnection, user_id: int, strategy_id: int) -> StrategyRecord | None:
    row = (
        await conn.execute(
            select(t.strategies).where(
                t.strategies.c.id == strategy_id, t.strategies.c.user_id == user_id
            )
        )
    ).first()
    return _rec(row) if row else None


async def list_for_user(conn: AsyncConnection, user_id: int) -> list[StrategyRecord]:
    rows = await conn.execute(
        select(t.strategies).where(t.strategies.c.user_id == user_id).order_by(t.strategies.c.id)
    )
    return [_rec(r) for r in rows]


async def count_for_user(conn: AsyncConnection, user_id: int) -> int:
    row = (
        await conn.execute(
            select(func.count()).select_from(t.strategies).where(t.strategies.c.user_id == user_id)
        )
    ).first()
    return int(row[0]) if row else 0


async def with_status(conn: AsyncConnection, statuses: list[str]) -> list[StrategyRecord]:
    """Every user's strategies in ``statuses``: for the system actor at start-up only."""
    rows = await conn.execute(
        select(t.strategies)
        .where(t.strategies.c.status.in_(statuses))
        .order_by(t.strategies.c.user_id, t.strategies.c.id)
    )
    return [_rec(r) for r in rows]


async def update_row(
    conn: AsyncConnection, user_id: int, strategy_id: int, now: datetime, **values: Any
) -> StrategyRecord | None:
    await conn.execute(
        update(t.strategies)
        .where(t.strategies.c.id == strategy_id, t.strategies.c.user_id == user_id)
        .values(updated_at=now, **values)
    )
    return await get(conn, user_id, strategy_id)


async def save_state(
    conn: AsyncConnection, user_id: int, strategy_id: int, state: dict[str, Any]
) -> None:
    await conn.execute(
        update(t.strategies)
        .where(t.strategies.c.id == strategy_id, t.strategies.c.user_id == user_id)
        .values(state=state)
    )


async def remove(conn: AsyncConnection, user_id: int, strategy_id: int) -> bool:
    res = await conn.execute(
        delete(t.strategies).where(
            t.strategies.c.id == strategy_id, t.strategies.c.user_id == user_id
        )
    )
    return bool(res.rowcount)


async def fills(conn: AsyncConnection, user_id: int, strategy_id: int) -> list[StrategyFill]:
    """All of a strategy's fills, oldest first, with their orders' client ids."""
    rows = await conn.execute(
        select(
            t.fills.c.id,
            t.fills.c.order_id,
            t.orders.c.client_order_id,
            t.fills.c.symbol,
            t.fills.c.side,
            t.fills.c.qty,
            t.fills.c.price,
            t.fills.c.commission,
            t.fills.c.tax,
            t.fills.c.ts,
        )
        .join(t.orders, t.orders.c.id == t.fills.c.order_id)
        .where(t.fills.c.user_id == user_id, t.fills.c.strategy_id == strategy_id)
        .order_by(t.fills.c.id)
    )
    return [from_row(StrategyFill, r) for r in rows]


async def order_counts(conn: AsyncConnection, user_id: int) -> dict[int, int]:
    rows = await conn.execute(
        select(t.orders.c.strategy_id, func.count())
        .where(t.orders.c.user_id == user_id, t.orders.c.strategy_id.is_not(None))
        .group_by(t.orders.c.strategy_id)
    )
    return {int(sid): int(n) for sid, n in rows}


async def open_orders(conn: AsyncConnection, user_id: int, strategy_id: int) -> list[Any]:
    rows = await conn.execute(
        select(t.orders)
        .where(
            t.orders.c.user_id == user_id,
            t.orders.c.strategy_id == strategy_id,
            t.orders.c.status.in_(_OPEN),
        )
        .order_by(t.orders.c.id)
    )
    return list(rows)
