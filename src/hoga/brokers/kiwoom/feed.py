"""Kiwoom market data for the hub: realtime types ``0B`` (trades) and ``0D`` (book) as ticks.

It lives beside the adapter because it shares the wire: Kiwoom allows one WebSocket session
per app key (a second login evicts the first with ``R10001``, kiwoom.md A9), so a feed using
the same key as a user's account must ride that account's session rather than open its own.
``KiwoomFeed`` therefore takes the ``KiwoomWire`` (``KiwoomBroker.wire`` in the server) and
registers its items in its own group on the key's shared ``RealtimeConnection``.

Capacity: one session per configured app key (``max_sessions`` = number of keys). Kiwoom does
not document how many items a session may register (kiwoom.md A9, D2), so
``symbols_per_session`` is a conservative, configurable 40 (each symbol takes two
registrations, 0B and 0D); raise it only after measuring. Registrations survive reconnects -
the connection replays them - so a dropped socket does not reach the hub at all.

Ticks: ``0B`` gives the trade (FID 10 price, 15 signed volume, 13 cumulative volume, 27/28
best ask/bid, 11 change against the base price, 20 time); ``0D`` updates the top of book (41/61
best ask and size, 51/71 best bid and size) and is published as a zero-volume tick at the last
trade price (nothing is published for a symbol before its first trade).
"""

from __future__ import annotations

import contextlib
import itertools
import logging
from dataclasses import dataclass
from datetime import date
from typing import Any, Final

from hoga.brokers.kiwoom.client import KiwoomClient, KiwoomWire
from hoga.brokers.kiwoom.realtime import RealtimeConnection, RegistrationRefused
from hoga.brokers.kiwoom.wire import WireError, parse_hms, to_code, to_int, to_price, to_qty
from hoga.domain.clock import KST, Clock

# The hub's feed protocol and its error type (both domain-only); see docs/architecture.md.
from hoga.domain.feed import BookHandler, CloseHandler, FeedError, TickHandler
from hoga.domain.market import OrderBook, Tick
from hoga.domain.secret import Secret

log = logging.getLogger(__name__)

FEED_GROUP: Final = "2"
FEED_TYPES: Final = ("0B", "0D")
DEFAULT_SYMBOLS_PER_SESSION: Final = 40


@dataclass(frozen=True, slots=True)
class FeedCredentials:
    """An app key the feed may use (market data needs no account, only a key)."""

    app_key: Secret
    app_secret: Secret
    env: str = "real"
    base_url: str | None = None
    ws_url: str | None = None


@dataclass(slots=True)
class _Book:
    bid: int = 0
    ask: int = 0
    bid_size: int = 0
    ask_size: int = 0
    last: Tick | None = None


class KiwoomFeedSession:
    """The feed's registrations on one app key's realtime session."""

    def __init__(
        self,
        feed: KiwoomFeed,
        sid: str,
        client: KiwoomClient,
        connection: RealtimeConnection,
        on_tick: TickHandler,
        on_close: CloseHandler,
    ) -> None:
        self.id = sid
        self._feed = feed
        self.client = client
        self.connection = connection
        self._on_tick = on_tick
        self._on_close = on_close
        self._symbols: set[str] = set()
        self._books: dict[str, _Book] = {}
        self.closed = False
        self.frames = 0
        #: Set by the hub: ``0D`` frames become 10-level order books.
        self.book_sink: BookHandler | None = None

    @property
    def symbols(self) -> frozenset[str]:
        return frozenset(self._symbols)

    async def subscribe(self, symbols: list[str]) -> None:
        if self.closed:
            raise FeedError("session is closed", "feed.closed")
        new = [s for s in dict.fromkeys(symbols) if s not in self._symbols]
        cap = self._feed.cap
        if len(self._symbols) + len(new) > cap:
            raise FeedError(
                f"a Kiwoom session carries at most {cap} symbols (configured)", "feed.session_full"
            )
        if not new:
            return
        try:
            await self.connection.register(FEED_GROUP, new, FEED_TYPES)
        except RegistrationRefused as e:
            raise FeedError(e.message, e.code) from None
        self._symbols.update(new)

    async def unsubscribe(self, symbols: list[str]) -> None:
        gone = [s for s in symbols if s in self._symbols]
        self._symbols.difference_update(gone)
        for s in gone:
            self._books.pop(s, None)
        if gone:
            await self.connection.remove(FEED_GROUP, gone)

    async def close(self) -> None:
        await self._end(None)

    async def _end(self, error: BaseException | None) -> None:
        if self.closed:
            return
        self.closed = True
        self.connection.off_real(self.on_real)
        self._symbols.clear()
        self._feed._sessions.pop(self.id, None)
        with contextlib.suppress(Exception):
            await self.connection.drop_group(FEED_GROUP)
        self._on_close(self, error)

    # --- frames

    def on_real(self, kind: str, item: str, values: dict[str, Any]) -> None:
        try:
            symbol = to_code(item)
        except WireError:
            return
        if symbol not in self._symbols:
            return
        self.frames += 1
        try:
            tick = self._tick(kind, symbol, values)
        except WireError as e:
            log.warning("kiwoom feed: unreadable %s frame for %s (%s)", kind, symbol, e)
            return
        if tick is not None:
            self._on_tick(tick)

    def _orderbook(self, symbol: str, v: dict[str, Any]) -> OrderBook:
        """FIDs 41-50 ask prices, 61-70 their sizes, 51-60 bid prices, 71-80 their sizes,
        121/125 total ask/bid size (kiwoom.md); prices carry a direction sign."""
        asks = ((to_price(v.get(str(41 + i))), to_qty(v.get(str(61 + i)))) for i in range(10))
        bids = ((to_price(v.get(str(51 + i))), to_qty(v.get(str(71 + i)))) for i in range(10))
        return OrderBook(
            symbol=symbol,
            ts=self._feed.ts(v.get("21")),
            asks=tuple((p, q) for p, q in asks if p > 0),
            bids=tuple((p, q) for p, q in bids if p > 0),
            total_ask_qty=to_qty(v.get("121")),
            total_bid_qty=to_qty(v.get("125")),
        )

    def _tick(self, kind: str, symbol: str, v: dict[str, Any]) -> Tick | None:
        book = self._books.setdefault(symbol, _Book())
        if kind == "0D":
            if self.book_sink is not None:
                self.book_sink(self._orderbook(symbol, v))
            book.ask = to_price(v.get("41")) or book.ask
            book.bid = to_price(v.get("51")) or book.bid
            book.ask_size = to_qty(v.get("61"), book.ask_size)
            book.bid_size = to_qty(v.get("71"), book.bid_size)
            last = book.last
            if last is None:
                return None
            return Tick(
                symbol=symbol,
                price=last.price,
                volume=0,
                ts=self._feed.ts(v.get("21")),
                bid=book.bid,
                ask=book.ask,
                bid_size=book.bid_size,
                ask_size=book.ask_size,
                cum_volume=last.cum_volume,
                base_price=last.base_price,
            )
        price = to_price(v.get("10"), None)
        if price <= 0:
            raise WireError("trade without a price")
        book.ask = to_price(v.get("27")) or book.ask
        book.bid = to_price(v.get("28")) or book.bid
        tick = Tick(
            symbol=symbol,
            price=price,
            volume=to_qty(v.get("15")),
            ts=self._feed.ts(v.get("20")),
            bid=book.bid,
            ask=book.ask,
            bid_size=book.bid_size,
            ask_size=book.ask_size,
            cum_volume=to_qty(v.get("13")),
            base_price=price - to_int(v.get("11")),
        )
        book.last = tick
        return tick


class KiwoomFeed:
    """A ``Feed`` over Kiwoom realtime data; see the module docstring."""

    name = "kiwoom"

    def __init__(
        self,
        wire: KiwoomWire,
        credentials: list[FeedCredentials],
        *,
        clock: Clock,
        symbols_per_session: int = DEFAULT_SYMBOLS_PER_SESSION,
    ) -> None:
        if not credentials:
            raise ValueError("the Kiwoom feed needs at least one app key")
        if symbols_per_session < 1:
            raise ValueError("symbols_per_session must be at least 1")
        self._wire = wire
        self._credentials = list(credentials)
        self._clock = clock
        self.cap = symbols_per_session
        # The Feed protocol's view of the same number (None would mean unlimited).
        self.symbols_per_session: int | None = symbols_per_session
        self.max_sessions: int | None = len(credentials)
        self._sessions: dict[str, KiwoomFeedSession] = {}
        self._ids = itertools.count(1)

    def ts(self, hms: Any) -> float:
        """A frame's ``HHMMSS`` on today's KST date; the clock when absent or in the future."""
        now = self._clock.time()
        today: date = self._clock.now().astimezone(KST).date()
        ts = parse_hms(hms, today)
        return ts if ts is not None and ts <= now + 60 else now

    @property
    def sessions(self) -> list[KiwoomFeedSession]:
        return list(self._sessions.values())

    async def open_session(self, on_tick: TickHandler, on_close: CloseHandler) -> KiwoomFeedSession:
        busy = {id(s.client) for s in self._sessions.values()}
        for cred in self._credentials:
            client = self._wire.client(
                cred.env, cred.app_key, cred.app_secret, cred.base_url, cred.ws_url
            )
            if id(client) in busy:
                continue
            connection = self._wire.realtime(client)
            session = KiwoomFeedSession(
                self, f"kiwoom-{next(self._ids)}", client, connection, on_tick, on_close
            )
            connection.on_real(FEED_TYPES, session.on_real)
            connection.start()
            self._sessions[session.id] = session
            return session
        raise FeedError(
            f"one realtime session per app key: all {len(self._credentials)} keys are in use",
            "feed.too_many_sessions",
        )

    async def close(self) -> None:
        for session in list(self._sessions.values()):
            await session.close()
