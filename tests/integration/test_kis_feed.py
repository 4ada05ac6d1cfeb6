"""KIS market data through the hub: 100 symbols packed 41 registrations per session."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from hoga.brokers.base import MemoryTokenStore
from hoga.brokers.kis import KisBroker, KisFeed
from hoga.domain.clock import SystemClock
from hoga.fakes.kis import KisFake, KisFakeAccount
from hoga.marketdata.hub import Hub
from hoga.marketdata.universe import Universe, bundled_universe
from tests.helpers import eventually
from tests.kis_support import account_ref, key_n


async def _until(check: Callable[[], bool], what: str, fake: KisFake) -> None:
    """Trade the fake's market until ``check()`` holds (bounded)."""

    async def holds() -> bool:
        return check()

    await eventually(holds, 15.0, what, step=lambda: fake.pump(50), pause=0.01)


@asynccontextmanager
async def _attached(
    accounts: list[KisFakeAccount], first_id: int, *, notices: bool = False, seed: int = 1
) -> AsyncIterator[tuple[KisFake, KisBroker]]:
    """A started KIS fake with ``accounts`` and a started adapter attached to each of them, as
    account ids ``first_id``, ``first_id + 1``...; with ``notices`` the refs carry the HTS id
    (execution notices take one registration of each session)."""
    fake = KisFake(env="real", accounts=accounts, seed=seed)
    await fake.start()
    broker = KisBroker(SystemClock(), MemoryTokenStore())
    await broker.start()
    try:
        for n, a in enumerate(accounts):
            await broker.attach(
                account_ref(
                    fake,
                    account_id=first_id + n,
                    account_no=a.account_no,
                    key=a.app_key,
                    secret=a.app_secret,
                    hts_id=a.hts_id if notices else None,
                )
            )
        yield fake, broker
    finally:
        await broker.stop()
        await fake.stop()


async def test_hundred_symbols_in_three_sessions_survive_a_disconnect() -> None:
    accounts = []
    for n in range(3):
        key, secret = key_n(n)
        accounts.append(KisFakeAccount(f"5000000{n}-01", key, secret, hts_id=f"md{n}"))
    clock = SystemClock()
    hub: Hub | None = None
    async with _attached(accounts, 1, seed=5) as (fake, broker):
        try:
            feed = KisFeed(broker, clock, account_ids=[1, 2, 3])
            assert feed.symbols_per_session == 41 and feed.max_sessions == 3
            universe = Universe(bundled_universe())
            hub = Hub(feed, universe, clock, grace=0.0, stale_after=3600)
            symbols = [i.symbol for i in universe.instruments][:100]
            seen: set[str] = set()
            sub = hub.subscribe(symbols, lambda t: seen.add(t.symbol), owner="test")
            await hub.start()

            def all_placed() -> bool:
                h = hub.health() if hub else {}
                return h.get("symbols_placed") == 100 and len(h.get("sessions", [])) == 3

            await _until(all_placed, "100 symbols placed", fake)
            counts = sorted(s["symbols"] for s in hub.health()["sessions"])
            assert counts == [18, 41, 41]
            assert sorted(fake.session_registrations(a.app_key) for a in accounts) == [18, 41, 41]
            await _until(lambda: seen >= set(symbols), "a tick for every symbol", fake)
            tick = hub.last(symbols[0])
            assert tick is not None and tick.bid > 0 and tick.ask > tick.bid and tick.base_price > 0
            assert fake.rate_limited.total() == 0

            # The network drops every session; the hub reopens and resubscribes all of them.
            assert fake.drop_sessions() == 3
            await _until(lambda: hub is not None and hub.reconnects >= 3, "the drop noticed", fake)
            await _until(all_placed, "100 symbols placed again", fake)
            assert sum(fake.session_registrations(a.app_key) for a in accounts) == 100
            seen.clear()
            await _until(lambda: seen >= set(symbols), "ticks again for every symbol", fake)
            sub.close()
        finally:
            if hub is not None:
                await hub.stop()


async def test_a_key_carrying_notices_offers_one_registration_less() -> None:
    key, secret = key_n(9)
    accounts = [KisFakeAccount("50000009-01", key, secret, hts_id="n9")]
    async with _attached(accounts, 9, notices=True) as (_, broker):
        feed = KisFeed(broker, SystemClock(), account_ids=[9])
        assert feed.symbols_per_session == 40
        book = KisFeed(broker, SystemClock(), account_ids=[9], book=True)
        assert book.symbols_per_session == 20
        assert KisFeed(broker, SystemClock(), account_ids=[]).max_sessions == 0


async def test_order_books_arrive_as_top_of_book_ticks() -> None:
    key, secret = key_n(4)
    async with _attached([KisFakeAccount("50000004-01", key, secret)], 4) as (fake, broker):
        feed = KisFeed(broker, SystemClock(), account_ids=[4], book=True)
        ticks = []
        session = await feed.open_session(ticks.append, lambda s, e: None)
        await session.subscribe(["005930"])
        assert fake.session_registrations(key) == 2
        await _until(lambda: any(t.volume == 0 for t in ticks), "a book update", fake)
        book = next(t for t in ticks if t.volume == 0)
        assert book.symbol == "005930" and 0 < book.bid < book.ask
        await session.close()
        assert fake.session_registrations(key) == 0
