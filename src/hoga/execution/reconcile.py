"""Reconciliation: settle what hoga is not sure of from the broker's own reports.

Runs at start-up (before strategies start), periodically, and soon after any order becomes
``UNKNOWN``. For each account with orders the broker may know about, it fetches the broker's
order-status and fill reports, books fills hoga missed (de-duplicated by fill id), and brings
order states in line. An ``UNKNOWN`` order the broker has no record of, after a grace period,
is marked ``REJECTED`` (``reconcile.not_found``) - it is never resent automatically. Position
differences are recorded for the admin page, not "fixed" silently.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from hoga.brokers.base import BrokerError, FillReport, OrderStatusReport
from hoga.domain import krx
from hoga.domain.clock import Clock
from hoga.domain.orders import Order, OrderStatus
from hoga.execution.accounts import AccountService
from hoga.execution.service import OrderService
from hoga.store.db import SYSTEM, Database
from hoga.store.repos import ledger
from hoga.store.repos import orders as orders_repo

log = logging.getLogger(__name__)
S = OrderStatus


@dataclass
class ReconcileResult:
    account_id: int
    checked: int = 0
    fills_booked: int = 0
    settled: dict[str, int] = field(default_factory=dict)
    not_found: int = 0
    position_mismatches: list[dict[str, Any]] = field(default_factory=list)
    error: str | None = None


class Reconciler:
    """See the module docstring."""

    def __init__(
        self,
        db: Database,
        service: OrderService,
        accounts: AccountService,
        clock: Clock,
        *,
        interval: float = 30.0,
        unknown_grace: float = 20.0,
    ) -> None:
        self._db = db
        self._service = service
        self._accounts = accounts
        self._clock = clock
        self.interval = interval
        self.unknown_grace = unknown_grace
        self._task: asyncio.Task[None] | None = None
        self._soon: dict[int, asyncio.TimerHandle] = {}
        self._running: set[int] = set()
        self._inflight: set[asyncio.Task[ReconcileResult]] = set()
        self.last: dict[int, ReconcileResult] = {}
        service.on_unknown = self.request

    # --- scheduling

    def request(self, account_id: int, delay: float = 0.5) -> None:
        """Reconcile an account soon (debounced)."""
        if account_id in self._soon:
            return
        loop = asyncio.get_running_loop()

        def fire() -> None:
            self._soon.pop(account_id, None)
            task = loop.create_task(self.reconcile_account(account_id))
            self._inflight.add(task)
            task.add_done_callback(self._inflight.discard)

        self._soon[account_id] = loop.call_later(delay, fire)

    async def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._loop(), name="reconcile")

    async def stop(self) -> None:
        for handle in self._soon.values():
            handle.cancel()
        self._soon.clear()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            try:
                await self.reconcile_all()
            except Exception:
                log.exception("periodic reconciliation failed")

    async def reconcile_all(self) -> list[ReconcileResult]:
        async with self._db.tx(SYSTEM) as conn:
            open_orders = await orders_repo.open_orders(conn)
        accounts = sorted({o.account_id for o in open_orders if o.status != S.QUEUED})
        return [await self.reconcile_account(a) for a in accounts]

    # --- one account

    async def reconcile_account(self, account_id: int) -> ReconcileResult:
        result = ReconcileResult(account_id)
        if account_id in self._running:
            return result
        self._running.add(account_id)
        try:
            await self._reconcile(account_id, result)
        except BrokerError as e:
            result.error = f"{e.code}: {e.message}"
            log.warning("reconciliation of account %s: broker error %s", account_id, e.code)
        finally:
            self._running.discard(account_id)
            self.last[account_id] = result
        return result

    async def _reconcile(self, account_id: int, result: ReconcileResult) -> None:
        ref = await self._service.account_ref(account_id)
        if ref is None:
            return
        broker = self._accounts.broker_for(ref.broker)
        now = self._clock.now()
        local = await self._service.open_at_broker(account_id)
        # Orders still being sent are not ours to judge yet.
        local = [
            o
            for o in local
            if not (
                o.status == S.SUBMITTING
                and o.submitted_at
                and (now - o.submitted_at).total_seconds() < self._service.policy.submit_timeout
            )
        ]
        result.checked = len(local)
        if not local:
            await self._positions(ref, broker, result)
            return
        days = sorted({o.trading_day for o in local} | {krx.trading_date(now)})
        reports: list[OrderStatusReport] = []
        fills: list[FillReport] = []
        for day in days:
            reports += await broker.order_reports(ref, day)
            fills += await broker.fill_reports(ref, day)
        by_id = {r.broker_order_id: r for r in reports}
        by_client = {r.client_order_id: r for r in reports if r.client_order_id}
        claimed = {o.broker_order_id for o in local if o.broker_order_id}
        for order in local:
            rep = None
            if order.broker_order_id:
                rep = by_id.get(order.broker_order_id)
            if rep is None:
                rep = by_client.get(order.client_order_id)
            if rep is None and order.broker_order_id is None:
                rep = self._match(order, reports, claimed)
            if rep is None:
                await self._missing(order, now, result)
                continue
            claimed.add(rep.broker_order_id)
            for fill in sorted(
                (f for f in fills if f.broker_order_id == rep.broker_order_id), key=lambda f: f.ts
            ):
                current = await self._service.get(order.user_id, order.id)
                if await self._service.apply_fill(current, fill) is not None:
                    result.fills_booked += 1
            current = await self._service.get(order.user_id, order.id)
            if rep.filled_qty > current.filled_qty:
                # Brokers that list executions only as a cumulative total (KIS) leave the rest.
                if await self._catch_up(current, rep) is not None:
                    result.fills_booked += 1
                current = await self._service.get(order.user_id, order.id)
            moved = await self._service.apply_report(current, rep)
            if moved is not None:
                result.settled[moved.status.value] = result.settled.get(moved.status.value, 0) + 1
        await self._positions(ref, broker, result)

    async def _catch_up(self, order: Order, rep: OrderStatusReport) -> Order | None:
        """Book the executions a report counts but no fill report itemised, so the order's
        filled amount matches the broker's to the won. Integer prices cannot always carry an
        exact average, so the gap is booked as at most two fills one won apart. Each fill id
        names the cumulative quantity it brings the order to, so the same report seen again
        (or after a crash between the two) books nothing twice."""
        missing = rep.filled_qty - order.filled_qty
        if missing <= 0 or rep.avg_price <= 0:
            return None
        total = (
            rep.filled_amount if rep.filled_amount is not None else rep.avg_price * rep.filled_qty
        )
        amount = total - order.filled_amount
        if amount < missing:  # the broker's figures disagree with ours; book at its average
            amount = rep.avg_price * missing
        price, odd = divmod(amount, missing)
        parts = [(missing - odd, price), (odd, price + 1)]
        current: Order | None = order
        cum = order.filled_qty
        for qty, px in parts:
            if qty <= 0 or current is None:
                continue
            cum += qty
            fill = FillReport(
                broker_order_id=rep.broker_order_id,
                fill_id=f"{rep.broker_order_id}:cum{cum}",
                symbol=order.symbol,
                side=order.side,
                qty=qty,
                price=px,
                ts=self._clock.time(),
                client_order_id=order.client_order_id,
            )
            current = await self._service.apply_fill(current, fill) or current
        return current if current is not order else None

    def _match(
        self, order: Order, reports: list[OrderStatusReport], claimed: set[str]
    ) -> OrderStatusReport | None:
        """For brokers without client order ids: the earliest unclaimed report with the same
        symbol, side, quantity and price placed after we started sending."""
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

    async def _missing(self, order: Order, now: datetime, result: ReconcileResult) -> None:
        sent_at = order.submitted_at or order.created_at
        age = (now - sent_at).total_seconds()
        if order.status in (S.UNKNOWN, S.SUBMITTING) and age >= self.unknown_grace:
            moved = await self._service.move(
                order,
                S.REJECTED,
                detail="reconcile: broker has no record",
                reason_code="reconcile.not_found",
                reason="브로커에 주문 기록이 없습니다. 주문되지 않았으며 재전송하지 않았습니다 "
                "(the broker has no record of this order; it was not placed and was not resent)",
            )
            if moved is not None:
                result.not_found += 1
        elif order.status in (
            S.ACCEPTED,
            S.PARTIALLY_FILLED,
            S.CANCEL_PENDING,
        ) and order.trading_day < krx.trading_date(now):
            moved = await self._service.move(
                order, S.EXPIRED, detail="reconcile: day over, broker has no open order"
            )
            if moved is not None:
                result.settled["EXPIRED"] = result.settled.get("EXPIRED", 0) + 1

    async def _positions(self, ref: Any, broker: Any, result: ReconcileResult) -> None:
        try:
            theirs = {p.symbol: p.qty for p in await broker.position_reports(ref)}
        except BrokerError:
            return
        async with self._db.tx(SYSTEM) as conn:
            ours = {
                p.symbol: p.qty for p in await ledger.positions(conn, ref.user_id, ref.account_id)
            }
        for symbol in sorted(set(theirs) | set(ours)):
            if theirs.get(symbol, 0) != ours.get(symbol, 0):
                result.position_mismatches.append(
                    {"symbol": symbol, "hoga": ours.get(symbol, 0), "broker": theirs.get(symbol, 0)}
                )
        if result.position_mismatches:
            log.warning(
                "account %s positions differ from the broker: %s",
                ref.account_id,
                result.position_mismatches,
            )

    def status(self) -> dict[str, Any]:
        return {
            str(a): {
                "checked": r.checked,
                "fills_booked": r.fills_booked,
                "settled": r.settled,
                "not_found": r.not_found,
                "position_mismatches": r.position_mismatches,
                "error": r.error,
            }
            for a, r in self.last.items()
        }
