"""Market data for the hub from the bridge's real-time data (``주식체결``, kiwoom.md B4).

The bridge registers every code any client asked for on one logged-in worker, in screens of at
most 100 codes (``SetRealReg``), and registers them again after each login, so one feed
session here stands for the whole pool: ``symbols_per_session`` is the 200 screens × 100 codes
that follow arithmetically (unverified in practice, kiwoom.md D6) and ``max_sessions`` is 1.
With a pool of one login, quotes pause for the length of every user switch; the hub marks them
stale after ``hub_stale_seconds`` as for any other gap.

Ticks: FID 10 price (signed by direction; the sign is dropped), 15 this trade's volume (signed
by aggressor), 13 cumulative volume, 27/28 best ask/bid, 11 change against the base price,
20 the time ``HHMMSS`` (KST).
"""

from __future__ import annotations

import contextlib
import itertools
import logging
from typing import Any

from hoga.brokers.base import AccountRef
from hoga.brokers.kiwoom.wire import WireError, parse_hms, to_code, to_int, to_price, to_qty
from hoga.brokers.kiwoom_openapi.broker import KiwoomOpenApiBroker
from hoga.brokers.kiwoom_openapi.client import BridgeError
from hoga.domain.clock import KST, Clock
from hoga.domain.feed import CloseHandler, FeedError, TickHandler
from hoga.domain.market import Tick

log = logging.getLogger(__name__)

SYMBOLS_PER_SESSION = 200 * 100


class _Session:
    """The one feed session: the codes this hub asked the bridge for."""

    def __init__(
        self, feed: KiwoomOpenApiFeed, sid: str, on_tick: TickHandler, on_close: CloseHandler
    ) -> None:
        self.id = sid
        self._feed = feed
        self._symbols: set[str] = set()
        self.on_tick = on_tick
        self.on_close = on_close

    @property
    def symbols(self) -> frozenset[str]:
        return frozenset(self._symbols)

    async def subscribe(self, symbols: list[str]) -> None:
        try:
            await self._feed.broker.client(self._feed.account).real(list(symbols))
        except BridgeError as e:
            raise FeedError(
                f"bridge refused real-time codes: {e.message}", "feed.refused"
            ) from None
        self._symbols.update(symbols)

    async def unsubscribe(self, symbols: list[str]) -> None:
        # The bridge keeps codes registered (another hoga may use them); ticks are filtered.
        self._symbols.difference_update(symbols)

    async def close(self) -> None:
        self._feed.sessions.pop(self.id, None)
        self.on_close(self, None)


class KiwoomOpenApiFeed:
    """The hub's ``Feed`` over a bridge; uses the bridge of ``account`` (a linked
    ``kiwoom_openapi`` account) and shares its connection with the broker adapter."""

    name = "kiwoom_openapi"
    symbols_per_session: int | None = SYMBOLS_PER_SESSION
    max_sessions: int | None = 1

    def __init__(self, broker: KiwoomOpenApiBroker, account: AccountRef, clock: Clock) -> None:
        self.broker = broker
        self.account = account
        self._clock = clock
        self.sessions: dict[str, _Session] = {}
        self._ids = itertools.count(1)
        broker.add_quote_handler(self._on_real)

    async def open_session(self, on_tick: TickHandler, on_close: CloseHandler) -> _Session:
        if self.sessions:
            raise FeedError("the bridge feed has one session", "feed.capacity")
        session = _Session(self, f"kiwoom-openapi-{next(self._ids)}", on_tick, on_close)
        self.sessions[session.id] = session
        return session

    async def close(self) -> None:
        for session in list(self.sessions.values()):
            with contextlib.suppress(Exception):
                await session.close()

    def _on_real(self, msg: dict[str, Any]) -> None:
        try:
            tick = self.parse(msg)
        except WireError as e:
            log.warning("kiwoom_openapi: unreadable real-time frame ignored (%s)", e)
            return
        for session in list(self.sessions.values()):
            if tick.symbol in session.symbols:
                session.on_tick(tick)

    def parse(self, msg: dict[str, Any]) -> Tick:
        f = msg.get("fids") or {}
        now = self._clock.time()
        price = to_price(f.get("10"), None)
        day = self._clock.now().astimezone(KST).date()
        return Tick(
            symbol=to_code(msg.get("code")),
            price=price,
            volume=to_qty(f.get("15")),
            ts=parse_hms(f.get("20"), day) or now,
            ask=to_price(f.get("27")),
            bid=to_price(f.get("28")),
            cum_volume=to_qty(f.get("13")),
            base_price=price - to_int(f.get("11")) if f.get("11") else 0,
            recv_ts=now,
        )
