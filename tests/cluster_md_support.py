"""Servers of a market-data cluster in one process: each with its own NATS connection
(``ClusterBus``), simulated market, feed, hub and ``ClusterMarket``, on cluster-core's real
``LeaseKeeper`` or on the test double below.

``FakeLeaseTable`` stands in for cluster-core's ``LeaseKeeper`` (the key-value bucket): a
shared table of holders with the contract's semantics - ``try_acquire`` wins only while nobody
holds the name, ``fence`` makes ``holds`` false and tells ``on_lost`` while the name stays
taken, ``expire`` frees it as the bucket's TTL would. ``RecordingFeed`` counts, across all
servers, how many upstream sessions carry each symbol and remembers the most ever at once.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from hoga.cluster.bus import ClusterBus
from hoga.cluster.leases import LeaseKeeper
from hoga.cluster.marketdata import ClusterMarket, Leases
from hoga.domain.clock import Clock
from hoga.domain.market import Tick
from hoga.marketdata.feeds.simulator import SimulatedMarket, SimulatedSession, SimulatorFeed
from hoga.marketdata.hub import Hub
from hoga.marketdata.universe import Universe, bundled_universe
from tests.cluster_support import NATS_URL

UNIVERSE = Universe(bundled_universe())


class FakeLeaseTable:
    def __init__(self) -> None:
        self.holder: dict[str, str] = {}

    def expire(self, name: str) -> None:
        self.holder.pop(name, None)


class FakeLeases:
    def __init__(self, table: FakeLeaseTable, instance: str) -> None:
        self.table = table
        self.instance = instance
        self.fenced: set[str] = set()
        #: Cut off from the bucket (a partition): no renewals, no acquisitions.
        self.cut = False
        self._lost: list[Callable[[str], Awaitable[None]]] = []

    async def try_acquire(self, name: str) -> bool:
        if self.cut:
            raise ConnectionError("no route to NATS")
        if name in self.table.holder:
            return False
        self.table.holder[name] = self.instance
        self.fenced.discard(name)
        return True

    async def release(self, name: str) -> None:
        if self.table.holder.get(name) == self.instance:
            del self.table.holder[name]

    def holds(self, name: str) -> bool:
        return self.table.holder.get(name) == self.instance and name not in self.fenced

    def on_lost(self, callback: Callable[[str], Awaitable[None]]) -> None:
        self._lost.append(callback)

    async def fence(self, name: str) -> None:
        """This server's renewals stopped (it is cut off): it must let go; the name stays taken
        until expiry."""
        self.cut = True
        self.fenced.add(name)
        for cb in self._lost:
            await cb(name)


@dataclass
class Carriage:
    """Upstream sessions carrying each symbol, over every server's feed."""

    now: Counter[str] = field(default_factory=Counter)
    most: int = 0

    def add(self, symbols: list[str]) -> None:
        self.now.update(symbols)
        self.most = max([self.most, *(self.now[s] for s in symbols)])

    def remove(self, symbols: list[str]) -> None:
        self.now.subtract(symbols)


class RecordingFeed(SimulatorFeed):
    def __init__(self, market: SimulatedMarket, carriage: Carriage) -> None:
        super().__init__(market, ticks_per_second=100)
        self.carriage = carriage

    def _index_add(self, session: SimulatedSession, symbols: list[str]) -> None:
        self.carriage.add(symbols)
        super()._index_add(session, symbols)

    def _index_remove(self, session: SimulatedSession, symbols: list[str]) -> None:
        self.carriage.remove(symbols)
        super()._index_remove(session, symbols)

    @property
    def carried(self) -> set[str]:
        return set(self._by_symbol)


@dataclass
class Server:
    name: str
    bus: ClusterBus
    market: SimulatedMarket
    feed: RecordingFeed
    hub: Hub
    cm: ClusterMarket
    leases: Leases
    ticks: list[Tick] = field(default_factory=list)

    @property
    def fake_leases(self) -> FakeLeases:
        assert isinstance(self.leases, FakeLeases)
        return self.leases

    async def stop(self) -> None:
        await self.hub.stop()
        await self.cm.stop()
        if isinstance(self.leases, LeaseKeeper):
            await self.leases.stop()
        await self.bus.stop()


async def start_server(
    name: str,
    prefix: str,
    carriage: Carriage,
    clock: Clock,
    *,
    table: FakeLeaseTable | None = None,
    ttl: float = 2.0,
    url: str = NATS_URL,
) -> Server:
    """A server on the double ``table`` if given, else on a real ``LeaseKeeper`` (``ttl``)."""
    bus = ClusterBus(url, name, prefix=prefix)
    await bus.start()
    market = SimulatedMarket(UNIVERSE, seed=5, clock=clock)
    feed = RecordingFeed(market, carriage)
    hub = Hub(feed, UNIVERSE, clock, grace=0.0, stale_after=3600)
    leases: Leases
    if table is not None:
        leases = FakeLeases(table, name)
    else:
        keeper = LeaseKeeper(bus, ttl)
        await keeper.start()
        leases = keeper
    cm = ClusterMarket(
        bus, leases, hub, clock, source="simulator", period=0.3, settle=0.02, check_every=0.05
    )
    await cm.start()
    await hub.start()
    return Server(name, bus, market, feed, hub, cm, leases)
