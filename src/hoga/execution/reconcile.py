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
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from hoga.brokers.base import BrokerError, FillReport, OrderStatusReport, ReportsUnavailable
from hoga.domain import krx
from hoga.domain.clock import Clock
from hoga.domain.errors import StorageUnavailable
from hoga.domain.orders import TERMINAL, Order, OrderStatus
from hoga.execution import retry
from hoga.execution.accounts import AccountService
from hoga.execution.service import OrderService
from hoga.store.db import SYSTEM, Actor, Database
from hoga.store.repos import ledger
from hoga.store.repos import orders as orders_repo

log = logging.getLogger(__name__)
S = OrderStatus

#: Accounts reconciled at once (each has its own broker pacing; SQLite serialises anyway).
PARALLEL = 8


@dataclass
class ReconcileResult:
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
        tasks = [t for t in (self._task, *self._inflight) if t is not None]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
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
                rep = self._match(order, reports, claimed)
            if (
                rep is None
                and order.trading_day in blind
                and order.status in (S.UNKNOWN, S.SUBMITTING)
            ):
                # The broker cannot list that day: its silence proves nothing either way.
                self._unverifiable(order, result)
                continue
            if rep is None:
                await self._missing(order, now, result)
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

    async def converge(
        self,
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
            current = await self._service.get(order.user_id, order.id)
            if current.filled_qty >= rep.filled_qty and fill.cum_qty is None:
                break  # covered; a fill without a position could only be counted twice
            if await self._service.apply_fill(current, fill, reconcile_gaps=False) is not None:
                result.fills_booked += 1
        current = await self._service.get(order.user_id, order.id)
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
                ts=self._clock.time(),
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
            if await self._service.apply_fill(current, catch_up, reconcile_gaps=False) is not None:
                result.fills_booked += 1
            current = await self._service.get(order.user_id, order.id)
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

    def _match(
        self, order: Order, reports: list[OrderStatusReport], claimed: set[str]
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

    def _unverifiable(self, order: Order, result: ReconcileResult) -> None:
        """An UNKNOWN order of a day the broker no longer reports (after midnight, for Kiwoom).

        Rejecting it as "not found" would release cash that may already be spent at the
        broker, so it keeps its state and is reported; the position and cash comparison
        (``_books``) still shows whatever it did at the broker.
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
        elif (
            order.status in (S.CANCEL_PENDING, S.ACCEPTED)
            and order.broker_order_id
            and order.filled_qty == 0
            and order.trading_day == krx.trading_date(now)
            and (now - order.updated_at).total_seconds() >= self.unknown_grace
        ):
            # The broker lists the order neither as open nor as executed (Kiwoom's reports
            # drop an unfilled order once it is cancelled): it is closed with nothing done.
            # A cancel whose answer was lost took effect - or a cancel sent again was refused
            # because the first had (which put the order back to ACCEPTED).
            moved = await self._service.move(
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
            moved = await self._service.move(
                order, S.EXPIRED, detail="reconcile: day over, broker has no open order"
            )
            if moved is not None:
                result.settle(S.EXPIRED)

    async def _books(self, ref: Any, broker: Any, result: ReconcileResult) -> bool:
        """Compare positions and cash with the broker's balance; True if they differ."""
        if self.owns_account is not None and ref.broker == "paper":
            # Cluster mode: each server's paper broker keeps its own simulated book, so after
            # a user moved the new owner's book is not the account's history (docs/scaling.md).
            return False
        try:
            balance = await broker.balance(ref)
        except BrokerError:
            return False
        async with self._db.tx(SYSTEM) as conn:
            ours = {
                p.symbol: p.qty for p in await ledger.positions(conn, ref.user_id, ref.account_id)
            }
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
            await self._true_up(ref, result)
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

    async def _true_up(self, ref: Any, result: ReconcileResult) -> None:
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
        if any(o.status in in_doubt for o in await self._service.open_at_broker(ref.account_id)):
            return  # an order whose outcome is not known yet may still move cash
        now = self._clock.now()
        async with self._db.tx(Actor.user(ref.user_id)) as conn:
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
