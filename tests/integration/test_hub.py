"""The hub: shared subscriptions, session packing, reconnection, staleness, bars."""

from __future__ import annotations

from collections import Counter
from datetime import datetime

import pytest

from hoga.domain import krx
from hoga.domain.clock import KST, ManualClock
from hoga.domain.feed import FeedError
from hoga.domain.market import Tick
from hoga.marketdata.bars import BarBuilder, aggregate, bucket_start
from hoga.marketdata.feeds.simulator import SimulatedMarket, SimulatorFeed
from hoga.marketdata.hub import Hub
from hoga.marketdata.universe import Universe, bundled_universe
from tests.helpers import eventually

UNIVERSE = Universe(bundled_universe())
SYMBOLS = [i.symbol for i in UNIVERSE.instruments]


def make(
    clock: ManualClock,
    *,
    cap: int | None = None,
    max_sessions: int | None = None,
    grace: float = 0.0,
) -> tuple[SimulatorFeed, Hub]:
    market = SimulatedMarket(UNIVERSE, seed=9, clock=clock)
    feed = SimulatorFeed(
        market, ticks_per_second=100, symbols_per_session=cap, max_sessions=max_sessions
    )
    hub = Hub(feed, UNIVERSE, clock, grace=grace, stale_after=5.0)
    return feed, hub


async def test_many_consumers_one_upstream_subscription(clock: ManualClock) -> None:
    feed, hub = make(clock, grace=30)
    got: Counter[str] = Counter()
    subs = [
        hub.subscribe(["005930"], lambda t, o=o: got.update([o]), owner=o)
        for o in ("user:1", "user:2", "strategy:1", "strategy:2", "strategy:3")
    ]
    await hub.rebalance()
    assert feed.subscribe_calls == 1
    assert len(feed.open_sessions) == 1
    assert hub.refcount("005930") == 5
    feed.pump(2000)
    assert len(set(got.values())) == 1 and next(iter(got.values())) > 0  # everyone got every tick
    for s in subs[:4]:
        s.close()
    await hub.rebalance()
    assert feed.open_sessions[0].symbols == {"005930"}
    subs[4].close()
    await hub.rebalance()
    assert feed.open_sessions[0].symbols == {"005930"}  # still within the grace period
    clock.advance(31)
    await hub.rebalance()
    assert feed.open_sessions == []
    assert hub.wanted == set()


async def test_100_symbols_with_41_per_session_use_3_sessions_and_repack(
    clock: ManualClock,
) -> None:
    feed, hub = make(clock, cap=41)
    sub = hub.subscribe(SYMBOLS[:100], lambda t: None, owner="ws")
    await hub.rebalance()
    assert len(feed.open_sessions) == 3
    assert sorted(len(s.symbols) for s in feed.open_sessions) == [18, 41, 41]
    assert hub.unplaced == set()
    carried = set().union(*(s.symbols for s in feed.open_sessions))
    assert carried == set(SYMBOLS[:100])
    sub.remove(SYMBOLS[:70])
    await hub.rebalance()
    assert len(feed.open_sessions) == 1
    assert feed.open_sessions[0].symbols == set(SYMBOLS[70:100])


async def test_symbols_beyond_capacity_are_reported_not_pretended(clock: ManualClock) -> None:
    feed, hub = make(clock, cap=41, max_sessions=2)
    hub.subscribe(SYMBOLS[:100], lambda t: None, owner="ws")
    await hub.rebalance()
    assert len(feed.open_sessions) == 2
    assert len(hub.unplaced) == 18
    assert hub.health()["unplaced"] == sorted(hub.unplaced)


async def test_a_dropped_session_is_restored_without_resubscribing(clock: ManualClock) -> None:
    feed, hub = make(clock, cap=41)
    seen: set[str] = set()
    hub.subscribe(SYMBOLS[:100], lambda t: seen.add(t.symbol), owner="ws")
    await hub.start()
    await eventually(lambda: _async(len(feed.open_sessions) == 3), what="three sessions")
    victim = feed.open_sessions[0]
    lost = set(victim.symbols)
    feed.drop(victim.id)
    await eventually(
        lambda: _async(len(feed.open_sessions) == 3 and victim not in feed.open_sessions),
        what="reconnection",
    )
    seen.clear()
    for _ in range(200):
        feed.pump(200)
        if lost <= seen:
            break
    assert lost <= seen
    assert hub.reconnects == 1
    await hub.stop()


async def test_a_silent_session_is_reconnected_by_the_watchdog(clock: ManualClock) -> None:
    feed, hub = make(clock)
    hub.stale_after = 0.2
    hub.subscribe(["005930", "000660"], lambda t: None, owner="ws")
    await hub.start()
    await eventually(lambda: _async(len(feed.open_sessions) == 1), what="a session")
    first = feed.open_sessions[0]
    feed.stall(first.id)
    clock.advance(1.0)
    await eventually(
        lambda: _async(bool(feed.open_sessions) and feed.open_sessions[0] is not first),
        what="watchdog reconnect",
    )
    assert feed.open_sessions[0].symbols == {"005930", "000660"}
    await hub.stop()


async def _async(value: bool) -> bool:
    return value


def test_unknown_symbols_are_refused(clock: ManualClock) -> None:
    _, hub = make(clock)
    with pytest.raises(FeedError) as e:
        hub.subscribe(["999999"], lambda t: None, owner="x")
    assert e.value.code == "market.unknown_symbol"


def test_minute_bars_align_to_kst_minutes_and_roll_up() -> None:
    b = BarBuilder()
    start = datetime(2026, 11, 26, 9, 0, tzinfo=KST).timestamp()
    prices = [100, 105, 95, 102, 110, 90, 91]
    for i, p in enumerate(prices):
        b.on_tick(Tick("005930", p, 10, start + i * 20))  # 20 s apart: three per minute
    b.flush(start + 600)
    bars = b.recent("005930")
    assert [(x.open, x.high, x.low, x.close, x.volume) for x in bars] == [
        (100, 105, 95, 95, 30),
        (102, 110, 90, 90, 30),
        (91, 91, 91, 91, 10),
    ]
    assert all(x.start % 60 == 0 for x in bars)
    five = aggregate(bars, 300)
    assert [(x.open, x.high, x.low, x.close, x.volume) for x in five] == [(100, 110, 90, 91, 70)]
    # Daily buckets start at KST midnight, not UTC midnight.
    assert datetime.fromtimestamp(bucket_start(start, 86400), KST).hour == 0


async def test_simulated_prices_stay_on_the_grid_through_the_hub(clock: ManualClock) -> None:
    feed, hub = make(clock)
    bad: list[Tick] = []
    seen: set[str] = set()

    def check(t: Tick) -> None:
        inst = UNIVERSE.get(t.symbol)
        assert inst is not None
        seen.add(t.symbol)
        if not krx.is_valid_price(t.price, t.base_price, inst.kind):
            bad.append(t)

    hub.subscribe(SYMBOLS, check, owner="checker")
    await hub.rebalance()
    feed.pump(20_000)
    assert bad == []
    assert seen == set(SYMBOLS)


def test_reference_prices_come_from_the_feed_never_the_bundled_list(clock: ManualClock) -> None:
    """Without an instruments source (a broker feed), the day's reference price is the one the
    feed's ticks carry; before the first tick it is unknown (0), not the universe's stale one."""
    _, hub = make(clock)
    bundled = UNIVERSE.get("005930")
    assert bundled is not None
    before = hub.instrument("005930")
    assert before is not None and before.base_price == 0
    assert (before.name, before.kind) == (bundled.name, bundled.kind)
    assert hub.instrument("999999") is None
    live_base = krx.round_to_tick(bundled.base_price + 7_000)
    hub.publish(Tick("005930", live_base + 100, 10, clock.time(), base_price=live_base))
    after = hub.instrument("005930")
    assert after is not None and after.base_price == live_base
