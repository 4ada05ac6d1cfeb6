"""A simulated KRX market and a feed over it.

``SimulatedMarket`` moves every instrument of a universe: each step trades one instrument at its
bid or ask, and now and then moves its book one tick, pulled back toward the day's base price.
Prices stay on the tick grid and inside the day's ±30% limits (both from ``domain.krx``). The
sequence of trades depends only on the seed; timestamps come from the clock.

``SimulatorFeed`` is the embedded default feed: it drives the market at a configured rate and
delivers ticks through sessions that, like a broker's, may be capped in symbols per session and
in number of sessions (set 41 per session to rehearse KIS).
"""

from __future__ import annotations

import asyncio
import itertools
import random
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Literal

from hoga.domain import krx
from hoga.domain.clock import KST, Clock
from hoga.domain.feed import (
    BookHandler,
    CloseHandler,
    FeedError,
    InstrumentSet,
    SymbolSession,
    TickHandler,
)
from hoga.domain.market import Instrument, OrderBook, Tick
from hoga.marketdata.feeds.driven import Driven

MarketMode = Literal["demo", "calendar"]


@dataclass(slots=True)
class _Book:
    inst: Instrument
    base: int
    lower: int
    upper: int
    bid: int
    ask: int
    last: Tick | None = None
    cum_volume: int = 0


def _book_around(inst: Instrument, base: int, mid: int) -> _Book:
    lower, upper = krx.price_limits(base, inst.kind)
    mid = min(max(mid, lower), upper)
    mid = krx.round_to_tick(mid, inst.kind)
    if mid >= upper:
        ask = upper
        bid = krx.step_price(upper, -1, inst.kind)
    else:
        bid = max(mid, lower)
        ask = krx.step_price(bid, 1, inst.kind)
    return _Book(inst=inst, base=base, lower=lower, upper=upper, bid=bid, ask=ask)


class SimulatedMarket:
    """Prices for every instrument, deterministic under a seed.

    Demo mode trades around the clock; calendar mode trades only in KRX's continuous session.
    The base price (기준가) of a new KST day is the previous day's last trade.
    """

    #: Probability that a step moves the book before trading.
    MOVE_PROBABILITY = 0.35

    def __init__(
        self,
        universe: InstrumentSet,
        *,
        seed: int,
        clock: Clock,
        mode: MarketMode = "demo",
    ) -> None:
        self.universe = universe
        self.mode = mode
        self._clock = clock
        self._rng = random.Random(seed)
        self._books = {
            i.symbol: _book_around(i, i.base_price, i.base_price) for i in universe.instruments
        }
        self._order = [self._books[i.symbol] for i in universe.instruments]
        self._extra: dict[str, Instrument] = {}
        self._catalog: Callable[[str], Instrument | None] | None = None
        self._listeners: list[TickHandler] = []
        self._day_end = self._next_midnight(clock.time())
        self.steps = 0

    @staticmethod
    def _next_midnight(ts: float) -> float:
        d = datetime.fromtimestamp(ts, KST).date() + timedelta(days=1)
        return datetime(d.year, d.month, d.day, tzinfo=KST).timestamp()

    def set_catalog(self, catalog: Callable[[str], Instrument | None]) -> None:
        """Instruments beyond the universe (an instrument master): a symbol the catalog
        knows starts trading the first time anyone asks for it (``add_instrument``)."""
        self._catalog = catalog

    def _book(self, symbol: str) -> _Book | None:
        book = self._books.get(symbol)
        if book is None and self._catalog is not None:
            inst = self._catalog(symbol)
            if inst is not None:
                self.add_instrument(inst)
                book = self._books.get(symbol)
        return book

    # --- QuoteSource

    def last(self, symbol: str) -> Tick | None:
        book = self._book(symbol)
        if book is None:
            return None
        if book.last is None:
            # Before the first trade the book itself is the quote, at the base price.
            return Tick(
                symbol=symbol,
                price=book.base,
                volume=0,
                ts=self._clock.time(),
                bid=book.bid,
                ask=book.ask,
                bid_size=0,
                ask_size=0,
                base_price=book.base,
            )
        return book.last

    def instrument(self, symbol: str) -> Instrument | None:
        book = self._book(symbol)
        if book is None:
            return None
        return replace(book.inst, base_price=book.base)

    def orderbook(self, symbol: str, levels: int = 10) -> OrderBook | None:
        """Ten levels each side stepped on the tick grid from the best bid/ask, inside the
        day's limits. Level sizes are a deterministic function of the price and the symbol's
        cumulative volume (they change as it trades); level 1 has the last tick's sizes."""
        book = self._book(symbol)
        if book is None:
            return None
        kind = book.inst.kind
        last = book.last
        ask_sizes = last.ask_size if last is not None and last.ask_size else 0
        bid_sizes = last.bid_size if last is not None and last.bid_size else 0
        salt = book.cum_volume
        asks: list[tuple[int, int]] = []
        price = book.ask
        while len(asks) < levels and 0 < price <= book.upper:
            qty = ask_sizes if not asks and ask_sizes else _level_qty(price, salt)
            asks.append((price, qty))
            if price >= book.upper:
                break
            price = krx.step_price(price, 1, kind)
        bids: list[tuple[int, int]] = []
        price = book.bid
        while len(bids) < levels and price >= book.lower and price > 0:
            qty = bid_sizes if not bids and bid_sizes else _level_qty(price, salt + 1)
            bids.append((price, qty))
            if price <= book.lower:
                break
            price = krx.step_price(price, -1, kind)
        total_ask = sum(q for _, q in asks)
        total_bid = sum(q for _, q in bids)
        return OrderBook(
            symbol=symbol,
            ts=last.ts if last is not None else self._clock.time(),
            asks=tuple(asks),
            bids=tuple(bids),
            # Beyond the ten levels shown the book goes on; KRX totals count it all.
            total_ask_qty=total_ask + _level_qty(book.upper, salt) * 3,
            total_bid_qty=total_bid + _level_qty(book.lower, salt) * 3,
        )

    def trades(self, symbol: str) -> bool:
        """Whether the market has a book for ``symbol`` (bundled or added)."""
        return self._book(symbol) is not None

    def add_instrument(self, inst: Instrument) -> None:
        """Start trading an instrument that was not in the universe (a master symbol that
        someone asked for); a no-op when it trades already."""
        if inst.symbol in self._books or inst.base_price <= 0:
            return
        book = _book_around(inst, inst.base_price, inst.base_price)
        self._books[inst.symbol] = book
        self._order.append(book)
        self._extra[inst.symbol] = inst

    # --- driving

    def add_listener(self, fn: TickHandler) -> None:
        """Called with every trade of every symbol (the paper broker matches orders here)."""
        self._listeners.append(fn)

    def is_open(self, when: datetime | None = None) -> bool:
        if self.mode == "demo":
            return True
        return krx.session_phase(when or self._clock.now()) == krx.Phase.CONTINUOUS

    def _roll_day(self, ts: float) -> None:
        for sym, book in self._books.items():
            close = book.last.price if book.last else book.base
            self._books[sym] = _book_around(book.inst, close, close)
        self._order = [self._books[i.symbol] for i in self.universe.instruments]
        self._order += [self._books[s] for s in self._extra]
        self._day_end = self._next_midnight(ts)

    def step(self, ts: float | None = None) -> Tick:
        """Trade one instrument once and return the tick (listeners have seen it)."""
        now = self._clock.time() if ts is None else ts
        if now >= self._day_end:
            self._roll_day(now)
        rng = self._rng
        book = self._order[rng.randrange(len(self._order))]
        kind = book.inst.kind
        if rng.random() < self.MOVE_PROBABILITY:
            mid = (book.bid + book.ask) / 2
            pull = (book.base - mid) / book.base * 8
            up = rng.random() < 0.5 + max(-0.3, min(0.3, pull))
            if up and book.ask < book.upper:
                book.bid = book.ask
                book.ask = krx.step_price(book.ask, 1, kind)
            elif not up and book.bid > book.lower:
                book.ask = book.bid
                book.bid = krx.step_price(book.bid, -1, kind)
        buy = rng.random() < 0.5
        price = book.ask if buy else book.bid
        volume = rng.randint(1, 60) * (10 if rng.random() < 0.15 else 1)
        book.cum_volume += volume
        tick = Tick(
            symbol=book.inst.symbol,
            price=price,
            volume=volume,
            ts=now,
            bid=book.bid,
            ask=book.ask,
            bid_size=rng.randint(1, 80) * 10,
            ask_size=rng.randint(1, 80) * 10,
            cum_volume=book.cum_volume,
            base_price=book.base,
        )
        book.last = tick
        self.steps += 1
        for fn in self._listeners:
            fn(tick)
        return tick


def _level_qty(price: int, salt: int) -> int:
    """A plausible resting quantity for a level: 10..800 shares, stable for a price until
    the symbol trades again."""
    return ((price * 2654435761 + salt * 40503) >> 7) % 80 * 10 + 10


class SimulatedSession(SymbolSession):
    """A session of the simulator feed; its capacity mimics a broker's registration cap."""

    def __init__(
        self, feed: SimulatorFeed, sid: str, on_tick: TickHandler, on_close: CloseHandler
    ) -> None:
        super().__init__(sid, on_tick, on_close, feed.symbols_per_session)
        self._feed = feed
        self.stalled = False
        #: Set by the hub (``BookCarrier``): order books follow each trade of a symbol.
        self.book_sink: BookHandler | None = None

    async def subscribe(self, symbols: list[str]) -> None:
        new = self.take(symbols)
        unknown = [s for s in new if not self._feed.market.trades(s)]
        if unknown:
            raise FeedError(f"unknown symbols: {', '.join(unknown)}", "feed.unknown_symbol")
        self._symbols.update(new)
        self._feed.subscribe_calls += len(new)
        self._feed._index_add(self, new)

    async def unsubscribe(self, symbols: list[str]) -> None:
        gone = [s for s in symbols if s in self._symbols]
        self._symbols.difference_update(gone)
        self._feed._index_remove(self, gone)

    async def close(self) -> None:
        self._end(None)

    def _end(self, error: BaseException | None) -> None:
        if not self.closed:
            self._feed._index_remove(self, list(self._symbols))
            self._feed._sessions.pop(self.id, None)
            self.finish(error)


class SimulatorFeed(Driven):
    """The embedded feed: drives a SimulatedMarket at ``ticks_per_second`` and fans ticks out
    to the sessions subscribed to each symbol.

    Test hooks: ``drop(session_id)`` ends a session as a network failure would, and
    ``stall(session_id)`` keeps it open but silent (for the staleness watchdog).
    """

    task_name = "simulator-feed"

    name = "simulator"

    def __init__(
        self,
        market: SimulatedMarket,
        *,
        ticks_per_second: float,
        symbols_per_session: int | None = None,
        max_sessions: int | None = None,
        monotonic: Callable[[], float] | None = None,
    ) -> None:
        self.market = market
        self.ticks_per_second = ticks_per_second
        self.symbols_per_session = symbols_per_session or None
        self.max_sessions = max_sessions or None
        self._sessions: dict[str, SimulatedSession] = {}
        self._by_symbol: dict[str, list[SimulatedSession]] = {}
        self._ids = itertools.count(1)
        self._task: asyncio.Task[None] | None = None
        self._loop_time = monotonic
        self.sessions_opened = 0
        self.subscribe_calls = 0

    # --- sessions

    async def open_session(self, on_tick: TickHandler, on_close: CloseHandler) -> SimulatedSession:
        if self.max_sessions is not None and len(self._sessions) >= self.max_sessions:
            raise FeedError(f"no more than {self.max_sessions} sessions", "feed.too_many_sessions")
        sid = f"sim-{next(self._ids)}"
        session = SimulatedSession(self, sid, on_tick, on_close)
        self._sessions[sid] = session
        self.sessions_opened += 1
        return session

    @property
    def open_sessions(self) -> list[SimulatedSession]:
        return list(self._sessions.values())

    def _index_add(self, session: SimulatedSession, symbols: list[str]) -> None:
        for s in symbols:
            self._by_symbol.setdefault(s, []).append(session)

    def _index_remove(self, session: SimulatedSession, symbols: list[str]) -> None:
        for s in symbols:
            lst = self._by_symbol.get(s)
            if lst and session in lst:
                lst.remove(session)
                if not lst:
                    del self._by_symbol[s]

    def drop(self, session_id: str) -> None:
        """Fault: end a session as a dropped connection would."""
        session = self._sessions.get(session_id)
        if session is not None:
            session._end(ConnectionResetError(f"simulated drop of {session_id}"))

    def stall(self, session_id: str, stalled: bool = True) -> None:
        """Fault: keep a session open but stop its data."""
        session = self._sessions.get(session_id)
        if session is not None:
            session.stalled = stalled

    # --- driving

    def emit(self, tick: Tick) -> None:
        book: OrderBook | None = None
        for session in self._by_symbol.get(tick.symbol, ()):
            if not session.stalled:
                session.on_tick(tick)
                sink = session.book_sink
                if sink is not None:
                    if book is None:
                        book = self.market.orderbook(tick.symbol)
                    if book is not None:
                        sink(book)

    def pump(self, n: int) -> None:
        """Produce ``n`` trades now (the run loop calls this; tests may too)."""
        step, emit = self.market.step, self.emit
        for _ in range(n):
            emit(step())

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        now = self._loop_time or loop.time
        start = now()
        produced = 0
        interval = max(0.005, min(0.1, 1.0 / self.ticks_per_second))
        while True:
            await asyncio.sleep(interval)
            if not self.market.is_open():
                start, produced = now(), 0
                await asyncio.sleep(1.0)
                continue
            due = int((now() - start) * self.ticks_per_second) - produced
            if due > 0:
                # Cap a catch-up burst after a stall so a slow consumer is not flooded.
                n = min(due, int(self.ticks_per_second) + 1)
                self.pump(n)
                produced += due

    async def close(self) -> None:
        await self.stop_driving()
        for session in list(self._sessions.values()):
            session._end(None)
