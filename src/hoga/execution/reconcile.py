"""Reconciliation: settle what hoga is not sure of from the broker's own reports, and bring
hoga's books to the broker's.

Runs at start-up (before strategies start), periodically, and soon after any order becomes
``UNKNOWN``. For each account the broker may know something about, it fetches the broker's
order-status and fill reports once and:

* settles open orders: an ``UNKNOWN`` order found at the broker takes the broker's state; one
  the broker has no record of, after a grace period, is marked ``REJECTED``
  (``reconcile.not_found``) - it is never resent automatically. Where the broker cannot list
  the order's day at all (``ReportsUnavailable``: Kiwoom's inquiries cover today only, so an
  order left UNKNOWN overnight), the order stays as it is and is reported as ``unverifiable``;
* converges executions: every hoga order the broker reports on - open or already closed -
  books the fills it missed, up to the broker's cumulative quantity and amount
  (``domain/fills.py`` books each execution once, whatever id it arrives under); an order the
  broker filled completely ends ``FILLED`` even if hoga had closed it;
* compares the books: positions and cash against the broker's balance. Differences that
  remain are reported (admin status, log) and, where the account has no open order, today's
  reports are read to converge them; they are never "fixed" by overwriting.

A request for an account that is being reconciled runs again right after the current round,
so an ``UNKNOWN`` raised meanwhile is not left for the next periodic round. Storage faults end
a round with an error and schedule a retry.

This module schedules and runs the rounds; settling orders from the reports is
``reconcile_orders.py``, comparing the books ``reconcile_books.py``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from datetime import date
from typing import Any

from hoga.brokers.base import BrokerError, FillReport, OrderStatusReport, ReportsUnavailable
from hoga.domain import krx
from hoga.domain.clock import Clock
from hoga.domain.errors import StorageUnavailable
from hoga.domain.orders import Order, OrderStatus
from hoga.execution import retry
from hoga.execution.accounts import AccountService
from hoga.execution.reconcile_books import compare_books
from hoga.execution.reconcile_orders import (
    ReconcileResult,
    converge,
    match_report,
    settle_missing,
    unverifiable,
)
from hoga.execution.service import OrderService
from hoga.store.db import SYSTEM, Actor, Database
from hoga.store.repos import orders as orders_repo
from hoga.tasks import cancel_and_wait

log = logging.getLogger(__name__)
S = OrderStatus

#: Accounts reconciled at once (each has its own broker pacing; SQLite serialises anyway).
PARALLEL = 8


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
        self._again: set[int] = set()
        self._failures: dict[int, int] = {}
        self._retry: dict[int, float] = {}
        self._inflight: set[asyncio.Task[ReconcileResult]] = set()
        self._parallel = asyncio.Semaphore(PARALLEL)
        self.last: dict[int, ReconcileResult] = {}
        # Cluster mode: only the accounts of users this server owns (cluster/node.py).
        self.owns_account: Callable[[int], bool] | None = None
        service.on_unknown = self.request

    # --- scheduling

    def request(self, account_id: int, delay: float = 0.5) -> None:
        """Reconcile an account soon (debounced; re-run if it is being reconciled now)."""
        if account_id in self._running:
            self._again.add(account_id)
            return
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
        await cancel_and_wait(t for t in (self._task, *self._inflight) if t is not None)
        self._task = None

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            try:
                await self.reconcile_all()
            except StorageUnavailable as e:
                log.warning("periodic reconciliation skipped: storage fault (%s)", e.code)
            except Exception:
                log.exception("periodic reconciliation failed")

    async def reconcile_all(self) -> list[ReconcileResult]:
        async with self._db.tx(SYSTEM) as conn:
            accounts = await orders_repo.accounts_at_broker(
                conn, krx.trading_date(self._clock.now())
            )
        if self.owns_account is not None:
            accounts = [a for a in accounts if self.owns_account(a)]
        return list(await asyncio.gather(*(self.reconcile_account(a) for a in accounts)))

    # --- one account

    async def reconcile_account(self, account_id: int) -> ReconcileResult:
        result = ReconcileResult(account_id)
        if self.owns_account is not None and not self.owns_account(account_id):
            return result  # another server owns this account's user
        if account_id in self._running:
            self._again.add(account_id)
            return result
        self._running.add(account_id)
        try:
            async with self._parallel:
                while True:
                    self._again.discard(account_id)
                    result = await self._round(account_id)
                    if account_id not in self._again or account_id in self._retry:
                        break
        finally:
            self._running.discard(account_id)
            self._again.discard(account_id)
        delay = self._retry.pop(account_id, None)
        if delay is not None:
            self.request(account_id, delay)
        return result

    async def _round(self, account_id: int) -> ReconcileResult:
        result = ReconcileResult(account_id)
        try:
            await self._reconcile(account_id, result)
            self._failures.pop(account_id, None)
        except BrokerError as e:
            result.error = f"{e.code}: {e.message}"
            log.warning("reconciliation of account %s: broker error %s", account_id, e.code)
        except StorageUnavailable as e:
            result.error = e.code
            n = self._failures[account_id] = self._failures.get(account_id, 0) + 1
            delay = self._retry[account_id] = retry.backoff(n, base=0.5, cap=30.0)
            log.warning(
                "reconciliation of account %s: storage fault (%s); again in %.1f s",
                account_id,
                e.code,
                delay,
            )
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
        if not local and not await self._books(ref, broker, result):
            return
        # Open orders to settle, or books that differ: read the broker's reports (once).
        days = sorted({o.trading_day for o in local} | {krx.trading_date(now)})
        reports: list[OrderStatusReport] = []
        fills: list[FillReport] = []
        blind: set[date] = set()
        for day in days:
            try:
                reports += await broker.order_reports(ref, day)
                fills += await broker.fill_reports(ref, day)
            except ReportsUnavailable:
                blind.add(day)
        async with self._db.tx(Actor.user(ref.user_id)) as conn:
            linked = await orders_repo.by_broker_ids(
                conn, ref.user_id, account_id, (r.broker_order_id for r in reports), days
            )
        by_id = {r.broker_order_id: r for r in reports}
        by_client = {r.client_order_id: r for r in reports if r.client_order_id}
        claimed = set(linked)
        done: set[int] = set()
        for order in local:
            rep = by_id.get(order.broker_order_id) if order.broker_order_id else None
            if rep is None:
                rep = by_client.get(order.client_order_id)
            if rep is None and order.broker_order_id is None:
                rep = match_report(order, reports, claimed)
            if (
                rep is None
                and order.trading_day in blind
                and order.status in (S.UNKNOWN, S.SUBMITTING)
            ):
                # The broker cannot list that day: its silence proves nothing either way.
                unverifiable(order, result)
                continue
            if rep is None:
                await settle_missing(self._service, order, now, result, self.unknown_grace)
                continue
            claimed.add(rep.broker_order_id)
            done.add(order.id)
            current = await self.converge(order, rep, fills, result)
            moved = await self._service.apply_report(current, rep)
            if moved is not None:
                result.settle(moved.status)
            elif (
                current.status == S.CANCEL_PENDING
                and rep.status in (S.ACCEPTED, S.PARTIALLY_FILLED)
                and (now - current.updated_at).total_seconds() >= self.unknown_grace
            ):
                # The cancel went out with an unknown outcome and the broker still lists the
                # order working: it did not take effect. Sending it again is safe (a cancel
                # cannot trade; a second one for a closed order is only refused).
                self._service.cancels_sent.discard(order.id)
        # Orders hoga has closed (or not looked at) that the broker reports executions for.
        for bid, order in linked.items():
            rep = by_id.get(bid)
            if rep is not None and order.id not in done and rep.filled_qty != order.filled_qty:
                await self.converge(order, rep, fills, result)
        await self._books(ref, broker, result)

    async def _books(self, ref: Any, broker: Any, result: ReconcileResult) -> bool:
        """Compare positions and cash with the broker's balance; True if they differ."""
        if self.owns_account is not None and ref.broker == "paper":
            # Cluster mode: each server's paper broker keeps its own simulated book, so after
            # a user moved the new owner's book is not the account's history (docs/scaling.md).
            return False
        return await compare_books(self._db, self._clock, self._service, ref, broker, result)

    async def converge(
        self,
        order: Order,
        rep: OrderStatusReport,
        fills: Sequence[FillReport] = (),
        result: ReconcileResult | None = None,
    ) -> Order:
        """Book the executions the broker reports for ``order`` that hoga has not."""
        return await converge(self._service, self._clock, order, rep, fills, result)

    def status(self) -> dict[str, Any]:
        return {
            str(a): {
                "checked": r.checked,
                "fills_booked": r.fills_booked,
                "settled": r.settled,
                "not_found": r.not_found,
                "position_mismatches": r.position_mismatches,
                "cash_mismatch": r.cash_mismatch,
                "fill_mismatches": r.fill_mismatches,
                "unverifiable": r.unverifiable,
                "error": r.error,
            }
            for a, r in self.last.items()
        }
