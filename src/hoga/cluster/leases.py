"""Named leases in a JetStream key-value bucket: who owns a user's trading work, a feed, a key.

A lease is the key ``<name>`` in the bucket ``<prefix>_leases`` whose value is the holder's
instance id. The bucket's TTL is the lease TTL, so a key nobody rewrites vanishes ``ttl``
seconds after its last write - a dead server's leases free themselves. Taking a lease is
``kv.create`` (succeeds only if the key is absent); keeping it is ``kv.update`` with the
revision we last wrote (compare-and-set: if anything else wrote the key, the update fails and
the lease is lost).

Self-fencing: a holder that could not renew for 2/3 of the TTL stops treating the lease as
held (``holds`` turns False and ``on_lost`` fires) while the key still has at least 1/3 of the
TTL to live in the bucket. The renewal time recorded is the moment the update was *sent*, which
is no later than the time NATS stamped on it, so the fence always falls before the expiry
another server waits for. A server cut off from NATS therefore stops sending before anyone
else can take its users over - the property docs/scaling.md explains and
tests/integration/cluster/test_leases.py checks.

Why not PostgreSQL advisory locks: they live as long as the database session, so a server that
has lost NATS (and with it every other server's view of it) but still reaches PostgreSQL would
keep its locks and its users forever; the KV lease dies with the connection that feeds it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeVar

from hoga.cluster.bus import ClusterBus, cancel

if TYPE_CHECKING:
    from nats.js.kv import KeyValue

log = logging.getLogger(__name__)

LostCallback = Callable[[str], Awaitable[None]]
T = TypeVar("T")

BUCKET = "leases"
# A lease renewal must answer well within the fence margin (1/3 ttl): a slower answer is
# treated as a failure, and the next attempt follows.
RENEW_TIMEOUT_SHARE = 1 / 6


@dataclass(slots=True)
class _Held:
    revision: int
    renewed_at: float  # monotonic time the last successful write was sent


class LeaseKeeper:
    """Takes, renews, releases and self-fences named leases (see the module docstring).

    Contract:
    - ``try_acquire(name)`` is True iff the key was absent (or already ours) and we wrote it;
      the lease is then held until released, lost to a failed compare-and-set, or fenced.
    - ``holds(name)`` is False once the last successful renewal is older than 2/3 ttl; callers
      check it immediately before each broker call.
    - ``on_lost`` callbacks run once per loss (failed CAS or fence), after the lease has left
      ``held()``; they should stop the work at once (stop sending first).
    - ``stop`` deletes the keys still held (compare-and-set, so never someone else's).
    """

    def __init__(
        self,
        bus: ClusterBus,
        ttl: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        renew_every: float | None = None,
    ) -> None:
        if ttl <= 0:
            raise ValueError("lease ttl must be positive")
        self.bus = bus
        self.ttl = ttl
        self.fence_after = ttl * 2 / 3
        self.renew_every = renew_every if renew_every is not None else ttl / 4
        self._clock = clock
        self._kv: KeyValue | None = None
        self._held: dict[str, _Held] = {}
        self._lost: list[LostCallback] = []
        self._task: asyncio.Task[None] | None = None
        self._value = bus.instance_id.encode()

    # --- life
    async def start(self) -> None:
        self._kv = await self.bus.key_value(BUCKET, ttl=self.ttl)
        self._task = asyncio.get_running_loop().create_task(self._run(), name="lease-keeper")

    async def stop(self) -> None:
        task, self._task = self._task, None
        await cancel(task)
        for name in list(self._held):
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.release(name), self.ttl * RENEW_TIMEOUT_SHARE)
        self._held.clear()

    def on_lost(self, callback: LostCallback) -> None:
        self._lost.append(callback)

    # --- leases
    @property
    def kv(self) -> KeyValue:
        if self._kv is None:
            raise RuntimeError("lease keeper not started")
        return self._kv

    async def try_acquire(self, name: str) -> bool:
        """Take ``name`` if nobody holds it; True if we hold it now."""
        from nats.js.errors import KeyWrongLastSequenceError

        if self.holds(name):
            return True
        sent = self._clock()
        try:
            revision = await self._with_timeout(self.kv.create(name, self._value))
        except KeyWrongLastSequenceError:
            # Someone's key is there - or our own, left by a fence: that one we may take back
            # by compare-and-set on its revision (nobody else can have written it meanwhile).
            retaken = await self._retake(name)
            if retaken is None:
                return False
            revision = retaken
        except Exception as e:
            log.debug("lease %s: not acquired (%s)", name, type(e).__name__)
            return False
        self._held[name] = _Held(revision, sent)
        return True

    async def _retake(self, name: str) -> int | None:
        try:
            entry = await self._with_timeout(self.kv.get(name))
            if entry.value != self._value or entry.revision is None:
                return None
            return await self._with_timeout(self.kv.update(name, self._value, last=entry.revision))
        except Exception:
            return None

    async def release(self, name: str) -> None:
        """Give ``name`` up now (its key is deleted if it is still ours)."""
        held = self._held.pop(name, None)
        if held is None:
            return
        try:
            await self._with_timeout(self.kv.delete(name, last=held.revision))
        except Exception as e:
            # Not deleted: it expires by itself within ttl; nobody else can renew it.
            log.debug("lease %s: release left to expiry (%s)", name, type(e).__name__)

    def holds(self, name: str) -> bool:
        held = self._held.get(name)
        return held is not None and self._clock() - held.renewed_at < self.fence_after

    def held(self) -> set[str]:
        now = self._clock()
        return {n for n, h in self._held.items() if now - h.renewed_at < self.fence_after}

    # --- renewal and fencing
    async def _run(self) -> None:
        # Fencing is checked more often than renewal so that on_lost fires close to 2/3 ttl.
        tick = min(self.renew_every, self.ttl / 12)
        next_renew = self._clock()
        while True:
            if self._clock() >= next_renew:
                next_renew = self._clock() + self.renew_every
                await self._renew_all()
            await self._fence()
            await asyncio.sleep(tick)

    async def _renew_all(self) -> None:
        names = list(self._held)
        if names:
            await asyncio.gather(*(self._renew(n) for n in names))

    async def _renew(self, name: str) -> None:
        from nats.js.errors import KeyWrongLastSequenceError

        held = self._held.get(name)
        if held is None:
            return
        sent = self._clock()
        try:
            revision = await self._with_timeout(
                self.kv.update(name, self._value, last=held.revision)
            )
        except KeyWrongLastSequenceError:
            # Someone else wrote the key (it expired and was taken): ours no longer.
            if self._held.get(name) is held:
                await self._lose(name, "taken over")
            return
        except Exception as e:
            log.debug("lease %s: renewal failed (%s)", name, type(e).__name__)
            return  # the fence decides if this goes on too long
        if self._held.get(name) is held:
            held.revision = revision
            held.renewed_at = sent

    async def _fence(self) -> None:
        now = self._clock()
        for name, held in list(self._held.items()):
            if now - held.renewed_at >= self.fence_after:
                await self._lose(name, "not renewed in time (self-fenced)")

    async def _lose(self, name: str, why: str) -> None:
        self._held.pop(name, None)
        log.warning("lease %s lost: %s", name, why)
        for cb in list(self._lost):
            try:
                await cb(name)
            except Exception:  # one listener's bug must not keep the others from stopping
                log.exception("lease %s: loss listener failed", name)

    async def _with_timeout(self, aw: Awaitable[T]) -> T:
        return await asyncio.wait_for(aw, self.ttl * RENEW_TIMEOUT_SHARE)
