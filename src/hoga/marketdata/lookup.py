"""Quotes and order books for any symbol: the hub's cache first, the broker on demand.

``MarketLookup`` is the ``QuoteSource`` the order service, the strategies and the market API
use. It answers from the hub (symbols someone subscribes to) or the simulated market, and -
with a broker feed - fetches a quote or an order book for a symbol nobody subscribes to from
the broker's REST API (KIS ``inquire-price`` / ``inquire-asking-price-exp-ccn``, Kiwoom
``ka10001`` / ``ka10004``) through a ``MarketDataSource``. Fetched answers are cached for
``ttl`` seconds and concurrent askers share one request, so a busy order ticket costs one
call per symbol per ``ttl``; the source's own per-key pacer keeps the calls inside the key's
budget (orders share it, so the ttl matters).

A failed fetch is logged and answered as "no quote" (the risk gate then refuses with
``risk.no_quote``); it never raises into the order path.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import replace
from typing import Protocol, TypeVar

from hoga.domain.clock import Clock
from hoga.domain.market import Bar, Instrument, OrderBook, QuoteSource, Tick

T = TypeVar("T")

log = logging.getLogger(__name__)


class MarketDataSource(Protocol):
    """A broker's on-demand market data (adapters implement it; see the module docstring)."""

    async def quote(self, symbol: str) -> Tick | None: ...

    async def orderbook(self, symbol: str) -> OrderBook | None: ...

    async def bars(self, symbol: str, interval: int, start: float, end: float) -> list[Bar]: ...


class _Books(Protocol):
    def orderbook(self, symbol: str) -> OrderBook | None: ...


class MarketLookup:
    """See the module docstring. Quotes come from ``quotes`` (the hub with a broker feed, the
    simulated market otherwise), order books from ``hub`` then ``quotes``; the ``source``
    fills in what neither knows."""

    def __init__(
        self,
        hub: QuoteSource,
        quotes: QuoteSource,
        clock: Clock,
        *,
        source: MarketDataSource | None = None,
        ttl: float = 2.0,
    ) -> None:
        self.hub = hub
        self.quotes = quotes
        self.source = source
        self._clock = clock
        self.ttl = ttl
        self._quotes: dict[str, tuple[float, Tick]] = {}
        self._books: dict[str, tuple[float, OrderBook]] = {}
        self._inflight: dict[tuple[str, str], asyncio.Future[object]] = {}
        self.fetches = 0
        self.failures = 0

    # --- QuoteSource (synchronous: what is known now)

    def last(self, symbol: str) -> Tick | None:
        tick = self.quotes.last(symbol)
        if tick is None:
            cached = self._quotes.get(symbol)
            tick = cached[1] if cached is not None else None
        return tick

    def instrument(self, symbol: str) -> Instrument | None:
        inst = self.quotes.instrument(symbol)
        if inst is None or inst.base_price > 0:
            return inst
        cached = self._quotes.get(symbol)
        if cached is not None and cached[1].base_price > 0:
            return replace(inst, base_price=cached[1].base_price)
        return inst

    # --- on demand

    async def prime(self, symbol: str) -> None:
        """Make sure a quote for ``symbol`` is known (fetching one if none is)."""
        await self.quote(symbol)

    async def quote(self, symbol: str) -> Tick | None:
        tick = self.quotes.last(symbol)
        if tick is not None or self.source is None:
            return tick
        return await self._fetched("quote", symbol, self._quotes, Tick)

    def _local_book(self, symbol: str) -> OrderBook | None:
        """The hub's or the simulated market's book of ``symbol``, if either keeps one."""
        for src in (self.hub, self.quotes):
            books = getattr(src, "orderbook", None)
            if books is not None:
                book: OrderBook | None = books(symbol)
                if book is not None:
                    return book
        return None

    def known_orderbook(self, symbol: str) -> OrderBook | None:
        """The hub's or the simulated market's book, without asking the broker."""
        book = self._local_book(symbol)
        if book is not None:
            return book
        cached = self._books.get(symbol)
        return cached[1] if cached is not None else None

    async def orderbook(self, symbol: str) -> OrderBook | None:
        book = self._local_book(symbol)
        if book is not None or self.source is None:
            return book
        return await self._fetched("book", symbol, self._books, OrderBook)

    async def _fetched(
        self, what: str, symbol: str, cache: dict[str, tuple[float, T]], kind: type[T]
    ) -> T | None:
        """From the broker at most once per ``ttl`` (and once at a time); the last answer
        that came when the broker fails."""
        cached = cache.get(symbol)
        if cached is not None and self._clock.monotonic() - cached[0] < self.ttl:
            return cached[1]
        got = await self._once(what, symbol)
        if isinstance(got, kind):
            cache[symbol] = (self._clock.monotonic(), got)
            return got
        return cached[1] if cached is not None else None

    async def history(self, symbol: str, interval: int, start: float, end: float) -> list[Bar]:
        """Bars from the broker's chart APIs (``interval`` 60 or 86400 seconds); [] without
        a broker or when it fails."""
        if self.source is None:
            return []
        try:
            return await self.source.bars(symbol, interval, start, end)
        except Exception as e:
            self.failures += 1
            log.warning("broker history for %s failed: %s", symbol, type(e).__name__)
            return []

    async def _once(self, what: str, symbol: str) -> object:
        key = (what, symbol)
        fut = self._inflight.get(key)
        if fut is not None:
            return await asyncio.shield(fut)
        fut = asyncio.get_running_loop().create_future()
        self._inflight[key] = fut
        result: object = None
        try:
            assert self.source is not None
            self.fetches += 1
            if what == "quote":
                result = await self.source.quote(symbol)
            else:
                result = await self.source.orderbook(symbol)
        except Exception as e:
            # Names the failure only: broker messages may quote request details.
            self.failures += 1
            log.warning("on-demand %s for %s failed: %s", what, symbol, type(e).__name__)
        finally:
            del self._inflight[key]
            fut.set_result(result)
        return result
