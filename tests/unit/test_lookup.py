"""MarketLookup: on-demand quotes and books cached per symbol, one request for concurrent
askers, failures as "no quote"; and the simulated 10-level book's invariants (property)."""

from __future__ import annotations

import asyncio
from datetime import datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hoga.domain import krx
from hoga.domain.clock import KST, ManualClock
from hoga.domain.market import Bar, Instrument, OrderBook, Tick
from hoga.marketdata.feeds.simulator import SimulatedMarket
from hoga.marketdata.lookup import MarketLookup
from hoga.marketdata.universe import Universe

ISC = Instrument("095340", "ISC", "KOSDAQ", "stock", 0)


class _Quotes:
    """A hub that knows the symbol but has no tick for it."""

    def last(self, symbol: str) -> Tick | None:
        return None

    def instrument(self, symbol: str) -> Instrument | None:
        return ISC if symbol == ISC.symbol else None


class _Source:
    def __init__(self, clock: ManualClock, fail: bool = False) -> None:
        self.clock = clock
        self.fail = fail
        self.quotes = 0
        self.books = 0
        self.gate = asyncio.Event()
        self.gate.set()

    async def quote(self, symbol: str) -> Tick | None:
        self.quotes += 1
        await self.gate.wait()
        if self.fail:
            raise ConnectionError("secret-bearing message that must not be logged")
        return Tick(symbol, 61_500, 0, self.clock.time(), base_price=61_200)

    async def orderbook(self, symbol: str) -> OrderBook | None:
        self.books += 1
        return OrderBook(symbol, self.clock.time(), ((61_600, 10),), ((61_500, 7),), 10, 7)

    async def bars(self, symbol: str, interval: int, start: float, end: float) -> list[Bar]:
        raise TimeoutError


async def test_one_request_for_concurrent_askers_then_cached_for_the_ttl(
    clock: ManualClock,
) -> None:
    src = _Source(clock)
    q = _Quotes()
    lookup = MarketLookup(q, q, clock, source=src, ttl=2.0)
    assert lookup.instrument("095340") == ISC  # base 0: unknown before a quote
    src.gate.clear()
    tasks = [asyncio.create_task(lookup.quote("095340")) for _ in range(5)]
    await asyncio.sleep(0)
    src.gate.set()
    got = await asyncio.gather(*tasks)
    assert src.quotes == 1 and all(t is not None and t.price == 61_500 for t in got)
    inst = lookup.instrument("095340")
    assert inst is not None and inst.base_price == 61_200
    assert lookup.last("095340") is got[0]
    await lookup.prime("095340")
    assert src.quotes == 1
    clock.advance(2.5)
    await lookup.quote("095340")
    assert src.quotes == 2
    assert (await lookup.orderbook("095340")) is not None
    assert (await lookup.orderbook("095340")) is not None and src.books == 1
    assert await lookup.history("095340", 60, 0, 1) == [] and lookup.failures == 1


async def test_a_failing_source_means_no_quote_and_keeps_the_last_good_one(
    clock: ManualClock, caplog: pytest.LogCaptureFixture
) -> None:
    src = _Source(clock, fail=True)
    q = _Quotes()
    lookup = MarketLookup(q, q, clock, source=src, ttl=1.0)
    assert await lookup.quote("095340") is None and lookup.failures == 1
    assert "ConnectionError" in caplog.text and "secret-bearing" not in caplog.text
    src.fail = False
    good = await lookup.quote("095340")
    clock.advance(5)
    src.fail = True
    assert await lookup.quote("095340") is good  # stale beats nothing; the gate ages it


async def test_without_a_source_nothing_is_fetched(clock: ManualClock) -> None:
    q = _Quotes()
    lookup = MarketLookup(q, q, clock)
    assert await lookup.quote("095340") is None
    assert await lookup.orderbook("095340") is None
    assert await lookup.history("095340", 60, 0, 1) == []


@settings(max_examples=60, deadline=None)
@given(
    base=st.integers(min_value=100, max_value=2_000_000),
    kind=st.sampled_from(["stock", "etf", "etn"]),
    steps=st.integers(min_value=0, max_value=300),
    seed=st.integers(min_value=0, max_value=10_000),
)
def test_simulated_books_are_on_the_grid_sorted_and_inside_the_limits(
    base: int, kind: str, steps: int, seed: int
) -> None:
    base = krx.round_to_tick(base, kind)
    inst = Instrument("123450", "X", "KOSPI", kind, base)
    market = SimulatedMarket(
        Universe([inst]), seed=seed, clock=ManualClock(datetime(2026, 11, 26, 10, tzinfo=KST))
    )
    for _ in range(steps):
        market.step()
    book = market.orderbook("123450")
    assert book is not None
    lower, upper = krx.price_limits(base, kind)
    asks = [p for p, _ in book.asks]
    bids = [p for p, _ in book.bids]
    assert asks and bids and bids[0] < asks[0]
    assert asks == sorted(set(asks)) and bids == sorted(set(bids), reverse=True)
    assert len(asks) <= 10 and len(bids) <= 10
    assert all(lower <= p <= upper and p % krx.tick_size(p, kind) == 0 for p in asks + bids)
    assert all(q > 0 for _, q in book.asks + book.bids)
    assert book.total_ask_qty >= sum(q for _, q in book.asks)
    assert book.total_bid_qty >= sum(q for _, q in book.bids)
