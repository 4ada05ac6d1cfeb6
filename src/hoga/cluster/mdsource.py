"""The hub's market-data source in cluster mode: ticks and books from NATS, demand announced.

``ClusterFeed`` is a ``Feed`` (domain/feed.py), so the hub needs no cluster branch:
the hub packs, reference-counts and caches exactly as with a broker feed, and its consumers
(strategies, WebSockets, bars) cannot tell where a tick came from. Its one session carries any
number of symbols; subscribing to a symbol subscribes this server to ``<prefix>.md.*.<symbol>``
(the tick and the book subjects in one NATS subscription) and changes this server's *demand*:
the set of symbols it wants, which the feed owner serves (cluster/marketdata.py).

Demand travels as a full snapshot on ``<prefix>.md.demand.<instance>``: after every change
(coalesced over ``settle`` seconds, so the hub's close-and-reopen of a silent session does not
make the owner drop and re-add the symbols upstream) and every ``period`` seconds, so that a
feed owner that just took over, or a demand board that missed a message, converges within one
period; a request on ``<prefix>.md.demand-ask`` makes every server send its snapshot at once.
A server that dies stops announcing and the boards forget it after a few periods.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
from typing import TYPE_CHECKING, Any

from hoga.cluster.mdcodec import CodecError, decode_book, decode_ticks
from hoga.domain.feed import BookHandler, CloseHandler, TickHandler

if TYPE_CHECKING:
    from nats.aio.subscription import Subscription

    from hoga.cluster.bus import ClusterBus

log = logging.getLogger(__name__)

#: Seconds between demand snapshots; boards forget a server after ``EXPIRE_PERIODS`` of them.
DEMAND_PERIOD = 2.0
EXPIRE_PERIODS = 3


async def stop_tasks(tasks: list[asyncio.Task[None]]) -> None:
    """Cancel ``tasks`` and wait for them to end, cancelling again while they run on: on 3.11
    ``asyncio.wait_for`` (the lease keeper's calls use it) returns a result that raced a
    cancellation and swallows it, which would leave a plain ``await task`` waiting forever."""
    pending = {t for t in tasks if not t.done()}
    while pending:
        for t in pending:
            t.cancel()
        _, pending = await asyncio.wait(pending, timeout=0.1)


def encode_demand(symbols: set[str]) -> bytes:
    return "\n".join(sorted(symbols)).encode()


def decode_demand(data: bytes) -> set[str]:
    return {s for s in data.decode().split("\n") if s}


class ClusterSession:
    """One session of a ``ClusterFeed``: a NATS subscription per symbol it carries.

    Contract: ``subscribe``/``unsubscribe`` are idempotent per symbol and tell the feed that
    demand changed; decoded ticks go to ``on_tick``, books to ``book_sink`` (the hub sets it,
    ``domain.feed.BookCarrier``); ``close`` ends every subscription and reports a clean close.
    A payload that does not decode is logged and dropped.
    """

    def __init__(
        self, feed: ClusterFeed, sid: str, on_tick: TickHandler, on_close: CloseHandler
    ) -> None:
        self.id = sid
        self._feed = feed
        self.on_tick = on_tick
        self._on_close = on_close
        self._subs: dict[str, Subscription] = {}
        self.book_sink: BookHandler | None = None
        self.closed = False

    @property
    def symbols(self) -> frozenset[str]:
        return frozenset(self._subs)

    async def _deliver(self, msg: Any) -> None:
        # <prefix>.md.<kind>.<symbol>: the symbol and kind are the subject's last two tokens.
        _, kind, symbol = msg.subject.rsplit(".", 2)
        try:
            if kind == "tick":
                for tick in decode_ticks(symbol, msg.data):
                    self.on_tick(tick)
            elif kind == "book" and self.book_sink is not None:
                self.book_sink(decode_book(symbol, msg.data))
        except CodecError as e:
            log.warning("cluster market data: dropped a %s for %s: %s", kind, symbol, e)

    async def subscribe(self, symbols: list[str]) -> None:
        client = self._feed.bus.client
        for s in symbols:
            if s not in self._subs and not self.closed:
                # The bus's own subscribe keeps every subscription for the process's life;
                # these come and go with demand, so they are made on its connection directly.
                # One subscription for both kinds: <prefix>.md.*.<symbol> (tick and book).
                subject = self._feed.bus.subject("md", "tick", s).replace(".tick.", ".*.", 1)
                self._subs[s] = await client.subscribe(subject, cb=self._deliver)
        self._feed.demand_changed()

    async def unsubscribe(self, symbols: list[str]) -> None:
        for s in symbols:
            sub = self._subs.pop(s, None)
            if sub is not None:
                with contextlib.suppress(Exception):  # a closed connection has none left
                    await sub.unsubscribe()
        self._feed.demand_changed()

    async def close(self) -> None:
        if self.closed:
            return
        await self.unsubscribe(list(self._subs))
        self.closed = True
        self._feed._sessions.pop(self.id, None)
        self._on_close(self, None)


class ClusterFeed:
    """A ``Feed`` whose ticks come over NATS from whichever server owns the upstream feed.

    ``name`` is the upstream feed's (the API and alerts report the market, not the transport);
    capacity is unlimited (NATS subscriptions cost no broker registration - the owner packs the
    upstream sessions). ``start`` begins announcing demand; ``stop`` announces an empty set so
    the owner can drop this server's symbols without waiting for expiry (the hub's sessions
    end with the hub, or with ``close``).
    """

    symbols_per_session: int | None = None
    max_sessions: int | None = None

    def __init__(
        self,
        bus: ClusterBus,
        name: str,
        *,
        period: float = DEMAND_PERIOD,
        settle: float = 0.2,
    ) -> None:
        self.bus = bus
        self.name = name
        self.period = period
        self.settle = settle
        self._sessions: dict[str, ClusterSession] = {}
        self._ids = itertools.count(1)
        self._changed = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.announcements = 0

    @property
    def demand(self) -> set[str]:
        """Every symbol this server's hub carries (its open sessions' union)."""
        out: set[str] = set()
        for session in self._sessions.values():
            out |= session.symbols
        return out

    async def open_session(self, on_tick: TickHandler, on_close: CloseHandler) -> ClusterSession:
        sid = f"nats-{next(self._ids)}"
        session = ClusterSession(self, sid, on_tick, on_close)
        self._sessions[sid] = session
        return session

    def demand_changed(self) -> None:
        self._changed.set()

    async def start(self) -> None:
        async def on_ask(_subject: str, _data: bytes) -> None:
            self._changed.set()

        await self.bus.subscribe(self.bus.subject("md", "demand-ask"), on_ask)
        self._task = asyncio.get_running_loop().create_task(self._announce(), name="md-demand")

    async def _announce(self) -> None:
        subject = self.bus.subject("md", "demand", self.bus.instance_id)
        while True:
            # asyncio.timeout, not wait_for: 3.11's wait_for can swallow a cancellation that
            # races the event, and stop() would wait on this task forever.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.period):
                    await self._changed.wait()
                await asyncio.sleep(self.settle)  # let a burst of changes settle into one
            self._changed.clear()
            try:
                await self.bus.publish(subject, encode_demand(self.demand))
                self.announcements += 1
            except Exception as e:  # NATS away: the next period tries again
                log.debug("cluster market data: demand not announced (%s)", type(e).__name__)

    async def stop(self) -> None:
        if self._task is not None:
            await stop_tasks([self._task])
            self._task = None
        # The sessions stay: they are the hub's, closed by its own stop (closing them here
        # would make a running hub reopen them).
        with contextlib.suppress(Exception):
            subject = self.bus.subject("md", "demand", self.bus.instance_id)
            await self.bus.publish(subject, b"")

    async def close(self) -> None:
        """``Feed.close``: the app closes its feed at shutdown; the sessions end here."""
        for session in list(self._sessions.values()):
            await session.close()
