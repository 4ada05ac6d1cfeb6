"""Market data across the servers of a cluster (docs/scaling.md, "Market data across instances").

One server - the holder of lease ``feed-<source>`` - runs the upstream feed (simulator, KIS,
Kiwoom) and publishes every tick and order book on ``<prefix>.md.tick.<symbol>`` /
``<prefix>.md.book.<symbol>`` (cluster/mdcodec.py). Every server's hub reads from a
``ClusterFeed`` (cluster/mdsource.py) instead of the upstream feed, so the hub and its consumers
work exactly as on a single server, and announces the symbols it wants. The owner subscribes
upstream to the union of the cluster's demand through a hub of its own (``FeedOwner``), which
brings the single-server machinery along: one upstream subscription per symbol, session packing
within the broker's caps, reconnects, the staleness watchdog.

Fail-over: every server keeps the cluster's demand (``DemandBoard``) and tries for the lease
while nobody holds it, so the next owner subscribes upstream for the current demand the moment
it wins. The old owner stops its upstream sessions as soon as its lease is lost or fenced
(``holds`` turns false 2/3 of the TTL after the last renewal), which is before the lease can
expire for the others: two servers never carry one symbol upstream at the same time.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, Protocol

from hoga.cluster.mdcodec import MAX_TICKS_PER_MESSAGE, encode_book, encode_tick
from hoga.cluster.mdsource import (
    DEMAND_PERIOD,
    EXPIRE_PERIODS,
    ClusterFeed,
    decode_demand,
    stop_tasks,
)
from hoga.domain.clock import Clock
from hoga.domain.feed import Feed
from hoga.domain.market import OrderBook, Tick
from hoga.marketdata.hub import Hub, Subscription
from hoga.marketdata.universe import Universe

if TYPE_CHECKING:
    from hoga.cluster.bus import ClusterBus

log = logging.getLogger(__name__)


class Leases(Protocol):
    """The part of ``hoga.cluster.leases.LeaseKeeper`` this module uses (cluster-contract)."""

    async def try_acquire(self, name: str) -> bool: ...

    async def release(self, name: str) -> None: ...

    def holds(self, name: str) -> bool: ...

    def on_lost(self, callback: Callable[[str], Awaitable[None]]) -> None: ...


class DemandBoard:
    """The symbols each live server wants, from their snapshots on ``<prefix>.md.demand.*``.

    Contract: ``union`` is the set the feed owner must carry; a server's entry is replaced by
    each snapshot and forgotten ``expire`` seconds after its last one (a dead server's demand
    goes away on its own). Listeners (``on_change``) are called when the union changes.
    """

    def __init__(self, bus: ClusterBus, clock: Clock, *, expire: float) -> None:
        self.bus = bus
        self._clock = clock
        self.expire = expire
        self._by_instance: dict[str, tuple[frozenset[str], float]] = {}
        self._union: frozenset[str] = frozenset()
        self._listeners: list[Callable[[], None]] = []
        self._task: asyncio.Task[None] | None = None

    @property
    def union(self) -> frozenset[str]:
        return self._union

    @property
    def instances(self) -> dict[str, frozenset[str]]:
        return {i: syms for i, (syms, _) in self._by_instance.items()}

    def on_change(self, callback: Callable[[], None]) -> None:
        self._listeners.append(callback)

    async def start(self) -> None:
        await self.bus.subscribe(self.bus.subject("md", "demand") + ".*", self._on_snapshot)
        self._task = asyncio.get_running_loop().create_task(self._expire(), name="md-board")

    async def ask(self) -> None:
        """Ask every server for its snapshot now (a new owner's first step)."""
        await self.bus.publish(self.bus.subject("md", "demand-ask"), b"")

    async def _on_snapshot(self, subject: str, data: bytes) -> None:
        instance = subject.rsplit(".", 1)[1]
        symbols = frozenset(decode_demand(data))
        if symbols:
            self._by_instance[instance] = (symbols, self._clock.monotonic())
        else:  # a server that stops says so: nothing to wait out
            self._by_instance.pop(instance, None)
        self._recompute()

    async def _expire(self) -> None:
        while True:
            await asyncio.sleep(self.expire / EXPIRE_PERIODS / 2)
            self.sweep()

    def sweep(self) -> None:
        """Forget servers silent for ``expire`` seconds."""
        cutoff = self._clock.monotonic() - self.expire
        for instance, (_, seen) in list(self._by_instance.items()):
            if seen < cutoff:
                log.info("cluster market data: %s went silent; its demand expires", instance)
                del self._by_instance[instance]
        self._recompute()

    def _recompute(self) -> None:
        union = frozenset().union(*(syms for syms, _ in self._by_instance.values()))
        if union != self._union:
            self._union = union
            for cb in list(self._listeners):
                cb()

    async def stop(self) -> None:
        if self._task is not None:
            await stop_tasks([self._task])
            self._task = None


class _Outbox:
    """Ticks and books the owner's hub hands over synchronously, published by one task (the
    hub's tick path must not await; a task per tick would cost more than NATS).

    What piles up between two runs of the task goes out as one message per symbol: the ticks
    back to back, oldest first (``mdcodec``), and only the newest order book - a book is a
    snapshot, so an older one nobody has seen yet is worth nothing. At a quiet rate every
    message carries one tick, published on the next turn of the event loop.
    """

    def __init__(self, bus: ClusterBus) -> None:
        self.bus = bus
        self._ticks: dict[str, list[bytes]] = {}
        self._books: dict[str, bytes] = {}
        self._ready = asyncio.Event()
        self.published = 0
        self.messages = 0
        self.dropped = 0
        self.open = False

    def put_tick(self, symbol: str, data: bytes) -> None:
        if self.open:
            pending = self._ticks.get(symbol)
            if pending is None:
                self._ticks[symbol] = [data]
            else:
                pending.append(data)
            self._ready.set()

    def put_book(self, symbol: str, data: bytes) -> None:
        if self.open:
            self._books[symbol] = data
            self._ready.set()

    def clear(self) -> None:
        self._ticks.clear()
        self._books.clear()

    async def run(self) -> None:
        subject = self.bus.subject
        while True:
            await self._ready.wait()
            self._ready.clear()
            ticks, self._ticks = self._ticks, {}
            books, self._books = self._books, {}
            for symbol, records in ticks.items():
                for i in range(0, len(records), MAX_TICKS_PER_MESSAGE):
                    chunk = records[i : i + MAX_TICKS_PER_MESSAGE]
                    await self._send(subject("md", "tick", symbol), b"".join(chunk), len(chunk))
            for symbol, book in books.items():
                await self._send(subject("md", "book", symbol), book, 0)

    async def _send(self, subject: str, data: bytes, ticks: int) -> None:
        if not self.open:  # fenced meanwhile: what is left is another owner's now
            return
        try:
            await self.bus.client.publish(subject, data)
        except Exception as e:  # NATS away and its buffer full: quotes are perishable
            self.dropped += max(ticks, 1)
            log.debug("cluster market data: dropped a publish (%s)", type(e).__name__)
        else:
            self.published += ticks
            self.messages += 1


class FeedOwner:
    """Holds lease ``feed-<source>`` when it can and, while it does, runs the upstream feed for
    the cluster's demand and publishes what it delivers.

    Contract: at most one upstream session set per cluster (the lease); the owner's hub is
    stopped - closing every upstream session - when the lease is lost, fenced (checked every
    ``check_every`` seconds, well under a third of the TTL) or released at ``stop``. Symbols the
    owner's universe does not know are skipped (every server reads one instrument master).
    """

    def __init__(
        self,
        bus: ClusterBus,
        leases: Leases,
        upstream: Feed,
        board: DemandBoard,
        universe: Universe,
        clock: Clock,
        *,
        source: str,
        check_every: float = 0.5,
        stale_after: float = 10.0,
        is_trading: Callable[[], bool] | None = None,
    ) -> None:
        self.bus = bus
        self.leases = leases
        self.upstream = upstream
        self.board = board
        self.universe = universe
        self._clock = clock
        self.lease = f"feed-{source}"
        self.check_every = check_every
        self.stale_after = stale_after
        self._is_trading = is_trading
        self.hub: Hub | None = None
        self._sub: Subscription | None = None
        self._outbox = _Outbox(bus)
        self._tasks: list[asyncio.Task[None]] = []
        self._lock = asyncio.Lock()
        self.takeovers = 0
        self.rounds = 0
        leases.on_lost(self._on_lost)
        board.on_change(self._sync)

    @property
    def owning(self) -> bool:
        return self.hub is not None

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._tasks = [
            loop.create_task(self._run(), name="md-owner"),
            loop.create_task(self._outbox.run(), name="md-outbox"),
        ]

    async def _run(self) -> None:
        while True:
            try:
                if self.hub is None:
                    if await self.leases.try_acquire(self.lease):
                        await self._begin()
                elif not self.leases.holds(self.lease):
                    await self._end("fenced")
            except Exception as e:  # NATS away or a feed refusing: try again next round
                log.warning("cluster market data: feed ownership round failed: %r", e)
            self.rounds += 1
            await asyncio.sleep(self.check_every)

    async def _on_lost(self, name: str) -> None:
        if name == self.lease:
            await self._end("lost")

    async def _begin(self) -> None:
        async with self._lock:
            if self.hub is not None:
                return
            log.info("cluster market data: this server now runs the %s feed", self.lease)
            self.takeovers += 1
            hub = Hub(
                self.upstream,
                self.universe,
                self._clock,
                grace=0.0,  # the servers' hubs already hold symbols for their grace period
                stale_after=self.stale_after,
                is_trading=self._is_trading,
            )
            self._sub = hub.subscribe([], self._publish_tick, owner="cluster", on_book=self._book)
            self.hub = hub
            self._outbox.open = True
            self._sync()
            await hub.start()
        with contextlib.suppress(Exception):
            await self.board.ask()  # snapshots from servers this one has not heard yet

    async def _end(self, why: str) -> None:
        async with self._lock:
            hub, self.hub, self._sub = self.hub, None, None
            self._outbox.open = False
            self._outbox.clear()
            if hub is None:
                return
            log.warning(
                "cluster market data: feed lease %s (%s); stopping upstream", self.lease, why
            )
            await hub.stop()  # closes every upstream session

    def _sync(self) -> None:
        """Bring the owner hub's one subscription in line with the board's union."""
        sub = self._sub
        if sub is None:
            return
        want = {s for s in self.board.union if s in self.universe}
        sub.remove(sorted(sub.symbols - want))
        sub.add(sorted(want - sub.symbols))

    def _publish_tick(self, tick: Tick) -> None:
        self._outbox.put_tick(tick.symbol, encode_tick(tick))

    def _book(self, book: OrderBook) -> None:
        self._outbox.put_book(book.symbol, encode_book(book))

    @property
    def upstream_symbols(self) -> frozenset[str]:
        hub = self.hub
        return frozenset(hub._placed) if hub is not None else frozenset()

    async def stop(self) -> None:
        await stop_tasks(self._tasks)
        self._tasks = []
        owned = self.hub is not None
        await self._end("stopping")
        if owned:
            with contextlib.suppress(Exception):
                await self.leases.release(self.lease)

    def health(self) -> dict[str, Any]:
        return {
            "lease": self.lease,
            "owner": self.owning,
            "takeovers": self.takeovers,
            "published_ticks": self._outbox.published,
            "messages": self._outbox.messages,
            "dropped": self._outbox.dropped,
            "upstream": self.hub.health() if self.hub is not None else None,
        }


class ClusterMarket:
    """Puts a hub on cluster market data: the seam is the hub's ``feed``, replaced by a
    ``ClusterFeed``; the feed the hub had becomes the upstream a ``FeedOwner`` runs when this
    server holds the feed lease.

    Order: build and ``start()`` before ``hub.start()`` (the hub's first session opens on
    NATS); ``stop()`` - before or after ``hub.stop()`` - closes the upstream, gives the lease
    back and withdraws this server's demand, and must come before the lease keeper stops.
    """

    def __init__(
        self,
        bus: ClusterBus,
        leases: Leases,
        hub: Hub,
        clock: Clock,
        *,
        source: str,
        period: float = DEMAND_PERIOD,
        settle: float = 0.2,
        check_every: float = 0.5,
        is_trading: Callable[[], bool] | None = None,
    ) -> None:
        self.upstream = hub.feed
        self.feed = ClusterFeed(bus, self.upstream.name, period=period, settle=settle)
        hub.feed = self.feed
        self.board = DemandBoard(bus, clock, expire=period * EXPIRE_PERIODS)
        self.owner = FeedOwner(
            bus,
            leases,
            self.upstream,
            self.board,
            hub.universe,
            clock,
            source=source,
            check_every=check_every,
            stale_after=hub.stale_after,
            is_trading=is_trading,
        )

    async def start(self) -> None:
        await self.board.start()
        await self.feed.start()
        await self.owner.start()

    async def stop(self) -> None:
        await self.owner.stop()
        await self.feed.stop()
        await self.board.stop()

    def health(self) -> dict[str, Any]:
        return {
            "demand": len(self.feed.demand),
            "cluster_demand": len(self.board.union),
            "servers_wanting": len(self.board.instances),
            **self.owner.health(),
        }
