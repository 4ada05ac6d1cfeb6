"""Booking an execution into the books, inside the caller's transaction.

``OrderService.apply_fill`` decides *what* to book (``domain/fills.py``: the parts that bring
the order to the broker's cumulative position) and holds the account lock and the
transaction; this module writes each part - the fill row, the position, the cash ledger (the
trade, its commission, its tax) and the day's realised P&L - and then the order's totals, all
in that one transaction, so a fault anywhere leaves none of it.

Costs are rounded per order (``krx.fill_costs`` with the order's prior executed amount), so
however the broker's executions reach hoga they cost what the broker charged. A broker's own
fee figures are used when the part is exactly the execution it reported them for.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from hoga.brokers.base import FillReport
from hoga.domain import krx
from hoga.domain.clock import KST
from hoga.domain.orders import TERMINAL, Order, OrderStatus, Side, status_after_fill
from hoga.domain.portfolio import apply_fill
from hoga.store import tables as t
from hoga.store.repos import ledger
from hoga.store.repos import orders as repo

S = OrderStatus


@dataclass(frozen=True, slots=True)
class Booked:
    """One fill row written: its id and figures (for the event stream)."""

    row_id: int
    qty: int
    price: int
    commission: int
    tax: int
    ts: datetime


async def book_parts(
    conn: AsyncConnection,
    order: Order,
    fill: FillReport,
    parts: tuple[tuple[int, int], ...],
    *,
    rate: Decimal,
    market: str,
    now: datetime,
) -> list[Booked]:
    """Write ``parts`` of ``fill`` for ``order`` (re-read in this transaction) and the order's
    new totals and state. Returns the rows written; none if the fill id was booked before."""
    fill_day: date = datetime.fromtimestamp(fill.ts, KST).date()
    ts = datetime.fromtimestamp(fill.ts, KST)
    exact = parts == ((fill.qty, fill.price),)
    prior = order.filled_amount
    booked: list[Booked] = []
    for n, (qty, price) in enumerate(parts):
        fee, tax = krx.fill_costs(
            order.side, qty, price, fill_day, market, rate, prior_amount=prior
        )
        if exact and fill.commission is not None:
            fee = fill.commission
        if exact and fill.tax is not None:
            tax = fill.tax
        row = await ledger.insert_fill(
            conn,
            user_id=order.user_id,
            account_id=order.account_id,
            order_id=order.id,
            strategy_id=order.strategy_id,
            # A part beyond the first (an average split over two prices) gets an id of its own.
            broker_fill_id=fill.fill_id if n == 0 else f"{fill.fill_id}+{n}",
            symbol=order.symbol,
            side=order.side.value,
            qty=qty,
            price=price,
            commission=fee,
            tax=tax,
            trading_day=fill_day,
            ts=ts,
        )
        if row is None:
            continue  # this id is booked already (a repeat of a report without a position)
        await _post(conn, order, row, qty, price, fee, tax, now)
        prior += qty * price
        booked.append(Booked(row, qty, price, fee, tax, ts))
    if booked:
        await _update_order(conn, order, fill, booked, now)
    return booked


async def _post(
    conn: AsyncConnection,
    order: Order,
    row: int,
    qty: int,
    price: int,
    fee: int,
    tax: int,
    now: datetime,
) -> None:
    uid, aid = order.user_id, order.account_id
    pos = await ledger.position(conn, uid, aid, order.symbol)
    effect = apply_fill(pos, order.side, qty, price, fee, tax)
    await ledger.save_position(conn, uid, aid, order.symbol, effect.position, now)
    amount = qty * price
    if order.side == Side.BUY:
        await ledger.post_cash(conn, uid, aid, -amount, "buy", now, order_id=order.id, fill_id=row)
    else:
        await ledger.post_cash(conn, uid, aid, amount, "sell", now, order_id=order.id, fill_id=row)
    await ledger.post_cash(conn, uid, aid, -fee, "commission", now, order_id=order.id, fill_id=row)
    await ledger.post_cash(conn, uid, aid, -tax, "tax", now, order_id=order.id, fill_id=row)
    await ledger.bump_day(conn, uid, krx.trading_date(now), realized=effect.realized)


async def _update_order(
    conn: AsyncConnection, order: Order, fill: FillReport, booked: list[Booked], now: datetime
) -> None:
    qty = sum(b.qty for b in booked)
    filled = order.filled_qty + qty
    remaining = order.qty - filled
    reserved = order.reserved_cash * remaining // order.remaining if order.side == Side.BUY else 0
    if order.status in TERMINAL:
        # Executions reported after the order was closed (a cancel that lost the race, a
        # restart that missed them): completely filled means FILLED, whatever it said before.
        status = S.FILLED if filled >= order.qty else order.status
    else:
        status = status_after_fill(order.qty, filled, order.status)
    if status == S.FILLED:
        reserved = 0
    values: dict[str, Any] = {
        "filled_qty": filled,
        "filled_amount": order.filled_amount + sum(b.qty * b.price for b in booked),
        "commission": order.commission + sum(b.commission for b in booked),
        "tax": order.tax + sum(b.tax for b in booked),
        "reserved_cash": reserved,
    }
    if order.broker_order_id is None:
        values["broker_order_id"] = fill.broker_order_id
    await conn.execute(
        t.orders.update()
        .where(t.orders.c.id == order.id)
        .values(status=status.value, updated_at=now, **values)
    )
    detail = ", ".join(f"{b.qty}@{b.price}" for b in booked)
    await repo.add_event(conn, order.user_id, order.id, status, now, f"fill {detail}")
