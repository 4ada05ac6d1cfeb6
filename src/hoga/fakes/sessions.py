"""KRX sessions and order types for the fake brokers, by the same rules as the paper broker.

Both fakes keep their own order records (in their brokers' shapes); this desk holds what is
common: which session takes an order now, the price a type trades at (best/priority from the
book, closing-price orders at the close), what happens on arrival (IOC/FOK, fixed-price fills,
auctions collecting), and the session moments - opening and closing call auctions at one
price (``domain.matching``), conditional orders turning to market at 15:20, the after-close
trade, the single-price rounds, and the ends of sessions.

A fake plugs in through ``DeskHost``: how to list, fill and end its orders. Outside calendar
mode (the demo market trades around the clock) everything is the continuous session and the
off-hours types are refused, as the paper broker does.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime
from typing import Generic, Protocol, TypeVar

from hoga.brokers.paper_sessions import Due, SessionSchedule
from hoga.domain import krx, matching
from hoga.domain.clock import KST, Clock
from hoga.domain.market import Tick
from hoga.domain.orders import OrderType, Side, TimeInForce
from hoga.marketdata.feeds.simulator import SimulatedMarket

S = krx.Session


@dataclass(frozen=True)
class Terms:
    """How a fake order trades (kept on each fake order as ``terms``)."""

    kind: OrderType = OrderType.LIMIT
    tif: TimeInForce = TimeInForce.DAY
    venue: str = "KRX"
    session: str = S.CONTINUOUS.value
    converted: bool = False

    def limit(self, price: int) -> int | None:
        """The price the order trades at or better; None for any price."""
        if self.kind == OrderType.MARKET or self.converted or price <= 0:
            return None
        return price


class NotAccepted(Exception):
    """No session takes the order now. ``closed``: nothing is open at all."""

    def __init__(self, message: str, *, closed: bool) -> None:
        super().__init__(message)
        self.closed = closed


class DeskOrder(Protocol):
    """What the desk reads on a fake's order itself. The desk writes only ``session`` and
    ``converted`` (``retag``, then ``DeskHost.desk_changed``); other changes go through the
    ``DeskHost``."""

    symbol: str
    day: date
    ts: float
    session: str
    converted: bool

    @property
    def terms(self) -> Terms: ...

    @property
    def remaining(self) -> int: ...

    @property
    def price(self) -> int: ...


OrderT = TypeVar("OrderT", bound=DeskOrder)


class DeskHost(Protocol[OrderT]):
    """What the desk needs from a fake's exchange."""

    def desk_working(self) -> Iterable[OrderT]: ...

    def desk_side(self, order: OrderT) -> Side: ...

    def desk_fill(self, order: OrderT, qty: int, price: int, ts: float) -> None: ...

    def desk_changed(self, order: OrderT) -> None:
        """Journal a change the desk made to the order itself (its session)."""

    def desk_end(self, order: OrderT, why: str) -> None:
        """Cancel the unfilled rest (IOC/FOK, expiry), telling the client as the broker does."""

    def desk_match(self, order: OrderT, tick: Tick) -> None:
        """Match an arriving continuous-session order against the book (the fake's own)."""


class SessionDesk(Generic[OrderT]):
    """See the module docstring."""

    def __init__(self, market: SimulatedMarket, clock: Clock, host: DeskHost[OrderT]) -> None:
        self.market = market
        self._clock = clock
        self._host = host
        self._schedule = SessionSchedule(clock.now())
        self.close: dict[str, int] = {}

    @property
    def calendar(self) -> bool:
        return self.market.mode == "calendar"

    def session_for(self, kind: OrderType, tif: TimeInForce, venue: str) -> S:
        """The session that takes the order now, or ``NotAccepted``."""
        if not self.calendar:
            if kind.value not in krx.SESSION_TYPES[S.CONTINUOUS]:
                raise NotAccepted(
                    "시간외 주문은 정규 세션 밖에서만 받습니다 (off-hours type)", closed=False
                )
            return S.CONTINUOUS
        now = self._clock.now()
        found = krx.session_for_order(now, kind.value, tif.value, venue)
        if found is None:
            raise NotAccepted(
                "지금은 받을 수 없는 주문구분입니다 (not accepted in this session)",
                closed=not krx.sessions_at(now, venue),
            )
        return found

    def today_close(self, symbol: str) -> int | None:
        if symbol in self.close:
            return self.close[symbol]
        tick = self.market.last(symbol)
        return tick.price if tick is not None and tick.price > 0 else None

    def price_for(self, kind: OrderType, side: Side, price: int, symbol: str) -> int | None:
        """The price an order of ``kind`` works at: its own for priced types, the fixed price
        for closing-price types, the book's for best/priority, 0 for market; None when the
        book has nothing to price from."""
        inst = self.market.instrument(symbol)
        if inst is None:
            return None
        if kind.needs_price:
            return price
        if kind in (OrderType.PRE_CLOSE, OrderType.AFTER_CLOSE):
            return krx.fixed_price(kind.value, inst.base_price, self.today_close(symbol))
        if kind in (OrderType.BEST, OrderType.PRIORITY):
            tick = self.market.last(symbol)
            if tick is None:
                return None
            return matching.arrival_price(kind, side, None, tick.bid, tick.ask)
        return 0

    def band(self, kind: OrderType, symbol: str) -> tuple[int, int] | None:
        """The price band a priced order must keep to: the single-price band for
        after-hours single-price orders, else the day's limits."""
        inst = self.market.instrument(symbol)
        if inst is None:
            return None
        if kind == OrderType.SINGLE_PRICE:
            close = self.today_close(symbol) or inst.base_price
            return krx.single_price_band(close, inst.base_price, inst.kind)
        return krx.price_limits(inst.base_price, inst.kind)

    def arrive(self, order: OrderT) -> None:
        """What a newly accepted order does at once."""
        h = self._host
        t = order.terms
        s = S(t.session)
        px = order.price
        if s == S.PRE_CLOSE and px > 0:
            h.desk_fill(order, order.remaining, px, self._clock.time())
            return
        if s == S.AFTER_CLOSE:
            win = krx.window(order.day, s)
            if win is not None and win.trades_at(self._clock.now()) and px > 0:
                h.desk_fill(order, order.remaining, px, self._clock.time())
            return
        if s in krx.AUCTIONS:
            return
        tick = self.market.last(order.symbol)
        if tick is None:
            if t.tif != TimeInForce.DAY:
                h.desk_end(order, "IOC/FOK: 즉시 체결 불가")
            return
        if t.tif == TimeInForce.FOK:
            px, avail = self.quote(order, tick, resting=False)
            if matching.immediate_qty(t.tif, order.remaining, avail if px > 0 else 0) == 0:
                h.desk_end(order, "FOK: 전량 체결 불가")
                return
        h.desk_match(order, tick)
        if t.tif != TimeInForce.DAY and order.remaining > 0:
            h.desk_end(order, "IOC: 잔량 취소")

    def quote(self, order: OrderT, tick: Tick, *, resting: bool) -> tuple[int, int]:
        """(price, shares available) for ``order`` against ``tick``, (0, 0) for no trade
        (``matching.quote_against`` with the order's side and limit)."""
        limit = order.terms.limit(order.price)
        return matching.quote_against(self._host.desk_side(order), limit, tick, resting=resting)

    def retag(self, order: OrderT, session: str, converted: bool) -> None:
        """Move the order to ``session`` (after its auction; conversion at 15:20)."""
        order.session, order.converted = session, converted
        self._host.desk_changed(order)

    def continuous(self, order: OrderT) -> bool:
        """Whether the order trades on ticks now (not waiting for an auction)."""
        return S(order.terms.session) not in krx.AUCTIONS | {
            S.PRE_CLOSE,
            S.AFTER_CLOSE,
        }

    # --- session moments

    def advance(self, now: datetime | None = None) -> None:
        """Run the session moments the clock has passed (calendar mode only)."""
        if not self.calendar:
            return
        for m in self._schedule.due(now or self._clock.now()):
            self._moment(m.due, m.session, m.at)

    def _working(self, sessions: set[str], day: date) -> list[OrderT]:
        h = self._host
        return sorted(
            (o for o in h.desk_working() if o.terms.session in sessions and o.day == day),
            key=lambda o: o.ts,
        )

    def _moment(self, due: Due, session: S, at: datetime) -> None:
        h = self._host
        day, ts = at.astimezone(KST).date(), at.timestamp()
        regular = {S.OPENING_AUCTION.value, S.CONTINUOUS.value, S.CLOSING_AUCTION.value}
        if due == Due.OPENING_AUCTION:
            orders = self._working({session.value}, day)
            for group in _by_symbol(orders).values():
                self._auction(group, ts)
            for o in orders:
                if o.remaining > 0:
                    self.retag(o, S.CONTINUOUS.value, False)
        elif due == Due.CONVERT:
            for o in self._working(regular, day):
                if o.terms.kind == OrderType.CONDITIONAL:
                    self.retag(o, S.CLOSING_AUCTION.value, True)
        elif due == Due.CLOSING_AUCTION:
            orders = self._working(regular, day)
            for symbol, group in _by_symbol(orders).items():
                px = self._auction(group, ts)
                self.close[symbol] = px or self.today_close(symbol) or 0
            for o in orders:
                if o.remaining > 0:
                    h.desk_end(o, "정규장 종료")
        elif due == Due.AFTER_CLOSE:
            for o in self._working({session.value}, day):
                px = self.close.get(o.symbol) or o.price
                if px > 0:
                    h.desk_fill(o, o.remaining, px, ts)
        elif due == Due.SINGLE_PRICE:
            for symbol, group in _by_symbol(self._working({session.value}, day)).items():
                self._auction(group, ts, reference=self.today_close(symbol))
        elif due == Due.EXPIRE:
            sessions = {session.value}
            if session == S.NXT_AFTER:
                sessions = {s.value for s in krx.NXT_SESSIONS}
            for o in self._working(sessions, day):
                h.desk_end(o, f"{session} 종료")

    def _auction(
        self, orders: list[OrderT], ts: float, *, reference: int | None = None
    ) -> int | None:
        """One call auction over ``orders`` with the simulated market as liquidity at its
        last price; the single price, or None when nothing trades."""
        if not orders:
            return None
        h = self._host
        tick = self.market.last(orders[0].symbol)
        ref = reference or (tick.price if tick is not None else 0)
        if ref <= 0:
            return None
        book = [
            matching.AuctionOrder(h.desk_side(o), o.remaining, o.terms.limit(o.price), key=i)
            for i, o in enumerate(orders)
        ]
        result = matching.auction_with_market(book, tick, ref)
        if result is None:
            return None
        for i, o in enumerate(orders):
            qty = result.fills.get(i, 0)
            if qty > 0:
                h.desk_fill(o, qty, result.price, ts)
        return result.price


def _by_symbol(orders: list[OrderT]) -> dict[str, list[OrderT]]:
    out: dict[str, list[OrderT]] = {}
    for o in orders:
        out.setdefault(o.symbol, []).append(o)
    return out
