"""Comparing an account's books with the broker's balance (for ``Reconciler``).

Contract: positions and cash are compared with the broker's balance and differences reported,
never "fixed" by overwriting - with one exception: a cash difference within the truncation of
average prices of that day's estimated executions, once those orders are done and nothing is
in doubt, is posted as one ``rounding`` ledger row naming the orders.
"""

from __future__ import annotations

import logging
from typing import Any

from hoga.brokers.base import BrokerError
from hoga.domain import krx
from hoga.domain.clock import Clock
from hoga.domain.orders import TERMINAL, OrderStatus
from hoga.execution.reconcile_orders import ReconcileResult
from hoga.execution.service import OrderService
from hoga.store.db import SYSTEM, Actor, Database
from hoga.store.repos import ledger

log = logging.getLogger(__name__)
S = OrderStatus


async def compare_books(
    db: Database,
    clock: Clock,
    service: OrderService,
    ref: Any,
    broker: Any,
    result: ReconcileResult,
) -> bool:
    """Compare positions and cash with the broker's balance; True if they differ."""
    try:
        balance = await broker.balance(ref)
    except BrokerError:
        return False
    async with db.tx(SYSTEM) as conn:
        ours = {p.symbol: p.qty for p in await ledger.positions(conn, ref.user_id, ref.account_id)}
        cash = await ledger.cash(conn, ref.user_id, ref.account_id)
    theirs = {p.symbol: p.qty for p in balance.positions}
    result.position_mismatches = [
        {"symbol": s, "hoga": ours.get(s, 0), "broker": theirs.get(s, 0)}
        for s in sorted(set(theirs) | set(ours))
        if theirs.get(s, 0) != ours.get(s, 0)
    ]
    result.cash_mismatch = (
        {"hoga": cash, "broker": balance.cash, "difference": cash - balance.cash}
        if cash != balance.cash
        else None
    )
    if result.cash_mismatch and not result.position_mismatches:
        await _true_up(db, clock, service, ref, result)
    if result.position_mismatches:
        log.warning(
            "account %s positions differ from the broker: %s",
            ref.account_id,
            result.position_mismatches,
        )
    if result.cash_mismatch:
        log.warning(
            "account %s cash differs from the broker: %s", ref.account_id, result.cash_mismatch
        )
    return bool(result.position_mismatches or result.cash_mismatch)


async def _true_up(
    db: Database, clock: Clock, service: OrderService, ref: Any, result: ReconcileResult
) -> None:
    """Bring cash to the broker's when the difference is the truncation of average prices.

    Executions hoga missed (a restart) and learned from a report that gives only a
    truncated average price (Kiwoom's ka10075/ka10076) are booked at an estimate within a
    won a share of the truth (``domain/fills.py``). Once no order of the account is in
    doubt (resting orders move no cash), those orders are done and the positions agree, a
    cash difference no larger than those orders'
    shares (plus a won of cost flooring each) is that estimate: it is posted as one
    ``rounding`` ledger row naming the orders, so cash equals the broker's and the ledger
    says why. Anything larger, or while orders are open, stays a reported mismatch.
    """
    assert result.cash_mismatch is not None
    difference = result.cash_mismatch["difference"]
    in_doubt = (S.UNKNOWN, S.SUBMITTING, S.CANCEL_PENDING)
    if any(o.status in in_doubt for o in await service.open_at_broker(ref.account_id)):
        return  # an order whose outcome is not known yet may still move cash
    now = clock.now()
    async with db.tx(Actor.user(ref.user_id)) as conn:
        estimated = await ledger.estimated_orders(
            conn, ref.user_id, ref.account_id, krx.trading_date(now)
        )
        if not estimated or any(
            OrderStatus(status) not in TERMINAL for _, status in estimated.values()
        ):
            return  # settle once, when those orders are done filling
        bound = sum(qty + 2 for qty, _ in estimated.values())
        if abs(difference) > bound:
            return
        await ledger.post_cash(
            conn,
            ref.user_id,
            ref.account_id,
            -difference,
            "rounding",
            now,
            note="broker average-price truncation, orders "
            + ",".join(str(i) for i in sorted(estimated)),
        )
    log.info(
        "account %s: cash brought to the broker's by %+d won (average-price estimates of "
        "orders %s)",
        ref.account_id,
        -difference,
        sorted(estimated),
    )
    result.cash_mismatch = None
