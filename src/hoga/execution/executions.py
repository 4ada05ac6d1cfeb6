"""Execution events: what brokers tell hoga about its orders, matched and applied in order.

Brokers push order updates and fills (``on_execution``); each is matched to its order by the
broker's order id (or the client order id), then applied - fills through ``Booking``, status
reports through the checked transition. Events the database cannot take are held per account
and replayed in order (``retry.HeldEvents``).

**The race between a ``place`` answer and its execution events** is handled here and only here.
While a ``place`` call is in flight (``placing``/``placed``) the order is ``SUBMITTING`` and
hoga does not know its broker id yet, so:

* an acceptance pushed for it is ignored - the answer on its way records it;
* other events that name a broker id hoga has not recorded are *parked* and replayed once the
  answer records the id (``acknowledged`` releases them); parked events expire after
  ``ORPHAN_TTL`` (orders placed outside hoga are never claimed; reconciliation settles ours);
* a closing report (cancelled, rejected, expired) for a ``SUBMITTING`` order waits for the
  answer, which settles it;
* an answer that arrives after executions already moved the order on only records the id.

A modify in flight is the same race in small: pushed "working" updates of a ``MODIFY_PENDING``
order are ignored; the modify's answer, or reconciliation's report, settles it
(``modifying.py``).
"""

from __future__ import annotations

import logging
from collections import OrderedDict

from sqlalchemy.ext.asyncio import AsyncConnection

from hoga.brokers.base import (
    ExecutionEvent,
    FillEvent,
    FillReport,
    OrderStatusReport,
    OrderUpdate,
)
from hoga.domain.errors import StorageUnavailable
from hoga.domain.orders import TERMINAL, Identified, Order, OrderStatus
from hoga.execution import retry
from hoga.execution.booking import Booking
from hoga.execution.modifying import Modifier
from hoga.execution.ordercore import OrderCore
from hoga.store.db import Actor
from hoga.store.repos import orders as repo

log = logging.getLogger(__name__)

S = OrderStatus
_WORKING = (S.ACCEPTED, S.PARTIALLY_FILLED)
ORPHAN_TTL = 600.0
MAX_ORPHANS = 10_000


class ExecutionEvents:
    """Matches broker events to orders and applies them (see the module docstring)."""

    def __init__(self, core: OrderCore, booking: Booking, modifier: Modifier) -> None:
        self._core = core
        self._booking = booking
        self._modifier = modifier
        # Events for broker orders hoga has not (yet) recorded, oldest first.
        self._orphans: OrderedDict[tuple[int, str], tuple[float, list[ExecutionEvent]]] = (
            OrderedDict()
        )
        # (account, client order id) of orders whose place() call is in flight.
        self._sending: set[tuple[int, str | None]] = set()
        # Execution events the database could not take yet (replayed in order).
        self._held = retry.HeldEvents(self._execution, lambda a: core.on_unknown(a))

    # ------------------------------------------------------------------ the place() race

    def placing(self, order: Order) -> None:
        """A ``place`` call for ``order`` is about to start."""
        self._sending.add((order.account_id, order.client_order_id))

    def placed(self, order: Order) -> None:
        """The ``place`` call's outcome is known (and, for an acknowledgement, recorded)."""
        self._sending.discard((order.account_id, order.client_order_id))

    async def acknowledged(
        self, order: Order, broker_order_id: str, org_no: str | None
    ) -> Order | None:
        """Record the broker's acknowledgement of ``order`` and replay what was parked."""
        core = self._core
        async with (
            core.account_locks[order.account_id],
            core.db.tx(Actor.user(order.user_id)) as conn,
        ):
            moved = await self._accept(conn, order, broker_order_id, org_no)
        if moved is not None:
            core.publish(moved)
        await self._release(order.account_id, broker_order_id)
        return moved

    async def _accept(
        self, conn: AsyncConnection, order: Order, broker_order_id: str, org_no: str | None
    ) -> Order | None:
        # The usual case - the order still as the claim left it - is one compare-and-set from
        # ``order``; the row is re-read only when that fails (executions or recovery moved it).
        now = self._core.clock.now()
        values = {"broker_order_id": broker_order_id, "broker_org_no": org_no}
        if order.status == S.SUBMITTING:
            moved = await repo.transition(conn, order, S.ACCEPTED, now, detail="accepted", **values)
            if moved is not None:
                return moved
        fresh = await self._core.reload(conn, order)
        if fresh.status in (S.SUBMITTING, S.UNKNOWN):
            return await repo.transition(conn, fresh, S.ACCEPTED, now, detail="accepted", **values)
        if (fresh.broker_order_id, fresh.broker_org_no) != (broker_order_id, org_no):
            # Executions got here first (they already moved the order on); keep the id.
            return await repo.apply(conn, fresh, Identified(broker_order_id, org_no), now)
        return None

    # ------------------------------------------------------------------ events

    async def on_execution(self, account_id: int, event: ExecutionEvent) -> None:
        """An execution event from a broker: an order update or a fill.

        If the database cannot take it (a storage fault), the event is held and replayed in
        order until it is booked; the account's later events wait behind it."""
        if self._held.holding(account_id):
            self._held.hold(account_id, event)
            return
        try:
            await self._execution(account_id, event)
        except StorageUnavailable as e:
            log.warning("account %s: execution event held, storage fault (%s)", account_id, e.code)
            self._held.hold(account_id, event)

    async def _execution(self, account_id: int, event: ExecutionEvent) -> None:
        report = event.fill if isinstance(event, FillEvent) else event.report
        if (
            isinstance(event, OrderUpdate)
            and event.report.status == S.ACCEPTED
            and (account_id, event.report.client_order_id) in self._sending
        ):
            return  # the place() answer on its way records the acceptance
        order = await self._find(account_id, report)
        if order is None:
            # Not ours yet (the place() answer is still on its way), or not ours at all.
            self._park(account_id, report.broker_order_id, event)
            return
        had_id = order.broker_order_id is not None
        if isinstance(event, FillEvent):
            await self._booking.apply_fill(order, event.fill)
        elif order.status == S.MODIFY_PENDING and event.report.status in _WORKING:
            pass  # the modify's answer (or reconciliation's report) settles it, not a push
        else:
            await self.apply_report(order, event.report)
        if not had_id:
            await self._release(account_id, report.broker_order_id)

    def _park(self, account_id: int, broker_order_id: str, event: ExecutionEvent) -> None:
        now = self._core.clock.monotonic()
        while self._orphans:
            key, (since, _) = next(iter(self._orphans.items()))
            if now - since < ORPHAN_TTL and len(self._orphans) < MAX_ORPHANS:
                break
            del self._orphans[key]
        _, events = self._orphans.setdefault((account_id, broker_order_id), (now, []))
        events.append(event)

    async def _release(self, account_id: int, broker_order_id: str) -> None:
        """Replay events parked for an order whose broker id hoga now knows."""
        _, events = self._orphans.pop((account_id, broker_order_id), (0.0, []))
        for event in events:
            await self.on_execution(account_id, event)

    async def _find(self, account_id: int, report: OrderStatusReport | FillReport) -> Order | None:
        user_id = await self._core.owner(account_id)
        if user_id is None:
            return None
        broker_order_id, client_order_id = report.broker_order_id, report.client_order_id
        async with self._core.db.tx(Actor.user(user_id)) as conn:
            order = await repo.get_by_broker_id(conn, user_id, account_id, broker_order_id)
            if order is not None and (order.symbol, order.side) != (report.symbol, report.side):
                # The broker's number names another order than the one hoga has under it: a
                # number reused (Kiwoom numbers restart daily; a paper book started afresh on
                # another cluster server). Never book it there; the place() answer or the
                # client id finds the right one, or the event waits as an orphan.
                log.warning(
                    "account %s: broker order %s is %s %s, not order %s (%s %s); not matched",
                    account_id,
                    broker_order_id,
                    report.side.value,
                    report.symbol,
                    order.id,
                    order.side.value,
                    order.symbol,
                )
                order = None
            if order is None and client_order_id:
                order = await repo.get_by_client_id(conn, user_id, client_order_id)
                if order is not None and order.account_id != account_id:
                    order = None
        return order

    async def apply_report(self, order: Order, rep: OrderStatusReport) -> Order | None:
        """Bring an order in line with the broker's status report (fills come separately)."""
        target = rep.status
        if order.status in TERMINAL or target == order.status:
            return None
        if order.status == S.MODIFY_PENDING and target in _WORKING:
            return await self._modifier.settle(order, rep)
        move = self._core.move
        values: dict[str, str] = {}
        if order.broker_order_id is None:
            values["broker_order_id"] = rep.broker_order_id
        if target == S.ACCEPTED and order.status in (S.SUBMITTING, S.UNKNOWN):
            return await move(order, S.ACCEPTED, detail="broker: accepted", **values)
        if target in (S.CANCELLED, S.REJECTED, S.EXPIRED) and rep.filled_qty <= order.filled_qty:
            extra = (
                {"reason_code": f"broker.{target.value.lower()}", "reason": rep.reason}
                if target == S.REJECTED
                else {}
            )
            if order.status in (S.SUBMITTING,):
                if target == S.REJECTED:
                    return None  # the place() answer (a refusal) will settle it
                # The broker had the order and already ended it (an IOC/FOK rest cancelled on
                # arrival) before its answer reached us: accepted, then ended.
                accepted = await move(order, S.ACCEPTED, detail="broker: accepted", **values)
                if accepted is None:
                    return None
                order, values = accepted, {}
            return await move(
                order, target, detail=f"broker: {target.value.lower()}", **values, **extra
            )
        if (
            target in (S.PARTIALLY_FILLED, S.FILLED)
            and order.status in (S.UNKNOWN,)
            and rep.filled_qty == 0
        ):
            return await move(order, S.ACCEPTED, detail="broker: working", **values)
        return None

    def held_events(self) -> int:
        """Execution events waiting for the database (see on_execution)."""
        return self._held.count()

    async def stop(self) -> None:
        """Stop replaying held execution events (reconciliation recovers what they said)."""
        await self._held.stop()
