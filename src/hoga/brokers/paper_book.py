"""The paper broker's book: its orders and accounts, and the fault knobs it takes."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from typing import Any

from hoga.brokers.base import (
    FillReport,
    OrderStatusReport,
)
from hoga.domain import krx
from hoga.domain.orders import OrderStatus, OrderType, Side, TimeInForce
from hoga.domain.portfolio import Position

WORKING = (OrderStatus.ACCEPTED, OrderStatus.PARTIALLY_FILLED)
_MARKET = OrderType.MARKET


@dataclass
class PaperFaults:
    """Faults to inject. Counters count down as they fire."""

    delay: float = 0.0
    reject_next: int = 0
    not_processed_next: int = 0
    #: Accept the next N orders but never answer, and send no execution events for them.
    accept_then_timeout: int = 0
    cancel_delay: float = 0.0


def parse_faults(spec: str) -> PaperFaults:
    """``'accept_then_timeout=1,delay=0.2'`` -> PaperFaults (for chaos runs of a real server)."""
    f = PaperFaults()
    for part in (p.strip() for p in spec.split(",") if p.strip()):
        key, _, value = part.partition("=")
        current = getattr(f, key)
        setattr(f, key, type(current)(float(value)))
    return f


#: PaperOrder fields the account's running reserve depends on.
_RESERVE_FIELDS = frozenset(("status", "reserved"))


@dataclass
class PaperOrder:
    """An order in the paper book. Once booked (``PaperAccount.book``) it keeps its account's
    running reserve up to date: every assignment to ``status`` or ``reserved``, wherever it is
    made, adjusts ``PaperAccount.reserved`` (see ``__setattr__``)."""

    broker_order_id: str
    client_order_id: str
    symbol: str
    side: Side
    type: OrderType
    qty: int
    price: int | None
    ts: float
    day: date
    status: OrderStatus = OrderStatus.ACCEPTED
    filled_qty: int = 0
    filled_amount: int = 0
    reserved: int = 0
    reason: str | None = None
    fills: int = 0
    modified: int = 0
    tif: TimeInForce = TimeInForce.DAY
    venue: str = "KRX"
    #: The session the order was accepted into (``krx.Session`` value).
    session: str = krx.Session.CONTINUOUS.value
    #: A conditional limit order that turned into a market order at the closing auction.
    converted: bool = False
    #: The account that booked the order (None until then). Not an argument: a copy made with
    #: ``dataclasses.replace`` must not adjust the account's reserve as if it were booked.
    account: PaperAccount | None = field(default=None, init=False, repr=False, compare=False)

    def __setattr__(self, name: str, value: Any) -> None:
        account = self.__dict__.get("account")
        if account is not None and name in _RESERVE_FIELDS:
            before = self.reserved if self.status in WORKING else 0
            object.__setattr__(self, name, value)
            account.reserved += (self.reserved if self.status in WORKING else 0) - before
            return
        object.__setattr__(self, name, value)

    @property
    def limit(self) -> int | None:
        """The price it trades at or better; None trades at any price (market)."""
        # Identity against a module constant: read for every resting order on every tick,
        # and an enum member looked up through its class costs more than the whole test.
        if self.converted or self.type is _MARKET:
            return None
        return self.price

    @property
    def remaining(self) -> int:
        return self.qty - self.filled_qty

    def report(self) -> OrderStatusReport:
        avg = self.filled_amount // self.filled_qty if self.filled_qty else 0
        return OrderStatusReport(
            broker_order_id=self.broker_order_id,
            client_order_id=self.client_order_id,
            symbol=self.symbol,
            side=self.side,
            type=self.type,
            qty=self.qty,
            price=self.price,
            filled_qty=self.filled_qty,
            avg_price=avg,
            filled_amount=self.filled_amount if self.filled_qty else None,
            status=self.status,
            ts=self.ts,
            reason=self.reason,
        )


@dataclass
class PaperAccount:
    """A paper account: cash, positions, every order it placed and its fills.

    ``reserved`` is the cash held back by its working orders, kept as a running sum (booking,
    fills, modifications and status changes adjust it through ``PaperOrder.__setattr__``) so
    the reserve check of a place does not walk every order the account ever placed."""

    account_id: int
    cash: int
    commission_rate: Decimal
    positions: dict[str, Position] = field(default_factory=dict)
    orders: dict[str, PaperOrder] = field(default_factory=dict)
    by_client: dict[str, str] = field(default_factory=dict)
    fills: list[FillReport] = field(default_factory=list)
    placements: int = 0
    reserved: int = 0

    def book(self, order: PaperOrder) -> None:
        """Add ``order`` to the book; from now on it keeps ``reserved`` up to date."""
        self.orders[order.broker_order_id] = order
        self.by_client[order.client_order_id] = order.broker_order_id
        order.account = self
        if order.status in WORKING:
            self.reserved += order.reserved

    def reserved_cash(self) -> int:
        """Cash held back by working orders (the running sum; O(1))."""
        return self.reserved

    def open_sell_qty(self, symbol: str) -> int:
        return sum(
            o.remaining
            for o in self.orders.values()
            if o.symbol == symbol and o.side == Side.SELL and o.status in WORKING
        )
