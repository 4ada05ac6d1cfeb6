"""The KIS market-data feed for the hub: H0STCNT0 trades (and optionally H0STASP0 books).

Each feed session rides on the WebSocket session of one app key (KIS allows one per key, so it
is shared with that key's execution notices - see ``realtime.py``). The operator chooses which
accounts' keys may carry market data (``HOGA_KIS_FEED_ACCOUNTS``); one session per such key, so
``max_sessions`` is the number of distinct keys among them.

Capacity is counted as KIS counts it: every TR registration, 41 per session (kis.md §8.9). A
symbol costs one registration (trades carry the best bid/ask and their sizes) or two when
order books are wanted too, and a key that also carries its execution-notice registration has
one fewer to offer. ``symbols_per_session`` reports the smallest capacity among the keys so the
hub never packs a session beyond what KIS accepts.

The hub owns reconnection: when the socket drops, each session reports it through ``on_close``
and the hub opens sessions again and resubscribes.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Collection

from hoga.brokers.kis import wire
from hoga.brokers.kis.broker import KisBroker
from hoga.brokers.kis.client import KisKey
from hoga.brokers.kis.realtime import KisRealtimeError
from hoga.domain.clock import KST, Clock
from hoga.domain.feed import BookHandler, CloseHandler, FeedError, TickHandler
from hoga.domain.market import OrderBook, Tick

log = logging.getLogger(__name__)
_T = {name: i for i, name in enumerate(wire.TRADE_FIELDS)}
_T_WIDTH = len(wire.TRADE_FIELDS)


class KisFeedSession:
    """The market-data registrations of one app key's WebSocket session."""

    def __init__(
        self,
        feed: KisFeed,
        key: KisKey,
        sid: str,
        on_tick: TickHandler,
        on_close: CloseHandler,
    ) -> None:
        self.id = sid
        self._feed = feed
        self.key = key
        self._on_tick = on_tick
        self._on_close = on_close
        self._symbols: set[str] = set()
        self._last_price: dict[str, tuple[int, int]] = {}
        self.closed = False
        self.ticks = 0
        #: Set by the hub: H0STASP0 frames become 10-level order books (HOGA_KIS_FEED_BOOK).
        self.book_sink: BookHandler | None = None

    @property
    def symbols(self) -> frozenset[str]:
        return frozenset(self._symbols)

    def _trs(self) -> list[str]:
        return [wire.TRADE_TR, wire.BOOK_TR] if self._feed.book else [wire.TRADE_TR]

    async def subscribe(self, symbols: list[str]) -> None:
        if self.closed:
            raise FeedError("session is closed", "feed.closed")
        for s in symbols:
            if s in self._symbols:
                continue
            for tr in self._trs():
                try:
                    await self.key.socket.register(tr, s, owner=self.id)
                except KisRealtimeError as e:
                    code = "feed.session_full" if e.code == "OPSP0008" else f"feed.{e.code}"
                    raise FeedError(e.message, code) from None
            self._symbols.add(s)

    async def unsubscribe(self, symbols: list[str]) -> None:
        for s in symbols:
            if s not in self._symbols:
                continue
            self._symbols.discard(s)
            for tr in self._trs():
                await self.key.socket.unregister(tr, s)

    async def close(self) -> None:
        if self.closed:
            return
        for s in sorted(self._symbols):
            for tr in self._trs():
                await self.key.socket.unregister(tr, s)
        self._end(None)

    def _end(self, error: BaseException | None) -> None:
        if self.closed:
            return
        self.closed = True
        sock = self.key.socket
        sock.on_drop(self.id, None)
        for tr in self._trs():
            if sock.listeners.get(tr) in (self.on_trade, self.on_book):
                sock.listeners.pop(tr, None)
        self._feed._sessions.pop(self.key.id, None)
        self._on_close(self, error)

    # --- frames

    def on_trade(self, rec: list[str]) -> None:
        if len(rec) < _T_WIDTH:
            return
        symbol = rec[_T["MKSC_SHRN_ISCD"]]
        if symbol not in self._symbols:
            return
        to_int = wire.to_int
        price = to_int(rec[_T["STCK_PRPR"]])
        if price <= 0:
            return
        diff = abs(to_int(rec[_T["PRDY_VRSS"]]))
        sign = rec[_T["PRDY_VRSS_SIGN"]]
        base = price - diff if sign in ("1", "2") else price + diff if sign in ("4", "5") else price
        self._last_price[symbol] = (price, base)
        self.ticks += 1
        self._on_tick(
            Tick(
                symbol=symbol,
                price=price,
                volume=to_int(rec[_T["CNTG_VOL"]]),
                ts=self._ts(rec[_T["BSOP_DATE"]], rec[_T["STCK_CNTG_HOUR"]]),
                bid=to_int(rec[_T["BIDP1"]]),
                ask=to_int(rec[_T["ASKP1"]]),
                bid_size=to_int(rec[_T["BIDP_RSQN1"]]),
                ask_size=to_int(rec[_T["ASKP_RSQN1"]]),
                cum_volume=to_int(rec[_T["ACML_VOL"]]),
                base_price=base,
            )
        )

    def on_book(self, rec: list[str]) -> None:
        f = dict(zip(wire.BOOK_FIELDS, rec, strict=False))
        symbol = f.get("MKSC_SHRN_ISCD", "")
        if symbol not in self._symbols:
            return
        bid, ask = wire.to_int(f.get("BIDP1")), wire.to_int(f.get("ASKP1"))
        ts = self._ts("", f.get("BSOP_HOUR", ""))
        if self.book_sink is not None:
            self.book_sink(self._orderbook(symbol, ts, f))
        last = self._last_price.get(symbol)
        price = last[0] if last else (bid or ask)
        if price <= 0:
            return
        self.ticks += 1
        self._on_tick(
            Tick(
                symbol=symbol,
                price=price,
                volume=0,
                ts=ts,
                bid=bid,
                ask=ask,
                bid_size=wire.to_int(f.get("BIDP_RSQN1")),
                ask_size=wire.to_int(f.get("ASKP_RSQN1")),
                cum_volume=wire.to_int(f.get("ACML_VOL")),
                base_price=last[1] if last else 0,
            )
        )

    @staticmethod
    def _orderbook(symbol: str, ts: float, f: dict[str, str]) -> OrderBook:
        to_int = wire.to_int
        asks = ((to_int(f.get(f"ASKP{i}")), to_int(f.get(f"ASKP_RSQN{i}"))) for i in range(1, 11))
        bids = ((to_int(f.get(f"BIDP{i}")), to_int(f.get(f"BIDP_RSQN{i}"))) for i in range(1, 11))
        return OrderBook(
            symbol=symbol,
            ts=ts,
            # Empty levels (a thin book, a limit price reached) come as 0.
            asks=tuple((p, q) for p, q in asks if p > 0),
            bids=tuple((p, q) for p, q in bids if p > 0),
            total_ask_qty=to_int(f.get("TOTAL_ASKP_RSQN")),
            total_bid_qty=to_int(f.get("TOTAL_BIDP_RSQN")),
        )

    def _ts(self, ymd: str, hhmmss: str) -> float:
        day = (
            ymd
            if len(ymd) == 8 and ymd.isdigit()
            else self._feed.clock.now().astimezone(KST).date()
        )
        try:
            return wire.kst_ts(day, hhmmss)
        except ValueError:
            return self._feed.clock.time()


class KisFeed:
    """Market data from KIS WebSocket sessions; see the module docstring."""

    name = "kis"

    def __init__(
        self,
        broker: KisBroker,
        clock: Clock,
        *,
        account_ids: Collection[int],
        book: bool = False,
    ) -> None:
        self.broker = broker
        self.clock = clock
        self.account_ids = set(account_ids)
        self.book = book
        self._sessions: dict[str, KisFeedSession] = {}
        self._ids = itertools.count(1)
        self.sessions_opened = 0
        self._cap: int | None = None
        self._max: int | None = None

    def _keys(self) -> list[KisKey]:
        seen: dict[str, KisKey] = {}
        for key in self.broker.keys:
            if any(a in self.account_ids for a in key.accounts):
                seen[key.id] = key
        return [seen[k] for k in sorted(seen)]

    def _notice_regs(self, key: KisKey) -> int:
        tr = wire.NOTICE_TR[key.env]
        return sum(1 for t, _ in key.socket.persistent if t == tr)

    @property
    def symbols_per_session(self) -> int | None:
        if self._cap is not None:
            return self._cap
        keys = self._keys()
        per_symbol = 2 if self.book else 1
        if not keys:
            return wire.MAX_REGISTRATIONS // per_symbol
        room = min(key.socket.max_registrations - self._notice_regs(key) for key in keys)
        return max(1, room // per_symbol)

    @symbols_per_session.setter
    def symbols_per_session(self, value: int | None) -> None:
        """Cap sessions below what KIS allows (None: derive it from the keys, as above)."""
        self._cap = value

    @property
    def max_sessions(self) -> int | None:
        if self._max is not None:
            return self._max
        return len(self._keys())

    @max_sessions.setter
    def max_sessions(self, value: int | None) -> None:
        """Use fewer sessions than there are keys (None: one per allowed key)."""
        self._max = value

    async def open_session(self, on_tick: TickHandler, on_close: CloseHandler) -> KisFeedSession:
        limit = self.max_sessions
        free = [k for k in self._keys() if k.id not in self._sessions]
        if limit is not None and len(self._sessions) >= limit:
            free = []
        if not free:
            raise FeedError(
                "KIS 시세용 앱키가 더 없습니다 (no free KIS app key for market data; "
                "add accounts to HOGA_KIS_FEED_ACCOUNTS)",
                "feed.too_many_sessions",
            )
        key = free[0]
        try:
            await key.socket.ensure_open()
        except KisRealtimeError as e:
            raise FeedError(e.message, f"feed.{e.code}") from None
        except Exception as e:
            raise FeedError(
                f"KIS 실시간 연결 실패 ({type(e).__name__})", "feed.unavailable"
            ) from None
        session = KisFeedSession(self, key, f"kis-{key.id}-{next(self._ids)}", on_tick, on_close)
        self._sessions[key.id] = session
        key.socket.listeners[wire.TRADE_TR] = session.on_trade
        if self.book:
            key.socket.listeners[wire.BOOK_TR] = session.on_book
        key.socket.on_drop(session.id, session._end)
        self.sessions_opened += 1
        return session

    @property
    def open_sessions(self) -> list[KisFeedSession]:
        return list(self._sessions.values())

    async def close(self) -> None:
        for session in list(self._sessions.values()):
            await session.close()
