"""Caps shared by the servers of a cluster without a network round trip per use.

A ``SharedQuota`` is one cap (``cap`` uses in any ``window`` seconds: the global order cap,
one user's API budget) split among the servers that use it. Each server holds some of the
cap's slots in a JetStream key-value record (``quotamath.py`` has the arithmetic) and checks
its uses against what it holds in memory, as a ``SlidingWindow`` would - the hot path does no
I/O. The record changes only when a server runs short (it takes a ``chunk`` more out of the
room the others leave, by compare-and-set), when another server is short (holders give back
what they do not use and come down to a fair share as their window empties), when a server
goes idle (it gives everything back), and on renewal.

Safety: the sum of live holdings never exceeds the cap (``quotamath``), and each server uses
at most what it holds. A server that cannot renew its holding (NATS lost) stops using it
after ``fence`` seconds - two thirds of ``ttl``, before its holding expires in the record at
``ttl`` and others may take it - so a cut-off server and its successors never use the same
slots. The only overshoot left comes from wall clocks that differ by more than ``ttl/3``
between servers (the expiry is written in wall time) - see docs/scaling.md.

Liveness: a server short of slots retries at most every ``retry`` seconds and at once when
another server reports slots freed; ``on_grant`` callbacks (the dispatcher's ``wake_all``)
run when a server's holding grows.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
from collections import deque
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any

from hoga.cluster import quotamath as qm
from hoga.domain.clock import Clock
from hoga.tasks import cancel_and_wait

if TYPE_CHECKING:
    from nats.js.kv import KeyValue

    from hoga.cluster.bus import ClusterBus

log = logging.getLogger(__name__)


class QuotaLedger:
    """The caps this server shares with its peers: one KV bucket, two subjects, one loop.

    ``quota(name, cap, window)`` returns the ``SharedQuota`` for a name (made on first use).
    ``start`` opens the bucket and subscribes; ``stop`` gives back every holding (best effort:
    an unreachable NATS lets them expire after ``ttl``)."""

    def __init__(
        self,
        bus: ClusterBus,
        clock: Clock,
        *,
        ttl: float = 9.0,
        tick: float = 0.1,
        retry: float = 0.05,
        bucket: str = "quota",
    ) -> None:
        self.bus = bus
        self.clock = clock
        self.me = bus.instance_id
        self.ttl = ttl
        self.fence = ttl * 2 / 3
        self.tick = tick
        self.retry = retry
        self._bucket = bucket
        self._kv: KeyValue | None = None
        self._quotas: dict[str, SharedQuota] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._loop_task: asyncio.Task[None] | None = None
        self.on_grant: list[Callable[[], None]] = []
        self.writes = 0  # record writes, for the benchmark and the status page

    # --- life
    async def start(self) -> None:
        # Entries carry their own expiry; the bucket's TTL only clears names nobody uses.
        self._kv = await self.bus.key_value(self._bucket, ttl=86_400.0)
        await self.bus.subscribe(self.bus.subject("quota", "want"), self._on_want)
        await self.bus.subscribe(self.bus.subject("quota", "freed"), self._on_freed)
        self._loop_task = asyncio.get_running_loop().create_task(self._run(), name="quota")

    async def stop(self) -> None:
        if self._loop_task is not None:
            await cancel_and_wait([self._loop_task])
            self._loop_task = None
        await cancel_and_wait(list(self._tasks), swallow_errors=True)
        for q in list(self._quotas.values()):
            q.allowed = 0
            with contextlib.suppress(Exception):
                await asyncio.wait_for(q.release(force=True), 1.0)

    def quota(self, name: str, cap: int, window: float) -> SharedQuota:
        q = self._quotas.get(name)
        if q is None:
            q = self._quotas[name] = SharedQuota(self, name, cap, window)
        elif q.cap != cap:
            q.cap = cap  # a lower cap: the holders come down as they release
            q.chunk = max(1, math.ceil(cap / 4))
            q.allowed = min(q.allowed, cap)
        return q

    @property
    def kv(self) -> KeyValue:
        if self._kv is None:
            raise RuntimeError("quota ledger not started")
        return self._kv

    # --- record I/O
    async def read(self, name: str) -> tuple[qm.Record, int]:
        from nats.js.errors import KeyNotFoundError

        try:
            entry = await self.kv.get(name)
        except KeyNotFoundError:
            return {}, 0
        return qm.decode(entry.value), entry.revision or 0

    async def write(self, name: str, record: qm.Record, revision: int) -> bool:
        """Compare-and-set: False when another server wrote since ``revision``."""
        from nats.js.errors import KeyWrongLastSequenceError

        try:
            await self.kv.update(name, qm.encode(record), last=revision)
        except KeyWrongLastSequenceError:
            return False
        self.writes += 1
        return True

    async def tell(self, what: str, name: str) -> None:
        with contextlib.suppress(Exception):  # a lost nudge costs one retry interval
            await self.bus.publish(
                self.bus.subject("quota", what), json.dumps({"q": name, "i": self.me}).encode()
            )

    def spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def granted(self) -> None:
        for cb in list(self.on_grant):
            cb()

    # --- nudges from peers
    async def _on_want(self, _subject: str, data: bytes) -> None:
        msg = json.loads(data)
        q = self._quotas.get(str(msg.get("q")))
        if q is not None and msg.get("i") != self.me:
            await q.yield_to(str(msg.get("i")))

    async def _on_freed(self, _subject: str, data: bytes) -> None:
        msg = json.loads(data)
        q = self._quotas.get(str(msg.get("q")))
        if q is not None and msg.get("i") != self.me and q.hungry(self.clock.monotonic()):
            await q.grow()

    # --- upkeep: release what is not needed, renew what is held
    async def _run(self) -> None:
        last_renew = -math.inf
        while True:
            await asyncio.sleep(self.tick)
            renew = self.clock.monotonic() - last_renew >= self.ttl / 4
            for q in list(self._quotas.values()):
                try:
                    await q.release()
                    if renew and q.held > 0:
                        await q.renew()
                except Exception as e:  # NATS away: the fence stops use, we keep trying
                    log.debug("quota %s upkeep: %s", q.name, type(e).__name__)
            if renew:
                last_renew = self.clock.monotonic()


class SharedQuota:
    """This server's part of one shared cap; a ``RateLimit`` for the dispatcher and an
    ``acquire`` for request paths (see the module docstring for the contract).

    ``held`` is what the record says this server holds; ``allowed`` (<= ``held``) is what it
    lets itself use - lowered at once when another server wants slots, written to the record
    as the window empties."""

    def __init__(self, ledger: QuotaLedger, name: str, cap: int, window: float) -> None:
        self._l = ledger
        self.name = name
        self.cap = cap
        self.window = window
        self.chunk = max(1, math.ceil(cap / 4))
        self.held = 0
        self.allowed = 0
        self._short_at = -math.inf
        self._events: deque[float] = deque()
        self._confirmed = -math.inf  # monotonic time our holding was last written or renewed
        self._contended_until = -math.inf
        self._holders: set[str] = set()
        self._denied_at = -math.inf  # the last time a grow found no room
        self._growing = False
        self._last_use = -math.inf
        self._lock = asyncio.Lock()

    # --- the RateLimit face (no I/O)
    @property
    def limit(self) -> int:
        return self._usable(self._l.clock.monotonic())

    def _usable(self, now: float) -> int:
        if now - self._confirmed > self._l.fence:
            return 0  # not renewed for too long: others may take our slots soon
        return self.allowed

    def _trim(self, now: float) -> None:
        ev, window = self._events, self.window
        while ev and ev[0] + window <= now:
            ev.popleft()

    def in_window(self, now: float) -> int:
        self._trim(now)
        return len(self._events)

    def available_at(self, now: float) -> float:
        self._trim(now)
        usable = self._usable(now)
        n = len(self._events)
        if n < usable:
            return now
        self._short(now)
        later = now + self._l.retry
        if usable > 0:
            # The oldest use that has to leave before one more fits under ``usable``.
            later = min(later, self._events[n - usable] + self.window)
        return later

    def record(self, now: float) -> None:
        self._events.append(now)
        self._last_use = now

    def try_acquire(self, now: float) -> bool:
        if self.available_at(now) <= now:
            self.record(now)
            return True
        return False

    async def acquire(self, now: float) -> float:
        """Take one use now: 0.0 when granted, else the seconds to wait before trying again
        (for request paths, which can afford one round trip when this server runs short)."""
        if self._fits(now):
            self.record(now)
            return 0.0
        self._short_at = now
        if self._lock.locked():
            async with self._lock:  # a change is under way: its outcome is ours too
                pass
        elif now - self._denied_at >= self._l.retry:  # a refused flood costs no more than this
            await self.grow()  # raises when NATS is away: the caller decides what then
        now = max(now, self._l.clock.monotonic())
        if self._fits(now):
            self.record(now)
            return 0.0
        usable = self._usable(now)
        if usable > 0:
            return max(self._l.retry, self._events[len(self._events) - usable] + self.window - now)
        return self.window / max(1, self.cap)

    def _fits(self, now: float) -> bool:
        self._trim(now)
        return len(self._events) < self._usable(now)

    # --- changes of holding
    def hungry(self, now: float) -> bool:
        """Whether this server ran short within the last window."""
        return now - self._short_at < self.window

    def _short(self, now: float) -> None:
        self._short_at = now
        if not self._growing and now - self._denied_at >= self._l.retry:
            self._growing = True
            self._l.spawn(self._grow_in_background())

    async def _grow_in_background(self) -> None:
        try:
            await self.grow()
        except Exception as e:  # NATS away: we keep what we hold until the fence
            log.debug("quota %s: could not grow: %s", self.name, type(e).__name__)
            self._denied_at = self._l.clock.monotonic()
        finally:
            self._growing = False

    async def grow(self) -> None:
        """Take more of the cap if there is room; otherwise tell the holders we want some."""

        def more(record: qm.Record, wall: float) -> int | None:
            new = qm.grant(record, self._l.me, self.cap, wall, chunk=self.chunk, ceiling=self.cap)
            return new if new > self.held else None

        async with self._lock:
            got = await self._rewrite(more)
        if got is None:
            self._denied_at = self._l.clock.monotonic()
            await self._l.tell("want", self.name)
            return
        self.held = self.allowed = got[0]
        self._confirmed = got[1]
        self._l.granted()

    async def yield_to(self, other: str) -> None:
        """Another server is short: allow ourselves no more than ``keep_when_asked`` from now
        on (for a window) and give back what that frees."""
        now = self._l.clock.monotonic()
        self._contended_until = now + self.window
        n = len(self._holders | {self._l.me, other})
        fair = qm.fair_share(self.cap, n)
        step = math.ceil(self.cap / (4 * n))
        self.allowed = qm.keep_when_asked(self.allowed, self.in_window(now), fair, step)
        await self.release()

    async def release(self, *, force: bool = False) -> None:
        """Write our holding down to what we allow ourselves (and have used this window);
        everything once idle for two windows. Lowered in memory first, written after."""
        if self.held == 0 or self._lock.locked():
            return
        async with self._lock:
            # Decided under the lock: a grow queued ahead of us may change what we hold and
            # allow, and a target worked out before it would undercut what it let us use.
            now = self._l.clock.monotonic()
            if now >= self._contended_until and not force:
                self.allowed = self.held  # contention over: use all we hold again
            used = self.in_window(now)
            if used == 0 and (force or now - self._last_use > 2 * self.window):
                self.allowed = 0
            target = qm.release_to(self.held, self.allowed, used)
            if target >= self.held:
                return
            # Promise first: a write whose answer is lost (a timeout under load) may still have
            # landed, and others may then take the slots - so from here we hold ``target``
            # whatever the write's fate (the record holding more of ours only costs room).
            self.held = target
            got = await self._rewrite(lambda record, _w: target if self._l.me in record else None)
        if got is not None:
            self._confirmed = got[1]
            await self._l.tell("freed", self.name)

    async def renew(self) -> None:
        """Push our holding's expiry on (``_rewrite`` drops one the record lost)."""
        async with self._lock:
            got = await self._rewrite(lambda _r, _w: self.held if self.held > 0 else None)
        if got is not None:
            self._confirmed = got[1]

    async def _rewrite(
        self, decide: Callable[[qm.Record, float], int | None]
    ) -> tuple[int, float] | None:
        """Read the record, let ``decide(live record, wall time)`` name our new holding (None:
        leave it) and compare-and-set it, again on a fresh read if another server wrote
        first. Returns the holding written and the monotonic time of the read it was based
        on (the conservative start of its validity), or None."""
        for _ in range(4):
            read_at = self._l.clock.monotonic()
            wall = self._l.clock.time()
            stored, rev = await self._l.read(self.name)
            record = qm.live(stored, wall)
            self._saw(record)
            new = decide(record, wall)
            if new is None:
                return None
            if new > 0:
                record[self._l.me] = qm.Holding(new, wall + self._l.ttl)
            else:
                record.pop(self._l.me, None)
            if await self._l.write(self.name, record, rev):
                self._saw(record)
                return new, read_at
        return None

    def _saw(self, record: qm.Record) -> None:
        """Note who holds slots; a holding of ours the (live) record no longer has expired
        while we were cut off and may be someone else's now, so it is gone here too."""
        self._holders = set(record)
        if self._l.me not in record and self.held > 0:
            log.warning("quota %s: our holding expired; starting again", self.name)
            self.held = self.allowed = 0
