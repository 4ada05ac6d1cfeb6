"""The backstop that keeps the in-memory queue and the database in agreement.

The order service keeps them in step itself (a request that fails on the database before the
broker goes back in the queue; see ``OrderService.send``). Should a request still go missing -
a bug, a failure between two steps nobody foresaw - an order would sit ``QUEUED`` in the
database, holding its cash, with nothing to send it until a restart. Every ``interval``
seconds ``QueueResync`` compares the two and queues again:

* each of today's ``QUEUED`` orders that is neither queued nor being sent right now
  (earlier days' are left to expire);
* each ``CANCEL_PENDING`` order with a broker id whose cancel is neither queued, being sent,
  nor already sent by this process (a cancel sent with an unknown outcome is reconciliation's).

Queuing twice is harmless - the claim that marks an order ``SUBMITTING`` is a compare-and-set on
``QUEUED`` under the account lock - so the check needs no lock of its own. A storage fault skips
a round.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import date

from hoga.domain import krx
from hoga.domain.clock import Clock
from hoga.domain.errors import StorageUnavailable
from hoga.domain.orders import Order, OrderStatus, Priority
from hoga.execution.queue import Kind
from hoga.execution.service import OrderService
from hoga.store.db import SYSTEM, Database
from hoga.store.repos import accounts as accounts_repo
from hoga.store.repos import orders as orders_repo
from hoga.tasks import cancel_and_wait

log = logging.getLogger(__name__)
S = OrderStatus


class QueueResync:
    """See the module docstring. ``check()`` runs one comparison and returns what it did."""

    def __init__(
        self, db: Database, service: OrderService, clock: Clock, *, interval: float = 5.0
    ) -> None:
        self._db = db
        self._service = service
        self._clock = clock
        self.interval = interval
        self.requeued = 0
        self._task: asyncio.Task[None] | None = None
        # Cluster mode: only the users this server owns (cluster/ownership.py).
        self.owns: Callable[[int], bool] | None = None
        #: The dispatcher's requests taken from the queue and not finished
        #: (``Dispatcher.handed``); set where both are built.
        self.handed: set[tuple[int, Kind]] = set()

    async def check(self, user_id: int | None = None) -> dict[str, int]:
        """One comparison (``user_id``: that user's orders only)."""
        svc = self._service
        today = krx.trading_date(self._clock.now())
        waiting, brokers = await self._read(user_id)
        done = {"place": 0, "cancel": 0}
        missing = [
            (order, broker, kind)
            for order in waiting
            if (broker := brokers.get(order.account_id)) is not None
            and (self.owns is None or self.owns(order.user_id))
            and (kind := self._kind(order, today)) is not None
            and not self._held(order.id, kind)
        ]
        if not missing:
            return done
        # A request the dispatcher took, sent and settled while the first read was in flight
        # looks missing (its row was read as it was before). A second look at the database,
        # with nothing awaited between it and the queuing, tells the two apart; without it
        # a busy server logged false "missing from the queue" warnings.
        fresh = {o.id: o for o in (await self._read(user_id))[0]}
        for order, broker, kind in missing:
            now = fresh.get(order.id)
            if now is None or now.status != order.status or self._held(order.id, kind):
                continue
            priority = order.priority if kind == Kind.PLACE else Priority.URGENT
            svc.enqueue(now, broker, kind, priority)
            done[kind.value] += 1
            # A hand-off (user_id given) is expected work, not a gap.
            (log.debug if user_id is not None else log.warning)(
                "order %s was %s in the database but missing from the queue; queued again",
                order.id,
                order.status.value,
            )
        self.requeued += done["place"] + done["cancel"]
        return done

    async def _read(self, user_id: int | None = None) -> tuple[list[Order], dict[int, str]]:
        async with self._db.tx(SYSTEM) as conn:
            waiting = await orders_repo.open_orders(
                conn, user_id=user_id, statuses=[S.QUEUED.value, S.CANCEL_PENDING.value]
            )
            brokers = {a.id: a.broker for a in await accounts_repo.all_active_accounts(conn)}
        return waiting, brokers

    def _kind(self, order: Order, today: date) -> Kind | None:
        """What the order waits for, or None when this backstop leaves it alone."""
        if order.status == S.QUEUED:
            return Kind.PLACE if order.trading_day >= today else None
        if not order.broker_order_id or order.id in self._service.cancels_sent:
            return None
        return Kind.CANCEL

    def _held(self, order_id: int, kind: Kind) -> bool:
        svc = self._service
        key = (order_id, kind)
        return svc.queue.contains(order_id, kind) or key in svc.inflight or key in self.handed

    async def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._loop(), name="queue-resync")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            await cancel_and_wait([task])

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            try:
                await self.check()
            except StorageUnavailable as e:
                log.warning("queue resync skipped: storage fault (%s)", e.code)
            except Exception:
                log.exception("queue resync failed; next round in %.0f s", self.interval)
