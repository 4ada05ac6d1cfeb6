"""Booking an execution into the books: fills -> ledger, positions, cash, the day's P&L.

``Booking.apply_fill`` decides *what* to book (``domain/fills.py``: the parts that bring the
order to the broker's cumulative position) and holds the account lock and the transaction;
``book_parts`` writes each part - the fill row, the position, the cash ledger (the
trade, its commission, its tax) and the day's realised P&L - and then the order's totals, all
in that one transaction, so a fault anywhere leaves none of it.

Costs are rounded per order (``krx.fill_costs`` with the order's prior executed amount), so
however the broker's executions reach hoga they cost what the broker charged. A broker's own
fee figures are used when the part is exactly the execution it reported them for.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from hoga.brokers.base import FillReport
from hoga.domain import fills, krx
from hoga.domain.clock import KST
from hoga.domain.market import Instrument
from hoga.domain.orders import Executed, Order, OrderStatus, Side
from hoga.domain.portfolio import apply_fill
from hoga.execution.ordercore import OrderCore
from hoga.store.db import Actor
from hoga.store.repos import accounts as accounts_repo
from hoga.store.repos import ledger
from hoga.store.repos import orders as repo

log = logging.getLogger(__name__)

S = OrderStatus


class Booking:
    """Books execution reports for the order service (one transaction per report)."""

    def __init__(self, core: OrderCore) -> None:
        self._core = core

    async def apply_fill(
        self, order: Order, fill: FillReport, *, reconcile_gaps: bool = True
    ) -> Order | None:
        """Book one execution report, once whatever its id (``domain/fills.py``): fill rows,
        order, position, cash and the day's P&L in one transaction (``book_parts``).

        Returns the updated order, or None when there was nothing (more) to book. A report
        that shows executions hoga has not booked but cannot price asks for reconciliation
        (unless it comes from reconciliation itself: ``reconcile_gaps=False``).
        """
        core = self._core
        async with (
            core.account_locks[order.account_id],
            core.db.tx(Actor.user(order.user_id)) as conn,
        ):
            order = await core.reload(conn, order)
            p = plan_for(order, fill)
            if p.skip is None:
                booked = await book_at_account_rates(
                    conn,
                    order,
                    fill,
                    p.parts,
                    core.quotes.instrument(order.symbol),
                    core.clock.now(),
                )
                updated = await core.reload(conn, order) if booked else None
        if p.skip is not None:
            if p.skip != "duplicate":
                log.warning(
                    "fill %s for order %s not booked (%s: qty %s, cumulative %s, booked %s/%s)",
                    fill.fill_id,
                    order.id,
                    p.skip,
                    fill.qty,
                    fill.cum_qty,
                    order.filled_qty,
                    order.qty,
                )
                if reconcile_gaps:
                    # The broker knows executions hoga cannot book from this report alone.
                    core.on_unknown(order.account_id)
            return None
        if updated is None:
            return None
        core.stats["fills"] += len(booked)
        for b in booked:
            core.bus.publish(order.user_id, {"type": "fill", "fill": fill_view(order, b)})
        core.publish(updated)
        return updated


@dataclass(frozen=True, slots=True)
class Booked:
    """One fill row written: its id and figures (for the event stream)."""

    row_id: int
    qty: int
    price: int
    commission: int
    tax: int
    ts: datetime


def fill_view(order: Order, b: Booked) -> dict[str, Any]:
    """A booked fill as the event stream shows it."""
    return {
        "id": b.row_id,
        "order_id": order.id,
        "strategy_id": order.strategy_id,
        "symbol": order.symbol,
        "side": order.side.value,
        "qty": b.qty,
        "price": b.price,
        "commission": b.commission,
        "tax": b.tax,
        "ts": b.ts.isoformat(),
        "account_id": order.account_id,
    }


def plan_for(order: Order, fill: FillReport) -> fills.FillPlan:
    """What to book of ``fill`` on ``order`` as it stands (``domain/fills.py``)."""
    return fills.plan(
        order_qty=order.qty,
        filled_qty=order.filled_qty,
        filled_amount=order.filled_amount,
        qty=fill.qty,
        price=fill.price,
        cum_qty=fill.cum_qty,
        cum_amount=fill.cum_amount,
    )


async def book_at_account_rates(
    conn: AsyncConnection,
    order: Order,
    fill: FillReport,
    parts: tuple[tuple[int, int], ...],
    instrument: Instrument | None,
    now: datetime,
) -> list[Booked]:
    """``book_parts`` at the account's commission rate and the instrument's market's tax."""
    acct = await accounts_repo.get_account(conn, order.user_id, order.account_id)
    return await book_parts(
        conn,
        order,
        fill,
        parts,
        rate=acct.commission_rate if acct else krx.DEFAULT_COMMISSION_RATE,
        market=instrument.market if instrument else "KOSPI",
        now=now,
    )


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
    pos = await ledger.position(conn, uid, aid, order.symbol, for_update=True)
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
    event = Executed(
        qty=sum(b.qty for b in booked),
        amount=sum(b.qty * b.price for b in booked),
        commission=sum(b.commission for b in booked),
        tax=sum(b.tax for b in booked),
        broker_order_id=fill.broker_order_id,
    )
    detail = ", ".join(f"{b.qty}@{b.price}" for b in booked)
    # The order was re-read under the account lock in this transaction: the write cannot
    # lose its compare-and-set.
    if await repo.apply(conn, order, event, now, detail=f"fill {detail}") is None:
        raise RuntimeError(f"order {order.id} changed under its account lock")
