"""The hub: one shared market-data feed for every user, strategy and browser.

* Subscriptions are reference-counted per symbol: however many consumers want a symbol there is
  one upstream subscription, released a grace period after the last consumer leaves.
* Upstream capacity is respected: a feed says how many symbols one session carries and how many
  sessions it may open; the hub packs the wanted symbols into the fewest sessions, re-packs when
  the set shrinks, and reports symbols it cannot place rather than pretending.
* Resilience: a session that drops is reopened with backoff and its symbols restored without
  anyone resubscribing; a staleness watchdog closes a session that went silent during trading.
* The last trade and top of book per symbol are cached (``last``); 1-minute bars are built.
* Order books (10 levels) from feeds that carry them are cached (``orderbook``) and delivered
  to the consumers that asked for them (``subscribe(..., on_book=)``); a feed session carries
  books when it has a ``book_sink`` attribute (``domain.feed.BookCarrier``), which the hub sets.

The tick path is deliberately plain: cache, bar update, then a loop over the symbol's callbacks.
Consumers must be quick (WebSocket clients conflate; strategies queue their work).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from hoga.domain.clock import Clock
from hoga.domain.feed import BookCarrier, Feed, FeedError, FeedSession
from hoga.domain.market import Instrument, OrderBook, Tick
from hoga.marketdata.bars import BarBuilder
from hoga.marketdata.universe import Universe
from hoga.tasks import cancel_and_wait

log = logging.getLogger(__name__)

TickCallback = Callable[[Tick], None]
BookCallback = Callable[[OrderBook], None]


@dataclass(eq=False)
class Subscription:
    """A consumer's hold on some symbols; ``close()`` releases it."""

    hub: Hub
    owner: str
    callback: TickCallback
    symbols: set[str] = field(default_factory=set)
    closed: bool = False
    on_book: BookCallback | None = None

    def add(self, symbols: list[str]) -> None:
        self.hub._add(self, symbols)

    def remove(self, symbols: list[str]) -> None:
        self.hub._remove(self, symbols)

    def close(self) -> None:
        if not self.closed:
            self.hub._remove(self, list(self.symbols))
            self.closed = True


@dataclass(eq=False)
class _Upstream:
    session: FeedSession
    opened_at: float
    last_data: float
    symbols: set[str] = field(default_factory=set)
    alive: bool = True
    ticks: int = 0


class Hub:
    """See the module docstring."""

    def __init__(
        self,
        feed: Feed,
        universe: Universe,
        clock: Clock,
        *,
        grace: float = 30.0,
        stale_after: float = 10.0,
        is_trading: Callable[[], bool] | None = None,
        bars: BarBuilder | None = None,
        instruments: Callable[[str], Instrument | None] | None = None,
    ) -> None:
        self.feed = feed
        self.universe = universe
        self._clock = clock
        self.grace = grace
        self.stale_after = stale_after
        self._is_trading = is_trading or (lambda: True)
        self.bars = bars or BarBuilder()
        self._instruments = instruments
        self._callbacks: dict[str, tuple[TickCallback, ...]] = {}
        self._consumers: dict[str, set[Subscription]] = {}
        self._last: dict[str, Tick] = {}
        self._books: dict[str, OrderBook] = {}
        self._book_callbacks: dict[str, tuple[BookCallback, ...]] = {}
        self.books = 0
        self._upstreams: list[_Upstream] = []
        self._placed: dict[str, _Upstream] = {}
        self.unplaced: set[str] = set()
        self._releasing: dict[str, float] = {}
        self._dirty = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._backoff = 0.5
        self.reconnects = 0
        self.ticks = 0
        self.max_lag = 0.0

    # --- QuoteSource

    def last(self, symbol: str) -> Tick | None:
        return self._last.get(symbol)

    def orderbook(self, symbol: str) -> OrderBook | None:
        """The latest order book the feed delivered for ``symbol`` (None: none yet)."""
        return self._books.get(symbol)

    def instrument(self, symbol: str) -> Instrument | None:
        """The symbol with today's reference price. Without an ``instruments`` source the
        price comes from the feed's ticks; before the first one it is 0 (unknown), never the
        bundled universe's stale figure - limits and cash checks must not use that."""
        if self._instruments is not None:
            return self._instruments(symbol)
        inst = self.universe.get(symbol)
        if inst is None:
            return None
        tick = self._last.get(symbol)
        base = tick.base_price if tick is not None else 0
        return replace(inst, base_price=base)

    # --- consumers

    def subscribe(
        self,
        symbols: list[str],
        callback: TickCallback,
        *,
        owner: str,
        on_book: BookCallback | None = None,
    ) -> Subscription:
        """Start receiving ticks (and, with ``on_book``, order books) for ``symbols``;
        unknown symbols raise FeedError."""
        sub = Subscription(self, owner, callback, on_book=on_book)
        self._add(sub, symbols)
        return sub

    def _add(self, sub: Subscription, symbols: list[str]) -> None:
        unknown = [s for s in symbols if s not in self.universe]
        if unknown:
            raise FeedError(f"unknown symbols: {', '.join(unknown[:10])}", "market.unknown_symbol")
        changed = False
        for s in symbols:
            if s in sub.symbols:
                continue
            sub.symbols.add(s)
            consumers = self._consumers.setdefault(s, set())
            consumers.add(sub)
            self._callbacks[s] = (*self._callbacks.get(s, ()), sub.callback)
            if sub.on_book is not None:
                self._book_callbacks[s] = (*self._book_callbacks.get(s, ()), sub.on_book)
            self._releasing.pop(s, None)
            if s not in self._placed:
                changed = True
        if changed:
            self._dirty.set()

    def _remove(self, sub: Subscription, symbols: list[str]) -> None:
        now = self._clock.monotonic()
        for s in symbols:
            if s not in sub.symbols:
                continue
            sub.symbols.discard(s)
            consumers = self._consumers.get(s)
            if consumers is None:
                continue
            consumers.discard(sub)
            cbs = list(self._callbacks.get(s, ()))
            with contextlib.suppress(ValueError):
                cbs.remove(sub.callback)
            if cbs:
                self._callbacks[s] = tuple(cbs)
            else:
                self._callbacks.pop(s, None)
            if sub.on_book is not None:
                bcbs = list(self._book_callbacks.get(s, ()))
                with contextlib.suppress(ValueError):
                    bcbs.remove(sub.on_book)
                if bcbs:
                    self._book_callbacks[s] = tuple(bcbs)
                else:
                    self._book_callbacks.pop(s, None)
            if not consumers:
                del self._consumers[s]
                self._releasing[s] = now + self.grace
        self._dirty.set()

    def refcount(self, symbol: str) -> int:
        return len(self._consumers.get(symbol, ()))

    @property
    def wanted(self) -> set[str]:
        return set(self._consumers) | set(self._releasing)

    # --- ticks

    def _on_tick(self, up: _Upstream) -> Callable[[Tick], None]:
        last, bars_on_tick, callbacks = self._last, self.bars.on_tick, self._callbacks
        clock_time = self._clock.time

        def on_tick(tick: Tick) -> None:
            now = clock_time()
            tick.recv_ts = now
            up.last_data = now
            up.ticks += 1
            self.ticks += 1  # all sessions' total, for the metrics' tick rate
            last[tick.symbol] = tick
            bars_on_tick(tick)
            for cb in callbacks.get(tick.symbol, ()):
                try:
                    cb(tick)
                except Exception:
                    log.exception("tick consumer failed for %s", tick.symbol)

        return on_tick

    def _on_book(self, up: _Upstream | None) -> Callable[[OrderBook], None]:
        books, callbacks = self._books, self._book_callbacks
        clock_time = self._clock.time

        def on_book(book: OrderBook) -> None:
            if up is not None:
                up.last_data = clock_time()
            self.books += 1
            books[book.symbol] = book
            for cb in callbacks.get(book.symbol, ()):
                try:
                    cb(book)
                except Exception:
                    log.exception("order-book consumer failed for %s", book.symbol)

        return on_book

    def publish_book(self, book: OrderBook) -> None:
        """Deliver an order book without an upstream session (benchmarks, replay drivers)."""
        self._on_book(None)(book)

    def publish(self, tick: Tick) -> None:
        """Deliver a tick without an upstream session (benchmarks and replay drivers)."""
        self._last[tick.symbol] = tick
        self.bars.on_tick(tick)
        for cb in self._callbacks.get(tick.symbol, ()):
            cb(tick)

    # --- upstream management

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._tasks = [
            loop.create_task(self._maintain(), name="hub-maintain"),
            loop.create_task(self._watchdog(), name="hub-watchdog"),
        ]
        self._dirty.set()

    async def stop(self) -> None:
        await cancel_and_wait(self._tasks)
        self._tasks = []
        for up in list(self._upstreams):
            up.alive = False
            with contextlib.suppress(Exception):
                await up.session.close()
        self._upstreams.clear()
        self._placed.clear()

    async def _maintain(self) -> None:
        while True:
            await self._dirty.wait()
            self._dirty.clear()
            try:
                await self.rebalance()
                self._backoff = 0.5
            except FeedError as e:
                log.warning("market data: %s (%s); retrying in %.1fs", e, e.code, self._backoff)
                await asyncio.sleep(self._backoff)
                self._backoff = min(self._backoff * 2, 30.0)
                self._dirty.set()
            except Exception:
                log.exception("market data upkeep failed; retrying in %.1fs", self._backoff)
                await asyncio.sleep(self._backoff)
                self._backoff = min(self._backoff * 2, 30.0)
                self._dirty.set()
            # Releases whose grace has not run out yet wake us again later.
            if self._releasing:
                delay = max(0.05, min(self._releasing.values()) - self._clock.monotonic())
                asyncio.get_running_loop().call_later(delay, self._dirty.set)

    async def rebalance(self) -> None:
        """Bring upstream subscriptions in line with what is wanted (idempotent)."""
        now = self._clock.monotonic()
        for s, until in list(self._releasing.items()):
            if until <= now:
                del self._releasing[s]
        wanted = self.wanted
        cap = self.feed.symbols_per_session or math.inf
        # 1. drop what nobody wants any more
        for up in list(self._upstreams):
            gone = [s for s in up.symbols if s not in wanted]
            if gone and up.alive:
                await up.session.unsubscribe(gone)
            for s in gone:
                up.symbols.discard(s)
                self._placed.pop(s, None)
        # 2. consolidate: empty sessions close; if fewer sessions would do, drain the emptiest
        for up in [u for u in self._upstreams if not u.symbols]:
            await self._close(up)
        needed = math.ceil(len(wanted) / cap) if wanted else 0
        while len(self._upstreams) > max(needed, 1) and len(self._upstreams) > 1:
            victim = min(self._upstreams, key=lambda u: len(u.symbols))
            moving = sorted(victim.symbols)
            await self._close(victim)
            for s in moving:
                self._placed.pop(s, None)
        # 3. place what is wanted but not carried, fullest session first
        todo = sorted(s for s in wanted if s not in self._placed)
        self.unplaced = set()
        while todo:
            room = [u for u in self._upstreams if u.alive and len(u.symbols) < cap]
            room.sort(key=lambda u: -len(u.symbols))
            if not room:
                if (
                    self.feed.max_sessions is not None
                    and len(self._upstreams) >= self.feed.max_sessions
                ):
                    self.unplaced = set(todo)
                    log.warning(
                        "market data: %d symbols exceed upstream capacity: %s", len(todo), todo[:10]
                    )
                    return
                room = [await self._open()]
            up = room[0]
            free = cap - len(up.symbols)
            batch = todo[: int(free) if free != math.inf else len(todo)]
            await up.session.subscribe(batch)
            up.symbols.update(batch)
            for s in batch:
                self._placed[s] = up
            todo = todo[len(batch) :]

    async def _open(self) -> _Upstream:
        now = self._clock.time()
        handler: TickCallback | None = None

        def deliver(tick: Tick) -> None:
            if handler is not None:
                handler(tick)

        session = await self.feed.open_session(deliver, self._on_close)
        up = _Upstream(session=session, opened_at=now, last_data=now)
        handler = self._on_tick(up)
        if isinstance(session, BookCarrier):
            session.book_sink = self._on_book(up)
        self._upstreams.append(up)
        return up

    async def _close(self, up: _Upstream) -> None:
        up.alive = False
        if up in self._upstreams:
            self._upstreams.remove(up)
        for s in list(up.symbols):
            if self._placed.get(s) is up:
                del self._placed[s]
        with contextlib.suppress(Exception):
            await up.session.close()

    def _on_close(self, session: FeedSession, error: BaseException | None) -> None:
        for up in list(self._upstreams):
            if up.session is session:
                if not up.alive:
                    return
                up.alive = False
                self._upstreams.remove(up)
                for s in up.symbols:
                    if self._placed.get(s) is up:
                        del self._placed[s]
                if error is not None:
                    self.reconnects += 1
                    log.warning(
                        "market data session %s dropped (%s); restoring %d symbols",
                        session.id,
                        type(error).__name__,
                        len(up.symbols),
                    )
                self._dirty.set()

    async def _watchdog(self) -> None:
        while True:
            await asyncio.sleep(min(1.0, self.stale_after / 4))
            if not self._is_trading():
                continue
            now = self._clock.time()
            for up in list(self._upstreams):
                if up.alive and up.symbols and now - up.last_data > self.stale_after:
                    log.warning(
                        "market data session %s silent for %.0fs; reconnecting",
                        up.session.id,
                        now - up.last_data,
                    )
                    self.reconnects += 1
                    await self._close(up)
                    self._dirty.set()

    # --- health

    def health(self) -> dict[str, Any]:
        now = self._clock.time()
        return {
            "feed": self.feed.name,
            "symbols_per_session": self.feed.symbols_per_session,
            "max_sessions": self.feed.max_sessions,
            "sessions": [
                {
                    "id": up.session.id,
                    "symbols": len(up.symbols),
                    "ticks": up.ticks,
                    "last_message_age": round(now - up.last_data, 3),
                    "age": round(now - up.opened_at, 1),
                }
                for up in self._upstreams
            ],
            "symbols_wanted": len(self.wanted),
            "symbols_placed": len(self._placed),
            "unplaced": sorted(self.unplaced),
            "consumers": sum(len(c) for c in self._consumers.values()),
            "reconnects": self.reconnects,
            "cached_quotes": len(self._last),
            "cached_books": len(self._books),
        }
