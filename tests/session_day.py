"""A trading day walked on a manual clock: 2026-12-04, an ordinary Friday, for the tests that
take every KRX session and order type through a broker (paper, or an adapter and its fake)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Generic, TypeVar

from hoga.brokers.base import PlaceRequest
from hoga.domain import krx
from hoga.domain.clock import KST, ManualClock
from hoga.domain.orders import OrderType, Side, TimeInForce

SYM = "005930"
R = TypeVar("R")


def at(hhmm: str, sec: int = 0) -> datetime:
    """``hhmm`` (and ``sec``) on 2026-12-04 in Korea."""
    h, m = (int(x) for x in hhmm.split(":"))
    return datetime(2026, 12, 4, h, m, sec, tzinfo=KST)


class Day(Generic[R]):
    """Places numbered requests for ``SYM``; a subclass says how one is sent (``send``) and
    what the test gets back (``R``). Subclasses have ``n`` (requests so far) and ``prefix``."""

    n: int
    prefix: str

    async def send(self, req: PlaceRequest) -> R:
        raise NotImplementedError

    async def place(
        self,
        side: Side,
        kind: OrderType,
        qty: int,
        price: int | None = None,
        tif: TimeInForce = TimeInForce.DAY,
        venue: str = "KRX",
    ) -> R:
        self.n += 1
        req = PlaceRequest(f"{self.prefix}{self.n}", SYM, side, kind, qty, price, venue, tif)
        return await self.send(req)


class FakeDay(Day[R]):
    """What a session test's world does with a broker fake in calendar mode: move the clock
    (the fake's exchange runs the sessions it passed) and read the book.

    Subclasses have ``fake`` (a KIS or Kiwoom fake) and ``clock``."""

    fake: Any
    clock: ManualClock

    def go(self, hhmm: str) -> None:
        self.clock.set(at(hhmm))
        self.fake.exchange.advance()

    def lower(self) -> int:
        """Today's lower price limit of ``SYM``."""
        inst = self.fake.market.instrument(SYM)
        assert inst is not None
        return krx.price_limits(inst.base_price)[0]

    def book(self) -> tuple[int, int, int]:
        """``SYM``'s last price, bid and ask."""
        tick = self.fake.market.last(SYM)
        assert tick is not None
        return tick.price, tick.bid, tick.ask
