"""Orders: intents, states and the transitions between them.

States (DESIGN.md): NEW -> DENIED (terminal) or QUEUED -> SUBMITTING -> ACCEPTED ->
PARTIALLY_FILLED -> FILLED; CANCEL_PENDING -> CANCELLED; REJECTED (the broker refused);
UNKNOWN (outcome not known; reconciliation settles it); EXPIRED (day end).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from enum import IntEnum, StrEnum
from typing import Final


class Side(StrEnum):
    BUY = "buy"
    SELL = "sell"


class OrderType(StrEnum):
    LIMIT = "limit"
    MARKET = "market"


class OrderStatus(StrEnum):
    NEW = "NEW"
    DENIED = "DENIED"
    QUEUED = "QUEUED"
    SUBMITTING = "SUBMITTING"
    ACCEPTED = "ACCEPTED"
    PARTIALLY_FILLED = "PARTIALLY_FILLED"
    FILLED = "FILLED"
    CANCEL_PENDING = "CANCEL_PENDING"
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
    {S.QUEUED, S.SUBMITTING, S.ACCEPTED, S.PARTIALLY_FILLED, S.CANCEL_PENDING, S.UNKNOWN}
)
#: Orders the broker may know about (a cancel must go to the broker, not just the queue).
AT_BROKER: Final = frozenset({S.ACCEPTED, S.PARTIALLY_FILLED, S.CANCEL_PENDING, S.UNKNOWN})

_FILLING = {S.PARTIALLY_FILLED, S.FILLED}
TRANSITIONS: Final[dict[OrderStatus, frozenset[OrderStatus]]] = {
    S.NEW: frozenset({S.DENIED, S.QUEUED}),
    # A queued order can still be cancelled locally, expire at day end, or be refused when
    # its account disappears; SUBMITTING means we are about to call (or are calling) the broker.
    S.QUEUED: frozenset({S.SUBMITTING, S.CANCELLED, S.EXPIRED, S.REJECTED}),
    # Back to QUEUED only when the broker said the request was *not processed* (rate limit).
    S.SUBMITTING: frozenset({S.ACCEPTED, S.REJECTED, S.UNKNOWN, S.QUEUED, *_FILLING}),
    S.ACCEPTED: frozenset({S.CANCEL_PENDING, S.CANCELLED, S.EXPIRED, S.REJECTED, *_FILLING}),
    S.PARTIALLY_FILLED: frozenset({S.CANCEL_PENDING, S.CANCELLED, S.EXPIRED, *_FILLING}),
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
    if current == S.CANCEL_PENDING:
        return S.CANCEL_PENDING
    return S.PARTIALLY_FILLED


@dataclass(frozen=True, slots=True)
class OrderIntent:
    """What a person or strategy asks for, before any check.

    ``price`` is required for limit orders and must be absent for market orders.
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

    @property
    def remaining(self) -> int:
        return self.qty - self.filled_qty

    @property
    def avg_fill_price(self) -> int:
        return self.filled_amount // self.filled_qty if self.filled_qty else 0

    @property
    def is_open(self) -> bool:
        return self.status in OPEN
