"""Settling one account's orders from the broker's reports (for ``Reconciler``).

Contract: executions the broker reports and hoga has not booked are booked, each once
(``converge``); an order the broker has no record of is rejected only after a grace period
and never resent; an order of a day the broker can no longer list keeps its state and is
reported ``unverifiable``. What a round did is counted in its ``ReconcileResult``.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from hoga.brokers.base import FillReport, OrderStatusReport
from hoga.domain import krx
from hoga.domain.clock import Clock
from hoga.domain.orders import Order, OrderStatus
from hoga.execution.service import OrderService
from hoga.store.repos import ledger

log = logging.getLogger(__name__)
S = OrderStatus


@dataclass
class ReconcileResult:
    """What one reconciliation round of an account found and did (admin status, alerts)."""

    account_id: int
    checked: int = 0
    fills_booked: int = 0
    settled: dict[str, int] = field(default_factory=dict)
    not_found: int = 0
    position_mismatches: list[dict[str, Any]] = field(default_factory=list)
    cash_mismatch: dict[str, int] | None = None
    #: Orders where hoga has booked more than the broker reports (never undone automatically).
    fill_mismatches: list[dict[str, Any]] = field(default_factory=list)
    #: Open orders of days the broker can no longer list (left as they are, see _unverifiable).
    unverifiable: list[int] = field(default_factory=list)
    error: str | None = None

    def settle(self, status: OrderStatus) -> None:
        self.settled[status.value] = self.settled.get(status.value, 0) + 1


async def converge(
    service: OrderService,
    clock: Clock,
    order: Order,
    rep: OrderStatusReport,
    fills: Sequence[FillReport] = (),
    result: ReconcileResult | None = None,
) -> Order:
    """Book the executions the broker reports for ``order`` that hoga has not: its fill
    reports first, then whatever its cumulative total counts beyond them."""
    result = result or ReconcileResult(order.account_id)
    before = order.status
    for fill in sorted(
        (f for f in fills if f.broker_order_id == rep.broker_order_id), key=lambda f: f.ts
    ):
        current = await service.get(order.user_id, order.id)
        if current.filled_qty >= rep.filled_qty and fill.cum_qty is None:
            break  # covered; a fill without a position could only be counted twice
        if await service.apply_fill(current, fill, reconcile_gaps=False) is not None:
            result.fills_booked += 1
    current = await service.get(order.user_id, order.id)
    if rep.filled_qty > current.filled_qty and rep.avg_price > 0:
        # Brokers that list executions only as a cumulative total (KIS) leave the rest;
        # booked as one step to the broker's total quantity and amount.
        missing = rep.filled_qty - current.filled_qty
        catch_up = FillReport(
            broker_order_id=rep.broker_order_id,
            fill_id=f"{rep.broker_order_id}:cum{rep.filled_qty}"
            + ("" if rep.filled_amount is not None else ledger.ESTIMATED),
            symbol=order.symbol,
            side=order.side,
            qty=missing,
            price=rep.avg_price,
            ts=clock.time(),
            client_order_id=order.client_order_id,
            cum_qty=rep.filled_qty,
            # Without the broker's amount, its average times its total is within a won a
            # share of it; the average times the missing quantity alone is not (the
            # executions hoga booked were at other prices).
            cum_amount=(
                rep.filled_amount
                if rep.filled_amount is not None
                else rep.avg_price * rep.filled_qty
            ),
        )
        if await service.apply_fill(current, catch_up, reconcile_gaps=False) is not None:
            result.fills_booked += 1
        current = await service.get(order.user_id, order.id)
    if current.filled_qty > rep.filled_qty:
        result.fill_mismatches.append(
            {"order_id": order.id, "hoga": current.filled_qty, "broker": rep.filled_qty}
        )
        log.error(
            "order %s: hoga booked %s shares, the broker reports %s",
            order.id,
            current.filled_qty,
            rep.filled_qty,
        )
    if current.status != before and current.status == S.FILLED:
        result.settle(current.status)
    return current


def match_report(
    order: Order, reports: list[OrderStatusReport], claimed: set[str]
) -> OrderStatusReport | None:
    """For brokers without client order ids: the earliest report no hoga order is linked
    to, with the same symbol, side, quantity and price, placed after we started sending."""
    since = (order.submitted_at or order.created_at).timestamp() - 5
    candidates = [
        r
        for r in reports
        if r.broker_order_id not in claimed
        and r.symbol == order.symbol
        and r.side == order.side
        and r.qty == order.qty
        and (order.price is None or r.price == order.price)
        and r.ts >= since
    ]
    return min(candidates, key=lambda r: r.ts) if candidates else None


def unverifiable(order: Order, result: ReconcileResult) -> None:
    """An UNKNOWN order of a day the broker no longer reports (after midnight, for Kiwoom).

    Rejecting it as "not found" would release cash that may already be spent at the
    broker, so it keeps its state and is reported; the position and cash comparison
    (``compare_books``) still shows whatever it did at the broker.
    """
    result.unverifiable.append(order.id)
    log.warning(
        "order %s (%s) cannot be checked: the broker no longer reports %s; it stays %s "
        "for an admin to settle",
        order.id,
        order.symbol,
        order.trading_day.isoformat(),
        order.status.value,
    )


async def settle_missing(
    service: OrderService, order: Order, now: datetime, result: ReconcileResult, grace: float
) -> None:
    """An open order the broker does not list: rejected, cancelled or expired once that is
    certain (``grace`` seconds after it was sent or last changed), else left for later."""
    sent_at = order.submitted_at or order.created_at
    age = (now - sent_at).total_seconds()
    if order.status in (S.UNKNOWN, S.SUBMITTING) and age >= grace:
        moved = await service.move(
            order,
            S.REJECTED,
            detail="reconcile: broker has no record",
            reason_code="reconcile.not_found",
            reason="브로커에 주문 기록이 없습니다. 주문되지 않았으며 재전송하지 않았습니다 "
            "(the broker has no record of this order; it was not placed and was not resent)",
        )
        if moved is not None:
            result.not_found += 1
    elif (
        order.status in (S.CANCEL_PENDING, S.ACCEPTED)
        and order.broker_order_id
        and order.filled_qty == 0
        and order.trading_day == krx.trading_date(now)
        and (now - order.updated_at).total_seconds() >= grace
    ):
        # The broker lists the order neither as open nor as executed (Kiwoom's reports
        # drop an unfilled order once it is cancelled): it is closed with nothing done.
        # A cancel whose answer was lost took effect - or a cancel sent again was refused
        # because the first had (which put the order back to ACCEPTED).
        moved = await service.move(
            order,
            S.CANCELLED,
            detail="reconcile: not open at the broker and never executed",
        )
        if moved is not None:
            result.settle(S.CANCELLED)
    elif order.status in (
        S.ACCEPTED,
        S.PARTIALLY_FILLED,
        S.CANCEL_PENDING,
        S.MODIFY_PENDING,
    ) and order.trading_day < krx.trading_date(now):
        moved = await service.move(
            order, S.EXPIRED, detail="reconcile: day over, broker has no open order"
        )
        if moved is not None:
            result.settle(S.EXPIRED)
