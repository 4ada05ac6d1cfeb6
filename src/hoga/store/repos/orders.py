"""Orders and their event history. State changes are compare-and-set on the current status."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import and_, case, func, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from hoga.domain.orders import (
    OPEN,
    Order,
    OrderStatus,
    OrderType,
    Priority,
    Side,
    check_transition,
)
from hoga.store import tables as t
from hoga.store.repos import new_id

_OPEN = [s.value for s in OPEN]


def _order(r: Any) -> Order:
    return Order(
        id=r.id,
        user_id=r.user_id,
        account_id=r.account_id,
        strategy_id=r.strategy_id,
        client_order_id=r.client_order_id,
        symbol=r.symbol,
        side=Side(r.side),
        type=OrderType(r.type),
        qty=r.qty,
        price=r.price,
        status=OrderStatus(r.status),
        priority=Priority(r.priority),
        urgent=r.urgent,
        source=r.source,
        filled_qty=r.filled_qty,
        filled_amount=r.filled_amount,
        commission=r.commission,
        tax=r.tax,
        reserved_cash=r.reserved_cash,
        broker_order_id=r.broker_order_id,
        broker_org_no=r.broker_org_no,
        reason_code=r.reason_code,
        reason=r.reason,
        trading_day=r.trading_day,
        created_at=r.created_at,
        updated_at=r.updated_at,
        submitted_at=r.submitted_at,
    )


async def insert_order(conn: AsyncConnection, **values: Any) -> Order | None:
    """Insert; None when the user already has an order with this ``client_order_id``."""
    try:
        async with conn.begin_nested():
            res = await conn.execute(insert(t.orders).values(**values))
    except IntegrityError:
        return None
    order = await get_order(conn, values["user_id"], new_id(res))
    assert order is not None
    return order


async def get_order(conn: AsyncConnection, user_id: int, order_id: int) -> Order | None:
    row = (
        await conn.execute(
            select(t.orders).where(t.orders.c.id == order_id, t.orders.c.user_id == user_id)
        )
    ).first()
    return _order(row) if row else None


async def get_by_client_id(
    conn: AsyncConnection, user_id: int, client_order_id: str
) -> Order | None:
    row = (
        await conn.execute(
            select(t.orders).where(
                t.orders.c.user_id == user_id, t.orders.c.client_order_id == client_order_id
            )
        )
    ).first()
    return _order(row) if row else None


async def get_by_broker_id(
    conn: AsyncConnection, user_id: int, account_id: int, broker_order_id: str
) -> Order | None:
    # Some brokers number orders per day, so an id can recur: the newest open order wins, then
    # the newest of any state.
    rows = (
        await conn.execute(
            select(t.orders)
            .where(
                t.orders.c.user_id == user_id,
                t.orders.c.account_id == account_id,
                t.orders.c.broker_order_id == broker_order_id,
            )
            .order_by(open_status_order(), t.orders.c.id.desc())
            .limit(1)
        )
    ).first()
    return _order(rows) if rows else None


async def list_orders(
    conn: AsyncConnection,
    user_id: int,
    *,
    statuses: list[str] | None = None,
    symbol: str | None = None,
    day: date | None = None,
    strategy_id: int | None = None,
    account_id: int | None = None,
    limit: int = 100,
    before_id: int | None = None,
) -> list[Order]:
    q = select(t.orders).where(t.orders.c.user_id == user_id)
    if statuses:
        q = q.where(t.orders.c.status.in_(statuses))
    if symbol:
        q = q.where(t.orders.c.symbol == symbol)
    if day:
        q = q.where(t.orders.c.trading_day == day)
    if strategy_id is not None:
        q = q.where(t.orders.c.strategy_id == strategy_id)
    if account_id is not None:
        q = q.where(t.orders.c.account_id == account_id)
    if before_id is not None:
        q = q.where(t.orders.c.id < before_id)
    rows = await conn.execute(q.order_by(t.orders.c.id.desc()).limit(limit))
    return [_order(r) for r in rows]


async def open_orders(
    conn: AsyncConnection,
    *,
    user_id: int | None = None,
    account_id: int | None = None,
    statuses: list[str] | None = None,
) -> list[Order]:
    """Open orders, oldest first. ``user_id=None`` is for the system actor (start-up, reconcile)."""
    q = select(t.orders).where(t.orders.c.status.in_(statuses or _OPEN))
    if user_id is not None:
        q = q.where(t.orders.c.user_id == user_id)
    if account_id is not None:
        q = q.where(t.orders.c.account_id == account_id)
    rows = await conn.execute(q.order_by(t.orders.c.id))
    return [_order(r) for r in rows]


async def exposure(
    conn: AsyncConnection, user_id: int, account_id: int
) -> tuple[int, dict[str, int], dict[str, int]]:
    """What open orders hold back: (reserved cash, open sell qty by symbol, open buy qty by symbol)."""
    remaining = t.orders.c.qty - t.orders.c.filled_qty
    rows = await conn.execute(
        select(
            t.orders.c.side,
            t.orders.c.symbol,
            func.sum(remaining),
            func.sum(t.orders.c.reserved_cash),
        )
        .where(
            t.orders.c.user_id == user_id,
            t.orders.c.account_id == account_id,
            t.orders.c.status.in_(_OPEN),
        )
        .group_by(t.orders.c.side, t.orders.c.symbol)
    )
    reserved = 0
    sells: dict[str, int] = {}
    buys: dict[str, int] = {}
    for side, symbol, qty, res in rows:
        reserved += int(res or 0)
        (sells if side == Side.SELL else buys)[symbol] = int(qty or 0)
    return reserved, sells, buys


async def transition(
    conn: AsyncConnection,
    order: Order,
    status: OrderStatus,
    now: datetime,
    *,
    detail: str | None = None,
    **values: Any,
) -> Order | None:
    """Move ``order`` to ``status`` if it is still in the state we read; None if it moved on.

    Also writes the order's event history.
    """
    check_transition(order.status, status)
    res = await conn.execute(
        update(t.orders)
        .where(
            and_(
                t.orders.c.id == order.id,
                t.orders.c.user_id == order.user_id,
                t.orders.c.status == order.status.value,
                t.orders.c.filled_qty == order.filled_qty,
            )
        )
        .values(status=status.value, updated_at=now, **values)
    )
    if res.rowcount != 1:
        return None
    await add_event(conn, order.user_id, order.id, status, now, detail)
    return await get_order(conn, order.user_id, order.id)


async def add_event(
    conn: AsyncConnection,
    user_id: int,
    order_id: int,
    status: OrderStatus,
    now: datetime,
    detail: str | None,
) -> None:
    await conn.execute(
        insert(t.order_events).values(
            user_id=user_id, order_id=order_id, ts=now, status=status.value, detail=detail
        )
    )


async def events(conn: AsyncConnection, user_id: int, order_id: int) -> list[dict[str, Any]]:
    rows = await conn.execute(
        select(t.order_events)
        .where(t.order_events.c.user_id == user_id, t.order_events.c.order_id == order_id)
        .order_by(t.order_events.c.id)
    )
    return [{"ts": r.ts, "status": r.status, "detail": r.detail} for r in rows]


async def trades_by_strategy(conn: AsyncConnection, user_id: int) -> dict[int, int]:
    rows = await conn.execute(
        select(t.orders.c.strategy_id, func.count())
        .where(t.orders.c.user_id == user_id, t.orders.c.strategy_id.is_not(None))
        .group_by(t.orders.c.strategy_id)
    )
    return {int(sid): int(n) for sid, n in rows}


def open_status_order() -> Any:
    """Sort key putting open orders first (for listings)."""
    return case((t.orders.c.status.in_(_OPEN), 0), else_=1)
