"""The order service: the only way an order enters hoga, and the only code that changes one.

``OrderService`` is a thin facade - callers (api, dispatcher, reconciliation, strategies,
tests) keep one handle - over parts cut by job, all working on one ``OrderCore``
(``ordercore.py``: handles, account locks, the checked ``move``):

* ``intake.py`` - validate, risk inputs, submit, preview, cancel, reading;
* ``modifying.py`` - modify (정정): intake, the broker call and its outcomes, settlement;
* ``sending.py`` - claim ``SUBMITTING``, call the adapter, map its four outcomes;
* ``executions.py`` - match broker events to orders, park and release them; the race between
  a ``place`` answer and its execution events is handled there only;
* ``booking.py`` - fills into the ledger, positions and cash, once whatever their id;
* ``lifecycle.py`` - recovery, expiry, the server's kill switch, reconciliation lookups.

The risk gate (``risk.py``) stays a pure function.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import date
from typing import Any

from hoga.brokers.base import AccountRef, ExecutionEvent, FillReport, OrderStatusReport
from hoga.domain.clock import Clock
from hoga.domain.market import QuoteSource
from hoga.domain.orders import Order, OrderIntent, OrderStatus, Priority
from hoga.execution.accounts import AccountService
from hoga.execution.booking import Booking
from hoga.execution.events import EventBus
from hoga.execution.executions import MAX_ORPHANS, ORPHAN_TTL, ExecutionEvents
from hoga.execution.intake import Intake
from hoga.execution.lifecycle import OrderControl
from hoga.execution.modifying import Modifier
from hoga.execution.ordercore import GATEWAY_OF, OrderCore, OrderPolicy
from hoga.execution.queue import Kind, OrderQueue, QueueItem
from hoga.execution.riskinputs import AccountSession
from hoga.execution.sending import Sender
from hoga.execution.validation import MAX_QTY
from hoga.execution.views import order_view
from hoga.security.auth import AuthService
from hoga.store.db import Database

__all__ = [
    "GATEWAY_OF",
    "MAX_ORPHANS",
    "MAX_QTY",
    "ORPHAN_TTL",
    "OrderPolicy",
    "OrderService",
    "order_view",
]


class OrderService:
    """The order core behind one handle (see the module docstring); public methods delegate."""

    def __init__(
        self,
        db: Database,
        clock: Clock,
        auth: AuthService,
        accounts: AccountService,
        quotes: QuoteSource,
        queue: OrderQueue,
        bus: EventBus,
        *,
        policy: OrderPolicy,
        market_open: Callable[[], bool] | None = None,
        account_open: Callable[[str, str, str | None], bool] | None = None,
        account_session: AccountSession | None = None,
    ) -> None:
        self.core = core = OrderCore(db, clock, accounts, quotes, queue, bus, policy)
        is_open = market_open or (lambda: True)
        opens = account_open or (lambda broker, env, url: is_open())
        # The KRX/Nextrade session an order goes into (``TradingHours.session_for``).
        self.intake = Intake(core, auth, opens, account_session)
        self.modifier = Modifier(core, auth, self.intake.risk)
        self.booking = Booking(core)
        self.events = ExecutionEvents(core, self.booking, self.modifier)
        self.sender = Sender(core, self.events, self.modifier)
        self.control = OrderControl(core, self.modifier)
        self.queue = queue
        self.policy = policy
        # Handles other parts of the server hold (the queue resync reads these sets).
        self.inflight = self.sender.inflight
        self.cancels_sent = self.sender.cancels_sent
        self.stats = core.stats
        # Cluster mode (cluster/node.py): a modify for a user another server owns runs there;
        # returns the modified order, or None to run it here.
        self.remote_modify: (
            Callable[[int, int, int | None, int | None, str | None], Awaitable[Order | None]] | None
        ) = None

    @property
    def server_state(self) -> str:
        return self.core.server_state

    @property
    def on_unknown(self) -> Callable[[int], None]:
        """Asks reconciliation to look at an account (the reconciler installs itself)."""
        return self.core.on_unknown

    @on_unknown.setter
    def on_unknown(self, callback: Callable[[int], None]) -> None:
        self.core.on_unknown = callback

    # ------------------------------------------------------------------ intake

    async def submit(self, user_id: int, intent: OrderIntent, *, ip: str | None = None) -> Order:
        return await self.intake.submit(user_id, intent, ip=ip)

    async def preview(self, user_id: int, intent: OrderIntent) -> dict[str, Any]:
        return await self.intake.preview(user_id, intent)

    async def cancel(self, user_id: int, order_id: int, *, ip: str | None = None) -> Order:
        return await self.intake.cancel(user_id, order_id, ip=ip)

    async def withdraw_queued(self, user_id: int) -> int:
        """Cancel every order of ``user_id`` still waiting in the queue (never sent): a user
        the operator disabled must not trade, and a queued order would otherwise go out as soon
        as its account's turn came. Orders already at the broker are left to the broker (they
        stay tracked and reconciled). Returns how many were withdrawn."""
        core = self.core
        withdrawn = 0
        mine = [i.order_id for i in core.queue.items() if i.user_id == user_id]
        for order_id in mine:
            if (item := core.queue.remove(order_id, Kind.PLACE)) is None:
                continue
            try:
                order = await self.intake.get(user_id, item.order_id)
                moved = await core.move(
                    order,
                    OrderStatus.CANCELLED,
                    detail="user disabled",
                    reason_code="user.disabled",
                    reason="사용자가 비활성화되어 취소했습니다 (user disabled)",
                )
            except BaseException:
                # The database still says QUEUED: the queue must hold it again.
                core.queue.requeue(item)
                raise
            withdrawn += moved is not None
        return withdrawn

    async def modify(
        self,
        user_id: int,
        order_id: int,
        *,
        price: int | None,
        quantity: int | None,
        ip: str | None = None,
    ) -> Order:
        """Modify (정정) a working order: a new price and/or total quantity (``modifying.py``)."""
        if self.remote_modify is not None:
            forwarded = await self.remote_modify(user_id, order_id, price, quantity, ip)
            if forwarded is not None:
                return forwarded
        return await self.modifier.request(user_id, order_id, price=price, quantity=quantity, ip=ip)

    async def get(self, user_id: int, order_id: int) -> Order:
        return await self.intake.get(user_id, order_id)

    async def list_orders(self, user_id: int, **filters: Any) -> list[Order]:
        return await self.intake.list_orders(user_id, **filters)

    async def history(self, user_id: int, order_id: int) -> list[dict[str, Any]]:
        return await self.intake.history(user_id, order_id)

    # ------------------------------------------------------------------ sending

    def enqueue(self, order: Order, broker: str, kind: Kind, priority: Priority) -> None:
        self.core.enqueue(order, broker, kind, priority)

    async def send(self, item: QueueItem) -> None:
        await self.sender.send(item)

    async def move(
        self, order: Order, status: OrderStatus, detail: str | None = None, **values: Any
    ) -> Order | None:
        return await self.core.move(order, status, detail, **values)

    # ------------------------------------------------------------------ executions

    async def on_execution(self, account_id: int, event: ExecutionEvent) -> None:
        await self.events.on_execution(account_id, event)

    async def apply_fill(
        self, order: Order, fill: FillReport, *, reconcile_gaps: bool = True
    ) -> Order | None:
        return await self.booking.apply_fill(order, fill, reconcile_gaps=reconcile_gaps)

    async def apply_report(self, order: Order, rep: OrderStatusReport) -> Order | None:
        return await self.events.apply_report(order, rep)

    def held_events(self) -> int:
        return self.events.held_events()

    async def stop(self) -> None:
        await self.events.stop()

    # ------------------------------------------------------------------ control

    async def recover(self, user_id: int | None = None) -> dict[str, int]:
        return await self.control.recover(user_id)

    async def expire_stale(self, today: date) -> int:
        return await self.control.expire_stale(today)

    async def set_server_state(self, state: str, *, actor_id: int | None, ip: str | None) -> None:
        await self.control.set_server_state(state, actor_id=actor_id, ip=ip)

    async def load_server_state(self) -> str:
        return await self.control.load_server_state()

    async def open_at_broker(self, account_id: int) -> list[Order]:
        return await self.control.open_at_broker(account_id)

    async def account_ref(self, account_id: int) -> AccountRef | None:
        return await self.control.account_ref(account_id)
