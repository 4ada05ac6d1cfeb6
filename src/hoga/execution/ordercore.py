"""What the order service's parts share: the handles, the locks and the one way to move an order.

``OrderService`` (``execution/service.py``) is a facade over parts cut by job - intake, sending,
execution events, booking, control - that all work on one ``OrderCore``. The core owns the
per-account locks that serialise state changes of an account's orders, the cache of account
owners, the counters, and ``move``: the checked transition (re-read under the account lock,
compare-and-set in ``store/repos/orders.py``, publish) every part uses to change an order.
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from hoga.domain.clock import Clock
from hoga.domain.errors import NotFound, StorageUnavailable
from hoga.domain.market import QuoteSource
from hoga.domain.orders import Order, OrderStatus, Priority
from hoga.execution import retry, risk
from hoga.execution.accounts import AccountService
from hoga.execution.events import EventBus
from hoga.execution.queue import Kind, OrderQueue, QueueItem
from hoga.execution.views import order_view
from hoga.store.db import SYSTEM, Actor, Database
from hoga.store.repos import accounts as accounts_repo
from hoga.store.repos import orders as repo

log = logging.getLogger(__name__)

S = OrderStatus
GATEWAY_OF = {"paper": "paper", "kis": "kis", "kiwoom": "kiwoom"}
#: States an order leaves holding nothing in reserve.
_RELEASING = (S.REJECTED, S.CANCELLED, S.EXPIRED)


def _always(user_id: int) -> bool:
    return True


@dataclass(frozen=True, slots=True)
class OrderPolicy:
    """Server-wide defaults the order service applies (per-user values override some)."""

    max_order_value: int = 50_000_000
    daily_loss_limit: int = 0
    duplicate_window: float = 2.0
    submit_timeout: float = 10.0
    #: A market order is refused when the symbol's last quote is older than this (seconds)
    #: while the market is open; 0 disables the check.
    max_quote_age: float = 60.0
    #: designation -> allow / warn / refuse for buys (risk.parse_designation_policy).
    designation_policy: Mapping[str, str] = field(default_factory=dict)


class OrderCore:
    """Shared state of the order service's parts (see the module docstring).

    ``on_unknown(account_id)`` asks reconciliation to look at an account (the reconciler
    installs itself); ``server_state`` is the server-wide kill switch the risk gate reads.
    """

    def __init__(
        self,
        db: Database,
        clock: Clock,
        accounts: AccountService,
        quotes: QuoteSource,
        queue: OrderQueue,
        bus: EventBus,
        policy: OrderPolicy,
    ) -> None:
        self.db = db
        self.clock = clock
        self.accounts = accounts
        self.quotes = quotes
        self.queue = queue
        self.bus = bus
        self.policy = policy
        self.account_locks: dict[int, asyncio.Lock] = defaultdict(asyncio.Lock)
        self.server_state = risk.ACTIVE
        # Cluster mode (cluster/node.py): whether this server may still send for a user - asked
        # between the SUBMITTING claim and the broker call. A single server always may.
        self.may_send: Callable[[int], bool] = _always
        self.on_unknown: Callable[[int], None] = lambda account_id: None
        self.stats = {"submitted": 0, "denied": 0, "sent": 0, "unknown": 0, "fills": 0}
        self._owners: dict[int, int] = {}

    def publish(self, order: Order, event: str = "order") -> None:
        self.bus.publish(order.user_id, {"type": event, "order": order_view(order)})

    def enqueue(self, order: Order, broker: str, kind: Kind, priority: Priority) -> None:
        self.queue.push(
            QueueItem(
                order_id=order.id,
                user_id=order.user_id,
                account_id=order.account_id,
                gateway=GATEWAY_OF.get(broker, broker),
                kind=kind,
                priority=priority,
                enqueued_at=self.clock.monotonic(),
                expected=order if kind == Kind.PLACE and order.status == S.QUEUED else None,
            )
        )

    async def load(self, user_id: int, order_id: int) -> Order | None:
        async with self.db.tx(Actor.user(user_id)) as conn:
            return await repo.get_order(conn, user_id, order_id)

    async def reload(self, conn: AsyncConnection, order: Order) -> Order:
        fresh = await repo.get_order(conn, order.user_id, order.id)
        if fresh is None:
            raise NotFound("주문을 찾을 수 없습니다", "order.not_found")
        return fresh

    async def move(
        self, order: Order, status: OrderStatus, detail: str | None = None, **values: Any
    ) -> Order | None:
        """Transition under the account lock, re-reading the order first; None if the order is
        no longer in the state ``order`` shows (someone else moved it)."""
        async with (
            self.account_locks[order.account_id],
            self.db.tx(Actor.user(order.user_id)) as conn,
        ):
            fresh = await self.reload(conn, order)
            if fresh.status != order.status:
                return None
            if status in _RELEASING:
                values.setdefault("reserved_cash", 0)
            moved = await repo.transition(
                conn, fresh, status, self.clock.now(), detail=detail, **values
            )
        if moved is not None:
            self.publish(moved)
        return moved

    async def record(
        self, order: Order, what: str, step: Callable[[], Awaitable[Order | None]]
    ) -> Order | None:
        """Record a broker's answer, retrying storage faults for a while; if the database
        stays away, leave the order as it is (SUBMITTING or CANCEL_PENDING) for
        reconciliation, which settles it from the broker's reports."""
        try:
            return await retry.persist(step, what=f"order {order.id}: recording the {what}")
        except StorageUnavailable:
            log.error(
                "order %s: the broker's %s could not be recorded; reconciliation will settle it",
                order.id,
                what,
            )
            self.on_unknown(order.account_id)
            return None

    async def owner(self, account_id: int) -> int | None:
        """The user an account belongs to (cached: an account never changes hands)."""
        owners = self._owners
        if account_id not in owners:
            async with self.db.tx(SYSTEM) as conn:
                user_id = await accounts_repo.owner_of(conn, account_id)
            if user_id is None:
                return None
            owners[account_id] = user_id
        return owners[account_id]
