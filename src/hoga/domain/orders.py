"""Orders: intents, states and the transitions between them.

States (DESIGN.md): NEW -> DENIED (terminal) or QUEUED -> SUBMITTING -> ACCEPTED ->
PARTIALLY_FILLED -> FILLED; CANCEL_PENDING -> CANCELLED; REJECTED (the broker refused);
UNKNOWN (outcome not known; reconciliation settles it); EXPIRED (day end). hoga adds
MODIFY_PENDING (a modify, 정정, asked of the broker: back to ACCEPTED / PARTIALLY_FILLED with
the new price and quantity when confirmed, or unchanged when refused).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import date, datetime
from enum import IntEnum, StrEnum
from typing import Final


class Side(StrEnum):
    BUY = "buy"
    SELL = "sell"


class OrderType(StrEnum):
    """KRX order types (krx.md §5). Which session accepts which is ``domain.krx``'s business.

    ``LIMIT`` 지정가; ``MARKET`` 시장가; ``CONDITIONAL`` 조건부지정가 (a limit order whose
    unfilled rest becomes a market order when the closing auction starts); ``BEST`` 최유리지정가
    (priced at the opposite side's best price on arrival); ``PRIORITY`` 최우선지정가 (priced at
    the same side's best price); ``PRE_CLOSE`` 장전 시간외 종가 (at the previous close);
    ``AFTER_CLOSE`` 장후 시간외 종가 (at today's close); ``SINGLE_PRICE`` 시간외 단일가 (a limit
    order matched in the after-hours call auctions every 10 minutes).
    """

    LIMIT = "limit"
    MARKET = "market"
    CONDITIONAL = "conditional"
    BEST = "best"
    PRIORITY = "priority"
    PRE_CLOSE = "pre_close"
    AFTER_CLOSE = "after_close"
    SINGLE_PRICE = "single_price"

    @property
    def needs_price(self) -> bool:
        """Whether the order names its own limit price (the rest are priced by the market)."""
        return self in _PRICED

    @property
    def market_like(self) -> bool:
        """Priced by the book at execution: a buy reserves cash at the day's upper limit."""
        return self in (OrderType.MARKET, OrderType.BEST, OrderType.PRIORITY)


_PRICED: Final = frozenset({OrderType.LIMIT, OrderType.CONDITIONAL, OrderType.SINGLE_PRICE})


class TimeInForce(StrEnum):
    """How long the unfilled part of an order lives.

    ``DAY`` rests until filled, cancelled or the session ends; ``IOC`` (immediate or cancel)
    fills what it can on arrival and cancels the rest; ``FOK`` (fill or kill) fills completely
    on arrival or not at all. IOC/FOK exist for limit, market and best orders only (krx.md §5).
    """

    DAY = "day"
    IOC = "ioc"
    FOK = "fok"


#: Order types that may carry IOC or FOK (krx.md §5).
TIF_TYPES: Final = frozenset({OrderType.LIMIT, OrderType.MARKET, OrderType.BEST})


class Venue(StrEnum):
    """Where an order is routed: KRX, Nextrade (NXT) or the broker's smart order routing."""

    KRX = "KRX"
    NXT = "NXT"
    SOR = "SOR"


class InvalidModify(ValueError):
    """A modify (정정) that cannot be sent: see :func:`check_modify`."""


def check_modify(
    qty: int, filled_qty: int, price: int | None, new_qty: int | None, new_price: int | None
) -> tuple[int, int]:
    """The (new total quantity, new price) of a modify, or ``InvalidModify``.

    ``new_qty`` is the new *total* quantity (filled part included): it must exceed what has
    filled and may not exceed the current quantity - Korean brokers cannot add shares to an
    order (kis.md §5.1: modify qty ≤ original). The new price is required when the order has
    none. At least one of the two must change something.
    """
    if new_qty is None and new_price is None:
        raise InvalidModify("정정할 가격이나 수량이 없습니다 (nothing to modify)")
    q = qty if new_qty is None else new_qty
    p = price if new_price is None else new_price
    if p is None or p <= 0:
        raise InvalidModify("정정 가격이 필요합니다 (a modify needs a price)")
    if q <= filled_qty:
        raise InvalidModify(
            f"정정 수량은 체결수량({filled_qty})보다 커야 합니다 "
            f"(new quantity must exceed the filled {filled_qty})"
        )
    if q > qty:
        raise InvalidModify(
            f"정정으로 수량을 늘릴 수 없습니다 (현재 {qty}) (a modify cannot add shares)"
        )
    if q == qty and p == price:
        raise InvalidModify("정정 내용이 현재 주문과 같습니다 (the modify changes nothing)")
    return q, p


class OrderStatus(StrEnum):
    NEW = "NEW"
    DENIED = "DENIED"
    QUEUED = "QUEUED"
    SUBMITTING = "SUBMITTING"
    ACCEPTED = "ACCEPTED"
    PARTIALLY_FILLED = "PARTIALLY_FILLED"
    FILLED = "FILLED"
    CANCEL_PENDING = "CANCEL_PENDING"
    MODIFY_PENDING = "MODIFY_PENDING"
    CANCELLED = "CANCELLED"
    REJECTED = "REJECTED"
    UNKNOWN = "UNKNOWN"
    EXPIRED = "EXPIRED"


class Priority(IntEnum):
    """Queue classes; a lower value is served first."""

    URGENT = 0
    VIP = 1
    NORMAL = 2

    @property
    def label(self) -> str:
        return self.name.lower()


S = OrderStatus

TERMINAL: Final = frozenset({S.DENIED, S.FILLED, S.CANCELLED, S.REJECTED, S.EXPIRED})
#: Orders that still hold cash or shares in reserve and may still trade.
OPEN: Final = frozenset(
    {
        S.QUEUED,
        S.SUBMITTING,
        S.ACCEPTED,
        S.PARTIALLY_FILLED,
        S.CANCEL_PENDING,
        S.MODIFY_PENDING,
        S.UNKNOWN,
    }
)
#: Orders the broker may know about (a cancel must go to the broker, not just the queue).
AT_BROKER: Final = frozenset(
    {S.ACCEPTED, S.PARTIALLY_FILLED, S.CANCEL_PENDING, S.MODIFY_PENDING, S.UNKNOWN}
)

_FILLING = {S.PARTIALLY_FILLED, S.FILLED}
TRANSITIONS: Final[dict[OrderStatus, frozenset[OrderStatus]]] = {
    S.NEW: frozenset({S.DENIED, S.QUEUED}),
    # A queued order can still be cancelled locally, expire at day end, or be refused when
    # its account disappears; SUBMITTING means we are about to call (or are calling) the broker.
    S.QUEUED: frozenset({S.SUBMITTING, S.CANCELLED, S.EXPIRED, S.REJECTED}),
    # Back to QUEUED only when the broker said the request was *not processed* (rate limit).
    S.SUBMITTING: frozenset({S.ACCEPTED, S.REJECTED, S.UNKNOWN, S.QUEUED, *_FILLING}),
    S.ACCEPTED: frozenset(
        {S.CANCEL_PENDING, S.MODIFY_PENDING, S.CANCELLED, S.EXPIRED, S.REJECTED, *_FILLING}
    ),
    S.PARTIALLY_FILLED: frozenset(
        {S.CANCEL_PENDING, S.MODIFY_PENDING, S.CANCELLED, S.EXPIRED, *_FILLING}
    ),
    # A modify in flight: fills may still arrive; confirmed or refused it goes back to working
    # (the confirmation through ``Modified``); the broker may still cancel or expire the order.
    S.MODIFY_PENDING: frozenset({S.MODIFY_PENDING, S.ACCEPTED, S.CANCELLED, S.EXPIRED, *_FILLING}),
    # A fill may still arrive while the cancel is in flight; a refused cancel goes back.
    S.CANCEL_PENDING: frozenset({S.CANCEL_PENDING, S.CANCELLED, S.EXPIRED, S.ACCEPTED, *_FILLING}),
    S.UNKNOWN: frozenset({S.ACCEPTED, S.CANCELLED, S.REJECTED, S.EXPIRED, S.UNKNOWN, *_FILLING}),
}
for _terminal in TERMINAL:
    TRANSITIONS[_terminal] = frozenset()


class InvalidTransition(ValueError):
    """An order was asked to move between two states the machine does not connect."""


def check_transition(current: OrderStatus, target: OrderStatus) -> None:
    if target not in TRANSITIONS[current]:
        raise InvalidTransition(f"order cannot go from {current} to {target}")


def status_after_fill(qty: int, filled_qty: int, current: OrderStatus) -> OrderStatus:
    """The state an order is in once ``filled_qty`` of its ``qty`` has traded."""
    if filled_qty >= qty:
        return S.FILLED
    if current in (S.CANCEL_PENDING, S.MODIFY_PENDING):
        return current
    return S.PARTIALLY_FILLED


@dataclass(frozen=True, slots=True)
class OrderIntent:
    """What a person or strategy asks for, before any check.

    ``price`` is required for the types that name their price (``OrderType.needs_price``)
    and must be absent for the others. ``tif`` and ``venue`` default to a day order on KRX.
    """

    symbol: str
    side: Side
    type: OrderType
    qty: int
    price: int | None = None
    account_id: int | None = None
    client_order_id: str | None = None
    urgent: bool = False
    strategy_id: int | None = None
    source: str = "api"
    tif: TimeInForce = TimeInForce.DAY
    venue: Venue = Venue.KRX


@dataclass(frozen=True, slots=True)
class Order:
    """An order as the system knows it. Quantities and money are integers (shares, won)."""

    id: int
    user_id: int
    account_id: int
    strategy_id: int | None
    client_order_id: str
    symbol: str
    side: Side
    type: OrderType
    qty: int
    price: int | None
    status: OrderStatus
    priority: Priority
    urgent: bool
    source: str
    filled_qty: int
    filled_amount: int
    commission: int
    tax: int
    reserved_cash: int
    broker_order_id: str | None
    broker_org_no: str | None
    reason_code: str | None
    reason: str | None
    trading_day: date
    created_at: datetime
    updated_at: datetime
    submitted_at: datetime | None
    tif: TimeInForce = TimeInForce.DAY
    venue: Venue = Venue.KRX

    @property
    def remaining(self) -> int:
        return self.qty - self.filled_qty

    @property
    def avg_fill_price(self) -> int:
        return self.filled_amount // self.filled_qty if self.filled_qty else 0

    @property
    def is_open(self) -> bool:
        return self.status in OPEN


# ---------------------------------------------------------------------------- the machine
#
# Every change of an order's state is one of these events, applied by ``evolve`` - a pure
# function the store's one checked write (``store/repos/orders.py`` ``apply``) calls before it
# compare-and-sets the row. Nothing else writes an order's state.

#: States that close an order without executing it: its reserve is released.
CLOSED_UNFILLED: Final = frozenset({S.DENIED, S.CANCELLED, S.REJECTED, S.EXPIRED})
#: States a fill may arrive in (the broker may know the order).
FILLABLE: Final = frozenset(
    {S.SUBMITTING, S.ACCEPTED, S.PARTIALLY_FILLED, S.CANCEL_PENDING, S.MODIFY_PENDING, S.UNKNOWN}
)


@dataclass(frozen=True, slots=True)
class Moved:
    """The order moves to ``status``; the other fields, when given, are recorded with it.

    Closing without execution (cancelled, rejected, expired) releases the reserve unless
    ``reserved_cash`` says otherwise.
    """

    status: OrderStatus
    reason_code: str | None = None
    reason: str | None = None
    broker_order_id: str | None = None
    broker_org_no: str | None = None
    submitted_at: datetime | None = None
    reserved_cash: int | None = None


@dataclass(frozen=True, slots=True)
class Executed:
    """Executions booked for the order: their total quantity, amount and costs.

    The state follows from the quantity: ``FILLED`` when complete, else ``PARTIALLY_FILLED``
    (or still ``CANCEL_PENDING``). An order already closed (a cancel that lost the race, a
    restart that missed executions) becomes ``FILLED`` when completely executed and otherwise
    keeps its state. A buy's reserve shrinks in proportion to what remains.
    """

    qty: int
    amount: int
    commission: int = 0
    tax: int = 0
    broker_order_id: str | None = None


@dataclass(frozen=True, slots=True)
class Identified:
    """The broker's acknowledgement arrived after executions moved the order on: only its ids
    are recorded (state and history unchanged)."""

    broker_order_id: str
    broker_org_no: str | None = None


@dataclass(frozen=True, slots=True)
class Modified:
    """The broker confirmed a modify (정정): the order works on at ``price`` for ``qty`` shares
    in total (more than it has executed), holding ``reserved_cash`` for what remains."""

    qty: int
    price: int | None
    reserved_cash: int


OrderEvent = Moved | Executed | Identified | Modified


def evolve(order: Order, event: OrderEvent, now: datetime) -> Order:
    """The order after ``event`` (pure). Raises ``InvalidTransition`` for an event the state
    machine does not allow: a move ``TRANSITIONS`` does not list, an execution of an order the
    broker cannot have, or one beyond the order's quantity."""
    if isinstance(event, Identified):
        return replace(
            order, broker_order_id=event.broker_order_id, broker_org_no=event.broker_org_no
        )
    if isinstance(event, Executed):
        return _executed(order, event, now)
    if isinstance(event, Modified):
        if order.status != S.MODIFY_PENDING or event.qty <= order.filled_qty:
            raise InvalidTransition(
                f"order {order.id}: modify to {event.qty} while {order.status}, "
                f"{order.filled_qty} executed"
            )
        return replace(
            order,
            status=S.PARTIALLY_FILLED if order.filled_qty else S.ACCEPTED,
            qty=event.qty,
            price=event.price,
            reserved_cash=event.reserved_cash,
            updated_at=now,
        )
    check_transition(order.status, event.status)
    # Only executions fill an order; a move back to PARTIALLY_FILLED (a refused cancel) needs
    # executions already booked.
    if event.status == S.FILLED or (
        event.status == S.PARTIALLY_FILLED and not 0 < order.filled_qty < order.qty
    ):
        raise InvalidTransition(
            f"order {order.id}: {event.status} with {order.filled_qty} of {order.qty} executed"
        )
    reserved = event.reserved_cash
    if reserved is None:
        reserved = 0 if event.status in CLOSED_UNFILLED else order.reserved_cash
    return replace(
        order,
        status=event.status,
        updated_at=now,
        reserved_cash=reserved,
        reason_code=event.reason_code if event.reason_code is not None else order.reason_code,
        reason=event.reason if event.reason is not None else order.reason,
        broker_order_id=event.broker_order_id or order.broker_order_id,
        broker_org_no=event.broker_org_no or order.broker_org_no,
        submitted_at=event.submitted_at or order.submitted_at,
    )


def _executed(order: Order, event: Executed, now: datetime) -> Order:
    if event.qty <= 0 or event.amount < 0:
        raise InvalidTransition(f"order {order.id}: an execution of {event.qty} shares")
    filled = order.filled_qty + event.qty
    if filled > order.qty:
        raise InvalidTransition(f"order {order.id}: {filled} executed of {order.qty}")
    if order.status in TERMINAL:
        if order.status not in CLOSED_UNFILLED - {S.DENIED}:
            raise InvalidTransition(f"order {order.id}: an execution while {order.status}")
        status = S.FILLED if filled >= order.qty else order.status
    else:
        if order.status not in FILLABLE:
            raise InvalidTransition(f"order {order.id}: an execution while {order.status}")
        status = status_after_fill(order.qty, filled, order.status)
    remaining = order.qty - filled
    reserved = order.reserved_cash * remaining // order.remaining if order.side == Side.BUY else 0
    return replace(
        order,
        status=status,
        updated_at=now,
        filled_qty=filled,
        filled_amount=order.filled_amount + event.amount,
        commission=order.commission + event.commission,
        tax=order.tax + event.tax,
        reserved_cash=0 if status == S.FILLED else reserved,
        broker_order_id=order.broker_order_id or event.broker_order_id,
    )
