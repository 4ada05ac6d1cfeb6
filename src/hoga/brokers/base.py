"""The broker protocol: what the order pipeline needs from any broker, and what it gets back.

Modelled on the report-based contract of NautilusTrader's execution clients: commands (place,
modify, cancel) return acknowledgements or raise one of four errors whose meaning the pipeline
relies on; state comes back as order-status, fill and position reports (for reconciliation) and
as execution events pushed to a sink (for live updates).

The four outcomes of a command, and what the pipeline does with each:

* an acknowledgement - the broker has the order (``ACCEPTED``);
* ``BrokerRejected`` - the broker definitely refused it (``REJECTED`` with its code and message);
* ``BrokerNotProcessed`` - the broker definitely did *not* process it (rate limit, EGW00201,
  1700): safe to send again after ``retry_after``;
* ``BrokerOutcomeUnknown`` - timeout, dropped connection, 5xx: the order may or may not exist
  (``UNKNOWN``); only reconciliation against reports settles it, never a blind resend.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from typing import Protocol

from hoga.domain.krx import DEFAULT_COMMISSION_RATE
from hoga.domain.orders import OrderStatus, OrderType, Side, TimeInForce
from hoga.domain.secret import Secret


@dataclass(frozen=True, slots=True)
class AccountRef:
    """Everything an adapter needs to act for one account. Secrets stay wrapped until the wire."""

    account_id: int
    user_id: int
    broker: str
    env: str
    account_no: str
    app_key: Secret | None = None
    app_secret: Secret | None = None
    hts_id: str | None = None
    base_url: str | None = None
    ws_url: str | None = None
    commission_rate: Decimal = DEFAULT_COMMISSION_RATE


@dataclass(frozen=True, slots=True)
class BrokerLimits:
    """How the dispatcher must pace one account of a broker.

    ``rate``/``window``: at most ``rate`` requests in any ``window`` seconds.
    ``capacity``: concurrently logged-in sessions (None = unlimited, as for REST brokers).
    ``switch_cost``: seconds to switch the session to another account when capacity is 1.
    ``can_preload``: whether the next session can be prepared while the current one works.
    ``counts_toward_global``: whether the server-wide cap applies (not for the local paper broker).
    """

    rate: float
    window: float = 1.0
    capacity: int | None = None
    switch_cost: float = 0.0
    can_preload: bool = False
    counts_toward_global: bool = True


@dataclass(frozen=True, slots=True)
class PlaceRequest:
    """An order as sent to a broker. ``client_order_id`` is hoga's idempotency key.

    ``price`` is set for the types that name their price (``OrderType.needs_price``) and None
    otherwise; ``tif`` is DAY, IOC or FOK; ``venue`` is KRX, NXT or SOR.
    """

    client_order_id: str
    symbol: str
    side: Side
    type: OrderType
    qty: int
    price: int | None
    venue: str = "KRX"
    tif: TimeInForce = TimeInForce.DAY


@dataclass(frozen=True, slots=True)
class ModifyRequest:
    """A modify (정정) of a resting order, as sent to a broker.

    ``broker_order_id`` is hoga's id for the order - what ``place`` returned - and stays its
    id after the modify: both brokers give the modify a new number of their own, but adapters
    keep tying events and reports back to the original (``ModifyAck.broker_order_id``).

    ``qty``/``price``: the order as hoga knows it now (total quantity, limit price).
    ``new_qty``: the new *total* quantity, filled part included; ``qty - new_qty`` unfilled
    shares are cancelled, which stays right whatever fills race the request. A modify never
    adds shares (``domain.orders.check_modify``). ``new_price``: the new limit price (the
    current one when only the quantity changes).
    """

    broker_order_id: str
    symbol: str
    side: Side
    type: OrderType
    qty: int
    price: int | None
    new_qty: int
    new_price: int
    venue: str = "KRX"

    @property
    def reduce_by(self) -> int:
        """Unfilled shares the modify takes away."""
        return self.qty - self.new_qty

    @property
    def reprice(self) -> bool:
        return self.new_price != self.price


@dataclass(frozen=True, slots=True)
class ModifyAck:
    """The broker accepted a modify.

    ``broker_order_id``: hoga's id of the order, unchanged (events and reports keep naming it).
    ``modify_order_no``: the number the broker gave the modify itself (KIS ``ODNO``, Kiwoom
    ``ord_no``), for the record; None when nothing needed a new number.
    """

    broker_order_id: str
    modify_order_no: str | None = None
    org_no: str | None = None


@dataclass(frozen=True, slots=True)
class PlaceAck:
    """The broker accepted the order and named it."""

    broker_order_id: str
    org_no: str | None = None


@dataclass(frozen=True, slots=True)
class OrderStatusReport:
    """The broker's view of one order. ``status`` uses hoga's states."""

    broker_order_id: str
    symbol: str
    side: Side
    type: OrderType
    qty: int
    price: int | None
    filled_qty: int
    status: OrderStatus
    ts: float
    client_order_id: str | None = None
    avg_price: int = 0
    org_no: str | None = None
    reason: str | None = None
    #: Total executed amount in won when the broker reports it (exact, unlike ``avg_price``).
    filled_amount: int | None = None


@dataclass(frozen=True, slots=True)
class FillReport:
    """One execution. ``fill_id`` is unique per account at the broker.

    ``cum_qty``/``cum_amount``: where this execution leaves the order at the broker - its
    cumulative filled quantity and executed amount (won) - when the adapter knows them for
    certain. They are what de-duplicates an execution heard of twice under different ids (a
    notice, a report's catch-up) and what lets missed earlier executions be caught up; see
    ``domain/fills.py``. Without them the fill id is the only de-duplication.

    Fees are the broker's own figures when it reports them; otherwise hoga computes them with
    ``domain.krx`` and the account's commission rate.
    """

    broker_order_id: str
    fill_id: str
    symbol: str
    side: Side
    qty: int
    price: int
    ts: float
    commission: int | None = None
    tax: int | None = None
    client_order_id: str | None = None
    cum_qty: int | None = None
    cum_amount: int | None = None


@dataclass(frozen=True, slots=True)
class PositionReport:
    symbol: str
    qty: int
    avg_price: int


@dataclass(frozen=True, slots=True)
class Balance:
    """Cash (예수금) and what may be spent on orders now (주문가능금액)."""

    cash: int
    orderable: int
    positions: list[PositionReport] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class OrderUpdate:
    """Pushed when the broker changes an order's state (accepted, cancelled, rejected...)."""

    report: OrderStatusReport


@dataclass(frozen=True, slots=True)
class FillEvent:
    """Pushed for every execution."""

    fill: FillReport


ExecutionEvent = OrderUpdate | FillEvent
EventSink = Callable[[int, ExecutionEvent], Awaitable[None]]


class BrokerError(Exception):
    """Base of broker failures. ``code`` is the broker's own code when it gave one."""

    def __init__(self, message: str, code: str = "broker.error") -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class BrokerRejected(BrokerError):
    """The broker refused the request; nothing exists at the broker because of it."""


class BrokerNotProcessed(BrokerError):
    """The broker did not process the request (throttled); sending it again is safe."""

    def __init__(
        self, message: str, code: str = "broker.throttled", retry_after: float = 1.0
    ) -> None:
        super().__init__(message, code)
        self.retry_after = retry_after


class BrokerOutcomeUnknown(BrokerError):
    """The request may or may not have taken effect; reconcile, do not resend."""


class ReportsUnavailable(BrokerError):
    """The broker cannot list orders or fills for this day (Kiwoom's inquiries cover today only).

    An empty list would claim "no orders that day"; this says "cannot tell", so reconciliation
    never concludes from it that an order was not placed.
    """

    def __init__(self, message: str, code: str = "broker.reports_unavailable") -> None:
        super().__init__(message, code)


class BrokerAuthError(BrokerError):
    """Credentials were refused (wrong key or secret, wrong environment)."""


class TokenStore(Protocol):
    """Keeps an adapter's broker tokens across restarts, encrypted at rest.

    KIS throttles token issuance (EGW00133) and notifies the user on every issue, so a restart
    must reuse the token it already has. The server implements this with the vault; adapters
    see only this protocol. ``kind`` names the token (``access``, ``approval``...).
    """

    async def load(self, account_id: int, kind: str) -> tuple[str, float] | None:
        """The stored token and its expiry (POSIX seconds), or None."""

    async def save(self, account_id: int, kind: str, token: str, expires_at: float) -> None: ...


class MemoryTokenStore:
    """A TokenStore that forgets on restart (tests, the fakes' own clients)."""

    def __init__(self) -> None:
        self._tokens: dict[tuple[int, str], tuple[str, float]] = {}

    async def load(self, account_id: int, kind: str) -> tuple[str, float] | None:
        return self._tokens.get((account_id, kind))

    async def save(self, account_id: int, kind: str, token: str, expires_at: float) -> None:
        self._tokens[(account_id, kind)] = (token, expires_at)


class Broker(Protocol):
    """What every broker adapter provides. One instance serves all accounts of its broker."""

    name: str

    def limits(self, account: AccountRef) -> BrokerLimits: ...

    def set_event_sink(self, sink: EventSink) -> None: ...

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    async def attach(self, account: AccountRef) -> None:
        """Start serving an account (log in, subscribe to its execution notices)."""

    async def detach(self, account_id: int) -> None: ...

    async def place(self, account: AccountRef, request: PlaceRequest) -> PlaceAck: ...

    async def modify(self, account: AccountRef, request: ModifyRequest) -> ModifyAck:
        """Modify (정정) a resting order's price and/or reduce its quantity.

        Same four outcomes as ``place``: a ``ModifyAck`` (the broker has the modify; the order
        keeps its id and later reports/events carry the new quantity and price), or
        ``BrokerRejected`` (refused - the order is as it was), ``BrokerNotProcessed`` (safe to
        send again), ``BrokerOutcomeUnknown`` (reconcile: the reports show whether it took).
        """

    async def cancel(
        self, account: AccountRef, broker_order_id: str, symbol: str, qty: int
    ) -> None:
        """Cancel the unfilled rest of an order (``qty`` = the remaining quantity)."""

    async def order_reports(self, account: AccountRef, day: date) -> list[OrderStatusReport]: ...

    async def fill_reports(self, account: AccountRef, day: date) -> list[FillReport]: ...

    async def position_reports(self, account: AccountRef) -> list[PositionReport]: ...

    async def balance(self, account: AccountRef) -> Balance: ...

    async def test_connection(self, account: AccountRef) -> str:
        """Check credentials end to end; return a short human summary or raise BrokerError."""
