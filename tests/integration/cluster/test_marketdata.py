"""Market data across servers on real NATS: three hubs in one process, each on its own
connection. The feed owner (lease ``feed-simulator``) carries the union of the servers' demand
upstream and publishes; every hub's consumers get the ticks as if the feed were local.

Most tests hold the lease through a double (tests/cluster_md_support.py) so that fencing and
expiry happen exactly when the test says; the partition test runs on the real ``LeaseKeeper``
through a cuttable proxy, where only time decides.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import pytest

from hoga.cluster.mdcodec import (
    CodecError,
    decode_book,
    decode_tick,
    decode_ticks,
    encode_book,
    encode_tick,
)
from hoga.domain.clock import ManualClock
from hoga.domain.market import OrderBook, Tick
from tests.cluster_md_support import (
    Carriage,
    FakeLeaseTable,
    Server,
    start_server,
)
from tests.cluster_support import TcpProxy, delete_buckets, unique_prefix
from tests.helpers import eventually

LEASE = "feed-simulator"


def test_codec_round_trips_integer_won() -> None:
    t = Tick("005930", 71_500, 30, 1.5e9, 71_400, 71_500, 120, 88, 9_876_543_210, 70_000)
    assert decode_tick("005930", encode_tick(t)) == t
    b = OrderBook("005930", 1.5e9, ((71_500, 10), (71_600, 20)), ((71_400, 5),), 30, 5)
    assert decode_book("005930", encode_book(b)) == b
    assert len(encode_tick(t)) == 73
    # Ticks that piled up at the owner travel together, oldest first.
    t2 = Tick("005930", 71_600, 1, 1.6e9, 71_500, 71_600)
    assert decode_ticks("005930", encode_tick(t) + encode_tick(t2)) == [t, t2]
    for bad in (encode_tick(t)[:-1], b"\x02" + encode_tick(t)[1:], encode_book(b)[:-3]):
        with pytest.raises(CodecError):
            (decode_book if bad.startswith(encode_book(b)[:9]) else decode_ticks)("005930", bad)


@pytest.fixture
async def cluster(
    clock: ManualClock, nats_available: str
) -> AsyncIterator[tuple[list[Server], FakeLeaseTable]]:
    prefix, table, carriage = unique_prefix(), FakeLeaseTable(), Carriage()
    servers: list[Server] = []
    # The first server takes the feed lease before the others start trying.
    servers.append(await start_server("a", prefix, carriage, clock, table=table))
    await eventually(lambda: _true(servers[0].cm.owner.owning), what="a owns the feed")
    for name in ("b", "c"):
        servers.append(await start_server(name, prefix, carriage, clock, table=table))
    yield servers, table
    for s in servers:
        await s.stop()
    assert carriage.most <= 1, "two upstream sessions carried one symbol at once"


async def _true(value: bool) -> bool:
    return value


async def test_ticks_from_the_owner_reach_every_hub_and_its_books(
    cluster: tuple[list[Server], FakeLeaseTable],
) -> None:
    (a, b, c), _ = cluster
    books: list[OrderBook] = []
    b.hub.subscribe(["005930"], b.ticks.append, owner="strategy:1", on_book=books.append)
    c.hub.subscribe(["005930", "000660"], c.ticks.append, owner="ws:1")
    a.hub.subscribe(["000660"], a.ticks.append, owner="ws:2")  # the owner's own consumers too
    await eventually(
        lambda: _true(a.feed.carried == {"005930", "000660"}), what="owner carries the union"
    )
    assert b.feed.carried == c.feed.carried == set()  # only the owner talks upstream
    sent: list[Tick] = []
    a.market.add_listener(sent.append)
    a.feed.pump(400)
    want = {s: [t.price for t in sent if t.symbol == s] for s in ("005930", "000660")}
    assert want["005930"] and want["000660"]

    def prices(ticks: list[Tick], symbol: str) -> list[int]:
        return [t.price for t in ticks if t.symbol == symbol]

    await eventually(
        lambda: _true(
            prices(b.ticks, "005930") == want["005930"]
            and prices(c.ticks, "000660") == want["000660"]
            and prices(a.ticks, "000660") == want["000660"]
        ),
        what="every tick delivered, in order",
    )
    assert {t.symbol for t in b.ticks} == {"005930"}
    assert b.hub.last("005930") == b.ticks[-1]  # the hub's cache and bars work as with a feed
    assert b.hub.bars._current["005930"].close == b.ticks[-1].price
    await eventually(lambda: _true(len(books) > 0), what="order books over NATS")
    assert books[-1] == b.hub.orderbook("005930")
    assert books[-1].asks and books[-1].bids


async def test_demand_union_drives_upstream_subscribe_and_unsubscribe(
    cluster: tuple[list[Server], FakeLeaseTable], clock: ManualClock
) -> None:
    (a, b, c), _ = cluster
    sb = b.hub.subscribe(["005930"], b.ticks.append, owner="strategy:1")
    sc = c.hub.subscribe(["005930", "035420"], c.ticks.append, owner="strategy:2")
    await eventually(lambda: _true(a.feed.carried == {"005930", "035420"}), what="union")
    assert a.feed.subscribe_calls == 2  # 005930 once for two servers
    sb.close()
    await eventually(lambda: _true(b.cm.feed.demand == set()), what="b released")
    assert a.feed.carried == {"005930", "035420"}  # c still wants both
    sc.remove(["035420"])
    await eventually(lambda: _true(a.feed.carried == {"005930"}), what="035420 dropped upstream")
    # A server that dies without a word: its demand expires on the board.
    c.cm.feed._task.cancel()  # type: ignore[union-attr]
    await c.bus.stop()
    assert a.feed.carried == {"005930"}
    clock.advance(a.cm.board.expire + 0.1)
    a.cm.board.sweep()
    await eventually(lambda: _true(a.feed.carried == set()), what="dead server's demand expired")
    assert a.feed.subscribe_calls == 2


async def test_owner_fenced_another_takes_over_and_quotes_resume(
    cluster: tuple[list[Server], FakeLeaseTable],
) -> None:
    (a, b, c), table = cluster
    b.hub.subscribe(["005930"], b.ticks.append, owner="strategy:1")
    c.hub.subscribe(["000660"], c.ticks.append, owner="ws:1")
    await eventually(lambda: _true(a.feed.carried == {"005930", "000660"}), what="a carries")
    a.feed.pump(1000)
    await eventually(lambda: _true(len(b.ticks) > 0 and len(c.ticks) > 0), what="quotes via a")
    # a is cut off from NATS and stops renewing: fenced, it drops its upstream sessions while the lease is still taken.
    await a.fake_leases.fence(LEASE)
    assert a.feed.carried == set() and not a.cm.owner.owning
    assert not b.cm.owner.owning and not c.cm.owner.owning
    table.expire(LEASE)  # the bucket's TTL runs out
    await eventually(
        lambda: _true(b.cm.owner.owning or c.cm.owner.owning), what="another server took over"
    )
    new = b if b.cm.owner.owning else c
    # The new owner knew the cluster's demand already: it carries it at once.
    await eventually(lambda: _true(new.feed.carried == {"005930", "000660"}), what="resubscribed")
    assert a.feed.carried == set()
    before_b, before_c = len(b.ticks), len(c.ticks)
    new.feed.pump(1000)
    await eventually(
        lambda: _true(len(b.ticks) > before_b and len(c.ticks) > before_c), what="quotes resume"
    )
    assert table.holder[LEASE] == new.name
    # The old owner's connection heals: it tries again, the lease is taken, it stays off.
    a.fake_leases.cut = False
    tries = a.cm.owner.rounds
    await eventually(lambda: _true(a.cm.owner.rounds > tries + 2), what="a tried again")
    assert a.feed.carried == set() and not a.cm.owner.owning


async def test_partitioned_feed_owner_stops_before_its_lease_expires_elsewhere(
    clock: ManualClock, nats_available: str
) -> None:
    """The real LeaseKeeper (2 s TTL): the owner loses NATS; it fences itself and closes its
    upstream sessions at 2/3 TTL, the lease expires at TTL, another server subscribes upstream
    for the cluster's demand and quotes resume - never two upstream carriers of a symbol."""
    prefix, carriage = unique_prefix(), Carriage()
    host, port = nats_available.removeprefix("nats://").split(":")
    proxy = TcpProxy(host, int(port))
    await proxy.start()
    servers: list[Server] = []
    try:
        a = await start_server("a", prefix, carriage, clock, url=proxy.url)
        servers.append(a)
        await eventually(lambda: _true(a.cm.owner.owning), what="a owns the feed")
        b = await start_server("b", prefix, carriage, clock)
        c = await start_server("c", prefix, carriage, clock)
        servers += [b, c]
        b.hub.subscribe(["005930"], b.ticks.append, owner="strategy:1")
        c.hub.subscribe(["000660"], c.ticks.append, owner="ws:1")
        await eventually(lambda: _true(a.feed.carried == {"005930", "000660"}), what="a carries")
        a.feed.pump(1000)
        await eventually(lambda: _true(len(b.ticks) > 0 and len(c.ticks) > 0), what="via a")

        proxy.block()
        cut = time.monotonic()
        await eventually(
            lambda: _true(not a.cm.owner.owning and a.feed.carried == set()),
            within=10,
            what="a fenced, its upstream closed",
        )
        fenced = time.monotonic() - cut
        await eventually(
            lambda: _true(b.cm.owner.owning or c.cm.owner.owning), within=10, what="takeover"
        )
        taken = time.monotonic() - cut
        new = b if b.cm.owner.owning else c
        await eventually(lambda: _true(new.feed.carried == {"005930", "000660"}), what="carried")
        before_b, before_c = len(b.ticks), len(c.ticks)
        new.feed.pump(1000)
        await eventually(
            lambda: _true(len(b.ticks) > before_b and len(c.ticks) > before_c), what="resumed"
        )
        resumed = time.monotonic() - cut
        print(
            f"feed fail-over (ttl 2 s): fenced {fenced:.2f} s, taken {taken:.2f} s, "
            f"quotes resumed {resumed:.2f} s after the cut; most upstream carriers of one "
            f"symbol at once: {carriage.most}"
        )
        assert fenced < taken
        assert carriage.most == 1
        proxy.unblock()  # a comes back: the lease is taken, it stays a plain consumer
        await eventually(lambda: _true(a.bus.connected), within=10, what="a reconnected")
        rounds = a.cm.owner.rounds
        await eventually(lambda: _true(a.cm.owner.rounds > rounds + 2), what="a tried again")
        assert not a.cm.owner.owning and a.feed.carried == set()
    finally:
        for s in servers:
            await s.stop()
        await proxy.stop()
        await delete_buckets(prefix, nats_available)
