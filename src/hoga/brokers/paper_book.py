"""The paper broker's book: its orders and accounts, and the fault knobs it takes."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal

from hoga.brokers.base import (
    FillReport,
    OrderStatusReport,
)
from hoga.domain import krx
from hoga.domain.orders import OrderStatus, OrderType, Side, TimeInForce
from hoga.domain.portfolio import Position

WORKING = (OrderStatus.ACCEPTED, OrderStatus.PARTIALLY_FILLED)


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


@dataclass
class PaperOrder:
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

    @property
    def limit(self) -> int | None:
        """The price it trades at or better; None trades at any price (market)."""
        if self.type == OrderType.MARKET or self.converted:
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
    account_id: int
    cash: int
    commission_rate: Decimal
    positions: dict[str, Position] = field(default_factory=dict)
    orders: dict[str, PaperOrder] = field(default_factory=dict)
    by_client: dict[str, str] = field(default_factory=dict)
    fills: list[FillReport] = field(default_factory=list)
    placements: int = 0

    def reserved_cash(self) -> int:
        return sum(o.reserved for o in self.orders.values() if o.status in WORKING)

    def open_sell_qty(self, symbol: str) -> int:
        return sum(
            o.remaining
            for o in self.orders.values()
            if o.symbol == symbol and o.side == Side.SELL and o.status in WORKING
        )
