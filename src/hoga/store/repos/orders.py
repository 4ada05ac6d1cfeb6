"""Orders and their event history.

State changes go through ``apply`` only: the pure state machine (``domain.orders.evolve``)
decides the order after the event, and the row is compare-and-set on the status and executed
quantity that were read.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, datetime
from typing import Any

from sqlalchemy import and_, bindparam, case, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql import Executable

from hoga.domain.orders import (
    OPEN,
    Identified,
    Moved,
    Order,
    OrderEvent,
    OrderStatus,
    OrderType,
    Priority,
    Side,
    TimeInForce,
    Venue,
    evolve,
)
from hoga.store import tables as t
from hoga.store.rows import from_row

_OPEN = [s.value for s in OPEN]

# Statements on the order path are built once: building and keying a statement costs more than
# executing it (about 150 us against 70 us here).
_GET = select(t.orders).where(
    t.orders.c.id == bindparam("oid"), t.orders.c.user_id == bindparam("uid")
)
_GET_BY_CLIENT = select(t.orders).where(
    t.orders.c.user_id == bindparam("uid"), t.orders.c.client_order_id == bindparam("cid")
)
_INSERT = insert(t.orders).returning(*t.orders.c)
_INSERT_EVENT = insert(t.order_events)
_EXPOSURE = (
    select(
        t.orders.c.side,
        t.orders.c.symbol,
        func.sum(t.orders.c.qty - t.orders.c.filled_qty),
        func.sum(t.orders.c.reserved_cash),
    )
    .where(
        t.orders.c.user_id == bindparam("uid"),
        t.orders.c.account_id == bindparam("aid"),
        t.orders.c.status.in_(_OPEN),
    )
    .group_by(t.orders.c.side, t.orders.c.symbol)
)
_BY_BROKER_ID = (
    select(t.orders)
    .where(
        t.orders.c.user_id == bindparam("uid"),
        t.orders.c.account_id == bindparam("aid"),
        t.orders.c.broker_order_id == bindparam("bid"),
    )
    .order_by(case((t.orders.c.status.in_(_OPEN), 0), else_=1), t.orders.c.id.desc())
    .limit(1)
)
_TRANSITIONS: dict[tuple[str, ...], Executable] = {}


def _transition_stmt(keys: tuple[str, ...]) -> Executable:
    stmt = _TRANSITIONS.get(keys)
    if stmt is None:
        stmt = (
            update(t.orders)
            .where(
                and_(
                    t.orders.c.id == bindparam("w_id"),
                    t.orders.c.user_id == bindparam("w_uid"),
                    t.orders.c.status == bindparam("w_status"),
                    t.orders.c.filled_qty == bindparam("w_filled"),
                )
            )
            .values({k: bindparam(f"v_{k}") for k in keys})
            .returning(*t.orders.c)
        )
        _TRANSITIONS[keys] = stmt
    return stmt


def _order(r: Any) -> Order:
    return from_row(
        Order,
        r,
        side=Side(r.side),
        type=OrderType(r.type),
        status=OrderStatus(r.status),
        priority=Priority(r.priority),
        tif=TimeInForce(r.tif),
        venue=Venue(r.venue),
    )


async def insert_order(conn: AsyncConnection, **values: Any) -> Order:
    """Insert and return the order. The caller has checked ``client_order_id`` under the user's
    lock, so the unique constraint is a backstop, not a code path."""
    row = (await conn.execute(_INSERT, values)).one()
    return _order(row)


async def get_order(conn: AsyncConnection, user_id: int, order_id: int) -> Order | None:
    row = (await conn.execute(_GET, {"oid": order_id, "uid": user_id})).first()
    return _order(row) if row else None


async def get_by_client_id(
    conn: AsyncConnection, user_id: int, client_order_id: str
) -> Order | None:
    row = (await conn.execute(_GET_BY_CLIENT, {"uid": user_id, "cid": client_order_id})).first()
    return _order(row) if row else None


async def get_by_broker_id(
    conn: AsyncConnection, user_id: int, account_id: int, broker_order_id: str
) -> Order | None:
    # Some brokers number orders per day, so an id can recur: the newest open order wins, then
    # the newest of any state.
    row = (
        await conn.execute(
            _BY_BROKER_ID, {"uid": user_id, "aid": account_id, "bid": broker_order_id}
        )
    ).first()
    return _order(row) if row else None


async def by_broker_ids(
    conn: AsyncConnection,
    user_id: int,
    account_id: int,
    broker_order_ids: Iterable[str],
    days: Iterable[date],
) -> dict[str, Order]:
    """The account's orders of ``days`` known under these broker ids (the newest per id)."""
    ids, on = list(set(broker_order_ids)), list(set(days))
    if not ids or not on:
        return {}
    rows = await conn.execute(
        select(t.orders)
        .where(
            t.orders.c.user_id == user_id,
            t.orders.c.account_id == account_id,
            t.orders.c.broker_order_id.in_(ids),
            t.orders.c.trading_day.in_(on),
        )
        .order_by(t.orders.c.id)
    )
    return {o.broker_order_id: o for o in map(_order, rows) if o.broker_order_id}


async def accounts_at_broker(conn: AsyncConnection, day: date) -> list[int]:
    """Accounts the broker may have something to tell about: an order past QUEUED that is
    still open, or any order of ``day`` it has numbered (system actor). Both lookups use an
    index (status; user and trading day), so this stays cheap however long the history."""
    at_broker = [s.value for s in OPEN if s != OrderStatus.QUEUED]
    open_ = select(t.orders.c.account_id).where(t.orders.c.status.in_(at_broker)).distinct()
    today = (
        select(t.orders.c.account_id)
        .where(
            t.orders.c.user_id.in_(select(t.users.c.id)),
            t.orders.c.trading_day == day,
            t.orders.c.broker_order_id.is_not(None),
        )
        .distinct()
    )
    found = {int(r[0]) for q in (open_, today) for r in await conn.execute(q)}
    return sorted(found)


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
    rows = await conn.execute(_EXPOSURE, {"uid": user_id, "aid": account_id})
    reserved = 0
    sells: dict[str, int] = {}
    buys: dict[str, int] = {}
    for side, symbol, qty, res in rows:
        reserved += int(res or 0)
        (sells if side == Side.SELL else buys)[symbol] = int(qty or 0)
    return reserved, sells, buys


#: Order fields the state machine may change (``domain.orders.evolve``), by column.
_MUTABLE = (
    "status",
    "qty",
    "price",
    "filled_qty",
    "filled_amount",
    "commission",
    "tax",
    "reserved_cash",
    "broker_order_id",
    "broker_org_no",
    "reason_code",
    "reason",
    "updated_at",
    "submitted_at",
)


async def apply(
    conn: AsyncConnection,
    order: Order,
    event: OrderEvent,
    now: datetime,
    *,
    detail: str | None = None,
) -> Order | None:
    """The one write of an order's state: ``event`` applied by the state machine
    (``evolve``, which raises ``InvalidTransition`` for a move it does not allow), then
    compare-and-set on the state and executed quantity we read; None if the order moved on.

    Also writes the order's event history (not for ``Identified``, which changes no state).
    """
    new = evolve(order, event, now)
    values: dict[str, Any] = {}
    for name in _MUTABLE:
        value = getattr(new, name)
        # A state change always writes its state and time, even when they read the same.
        if value != getattr(order, name) or (
            name in ("status", "updated_at") and not isinstance(event, Identified)
        ):
            values[name] = value.value if isinstance(value, OrderStatus) else value
    if not values:
        return order
    params = {f"v_{k}": v for k, v in values.items()}
    params.update(
        w_id=order.id, w_uid=order.user_id, w_status=order.status.value, w_filled=order.filled_qty
    )
    row = (await conn.execute(_transition_stmt(tuple(sorted(values))), params)).first()
    if row is None:
        return None
    if not isinstance(event, Identified):
        await add_event(conn, order.user_id, order.id, new.status, now, detail)
    return _order(row)


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

    ``values`` are the fields of ``Moved`` (reason, broker ids, submit time, reserve).
    """
    return await apply(conn, order, Moved(status, **values), now, detail=detail)


async def add_event(
    conn: AsyncConnection,
    user_id: int,
    order_id: int,
    status: OrderStatus,
    now: datetime,
    detail: str | None,
) -> None:
    await conn.execute(
        _INSERT_EVENT,
        {
            "user_id": user_id,
            "order_id": order_id,
            "ts": now,
            "status": status.value,
            "detail": detail,
        },
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


async def owner_of(conn: AsyncConnection, order_id: int) -> int | None:
    """The user an order belongs to (admin tools that know only the order's id)."""
    row = (
        await conn.execute(
            select(t.orders.c.user_id).where(t.orders.c.id == bindparam("oid")), {"oid": order_id}
        )
    ).first()
    return int(row.user_id) if row else None
