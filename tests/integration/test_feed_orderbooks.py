"""Order books from the brokers' streams reach the hub: KIS ``H0STASP0`` and Kiwoom ``0D``,
ten levels each side, against the fakes over loopback."""

from __future__ import annotations

from hoga.brokers.base import MemoryTokenStore
from hoga.brokers.kis import KisBroker, KisFeed
from hoga.brokers.kiwoom import KiwoomFeed
from hoga.domain import krx
from hoga.domain.clock import SystemClock
from hoga.domain.market import OrderBook
from hoga.fakes.kis import KisFake, KisFakeAccount
from hoga.marketdata.hub import Hub
from hoga.marketdata.universe import Universe, bundled_universe
from tests.helpers import eventually
from tests.integration.test_kiwoom_feed import credentials
from tests.kis_support import account_ref, key_n
from tests.kiwoom_support import feed_wire, kiwoom_fake


def _sound(book: OrderBook) -> None:
    asks = [p for p, _ in book.asks]
    bids = [p for p, _ in book.bids]
    assert len(asks) == 10 and len(bids) == 10
    assert asks == sorted(asks) and bids == sorted(bids, reverse=True) and bids[0] < asks[0]
    assert all(p % krx.tick_size(p) == 0 for p in asks + bids)
    assert all(q >= 0 for _, q in book.asks + book.bids)
    assert book.total_ask_qty >= sum(q for _, q in book.asks)


async def test_kis_h0stasp0_books_reach_hub_book_consumers() -> None:
    key, secret = key_n(5)
    fake = KisFake(env="real", accounts=[KisFakeAccount("50000005-01", key, secret)])
    await fake.start()
    broker = KisBroker(SystemClock(), MemoryTokenStore())
    await broker.start()
    feed = KisFeed(broker, SystemClock(), account_ids=[5], book=True)
    hub = Hub(feed, Universe(bundled_universe()), SystemClock(), grace=0.0, stale_after=30.0)
    try:
        await broker.attach(
            account_ref(
                fake, account_id=5, account_no="50000005-01", key=key, secret=secret, hts_id=None
            )
        )
        await hub.start()
        books: list[OrderBook] = []
        hub.subscribe(["005930"], lambda t: None, owner="t", on_book=books.append)

        async def got() -> bool:
            fake.pump(50)
            return bool(books)

        await eventually(got, 15.0, "an H0STASP0 book")
        _sound(books[-1])
        assert hub.orderbook("005930") == books[-1]
        assert books[-1].asks[0][0] == fake.market.last("005930").ask  # type: ignore[union-attr]
    finally:
        await hub.stop()
        await broker.stop()
        await fake.stop()


async def test_kiwoom_0d_books_reach_hub_book_consumers() -> None:
    async with kiwoom_fake() as fake:
        clock = SystemClock()
        wire = feed_wire(clock)
        feed = KiwoomFeed(wire, [credentials(fake)], clock=clock, symbols_per_session=3)
        hub = Hub(feed, Universe(bundled_universe()), clock, grace=0.0, stale_after=30.0)
        await hub.start()
        try:
            books: list[OrderBook] = []
            ticks: list[object] = []
            hub.subscribe(["000660"], ticks.append, owner="t", on_book=books.append)
            other: list[OrderBook] = []
            hub.subscribe(["005930"], lambda t: None, owner="u")  # no books asked for

            async def got() -> bool:
                fake.pump(25)
                return len(books) >= 2

            await eventually(got, 15.0, "0D books")
            assert {b.symbol for b in books} == {"000660"} and not other
            _sound(books[-1])
            assert hub.orderbook("005930") is not None  # cached for REST all the same
        finally:
            await hub.stop()
            await feed.close()
            await wire.close()
