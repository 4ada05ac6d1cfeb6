"""Kiwoom market data (REAL 0B/0D) through the hub, over the fake's WebSocket."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from hoga.brokers.kiwoom import FeedCredentials, KiwoomFeed
from hoga.domain.clock import SystemClock
from hoga.domain.market import Tick
from hoga.domain.secret import Secret
from hoga.fakes.kiwoom import KiwoomFake
from hoga.marketdata.hub import Hub
from hoga.marketdata.universe import Universe, bundled_universe
from tests.helpers import eventually
from tests.kiwoom_support import (
    APP_KEY,
    APP_SECRET,
    account_ref,
    attached,
    feed_wire,
    kiwoom_adapter,
    kiwoom_fake,
)

SYMBOLS = ["005930", "000660"]


def credentials(fake: KiwoomFake) -> FeedCredentials:
    return FeedCredentials(Secret(APP_KEY), Secret(APP_SECRET), env="mock", base_url=fake.base_url)


@contextlib.asynccontextmanager
async def hub_over(feed: KiwoomFeed) -> AsyncIterator[Hub]:
    hub = Hub(feed, Universe(bundled_universe()), SystemClock(), grace=0.0, stale_after=30.0)
    await hub.start()
    try:
        yield hub
    finally:
        await hub.stop()
        await feed.close()


async def pump_until(fake: KiwoomFake, check: object, what: str) -> None:
    async def step() -> bool:
        fake.pump(25)
        return bool(check())  # type: ignore[operator]

    await eventually(step, 10.0, what)


async def test_trades_and_book_reach_hub_consumers() -> None:
    async with kiwoom_fake() as fake:
        clock = SystemClock()
        wire = feed_wire(clock)
        feed = KiwoomFeed(wire, [credentials(fake)], clock=clock, symbols_per_session=3)
        got: list[Tick] = []
        async with hub_over(feed) as hub:
            hub.subscribe(SYMBOLS, got.append, owner="test")

            async def registered() -> bool:
                regs = fake.registrations(APP_KEY)
                return regs.get("0B") == set(SYMBOLS) and regs.get("0D") == set(SYMBOLS)

            await eventually(registered, 5.0, "0B/0D registrations")
            await pump_until(
                fake,
                lambda: (
                    {t.symbol for t in got if t.volume} == set(SYMBOLS)
                    and any(t.volume == 0 for t in got)
                ),
                "trades and book updates of both symbols",
            )

            async def caught_up() -> bool:
                # Frames of the last pump may still be on the wire; no more trading now.
                return all(
                    (hub_tick := hub.last(s)) is not None
                    and (fake_tick := fake.market.last(s)) is not None
                    and hub_tick.cum_volume == fake_tick.cum_volume
                    and hub_tick.bid_size == fake_tick.bid_size
                    for s in SYMBOLS
                )

            await eventually(caught_up, 5.0, "the hub to catch up with the last frames")
            for symbol in SYMBOLS:
                theirs = fake.market.last(symbol)
                ours = hub.last(symbol)
                assert theirs is not None and ours is not None
                assert ours.price == theirs.price
                assert ours.base_price == theirs.base_price
                assert ours.cum_volume == theirs.cum_volume
                # The book frame (0D) carries sizes; the trade frame the best prices.
                assert (ours.bid, ours.ask) == (theirs.bid, theirs.ask)
            trades = [t for t in got if t.volume]
            assert all(t.price > 0 and t.volume > 0 for t in trades)
            # A capacity of 3 per session and one key: a fourth symbol cannot be placed.
            hub.subscribe(["035720", "051910"], got.append, owner="more")

            async def capped() -> bool:
                return len(hub.unplaced) == 1

            await eventually(capped, 5.0, "the cap to leave one symbol unplaced")
            assert len(fake.registrations(APP_KEY)["0B"]) == 3
        await wire.close()


async def test_a_dropped_socket_restores_market_registrations_without_the_hub() -> None:
    async with kiwoom_fake() as fake:
        clock = SystemClock()
        wire = feed_wire(clock)
        feed = KiwoomFeed(wire, [credentials(fake)], clock=clock)
        got: list[Tick] = []
        async with hub_over(feed) as hub:
            hub.subscribe(SYMBOLS, got.append, owner="test")

            async def registered() -> bool:
                return fake.registrations(APP_KEY).get("0B") == set(SYMBOLS)

            await eventually(registered, 5.0, "registrations")
            (session,) = feed.sessions
            assert await fake.drop_ws(APP_KEY) == 1

            async def restored() -> bool:
                return session.connection.logins >= 2 and await registered()

            await eventually(restored, 5.0, "registrations restored after the drop")
            got.clear()
            await pump_until(
                fake, lambda: {t.symbol for t in got if t.volume} == set(SYMBOLS), "ticks again"
            )
            assert hub.reconnects == 0  # the hub never had to resubscribe
            assert fake.stats[APP_KEY].ws_logins == 2
        await wire.close()


async def test_the_feed_shares_the_accounts_session_for_the_same_key() -> None:
    """One WebSocket per app key: quotes ride the session that carries execution notices."""
    async with kiwoom_fake() as fake, kiwoom_adapter() as (broker, _):
        ref = account_ref(fake)
        await attached(broker, ref)
        clock = SystemClock()
        feed = KiwoomFeed(broker.wire, [credentials(fake)], clock=clock)
        got: list[Tick] = []
        async with hub_over(feed) as hub:
            hub.subscribe(["005930"], got.append, owner="test")
            await pump_until(fake, lambda: any(t.volume for t in got), "a trade")
            assert fake.stats[APP_KEY].ws_logins == 1
            assert fake.stats[APP_KEY].takeovers == 0
            regs = fake.registrations(APP_KEY)
            assert regs["00"] == {""} and regs["0B"] == {"005930"}
        # Closing the feed leaves the account's registrations alone.
        assert fake.registrations(APP_KEY) == {"00": {""}, "04": {""}}
