"""Live cluster members and rendezvous hashing: which server *should* own a lease.

Each server keeps the key ``<instance id>`` alive in the bucket ``<prefix>_members`` (TTL =
half the lease TTL, rewritten every ttl/8), so the key set is the set of live servers. A dead
server leaves the member list about ``ttl/2`` after its death - before its leases expire - so
the new owners of its users are known, and trying, by the time the leases free up. Registration is
``kv.create``: a second live server with the same instance id is refused at start-up (two
processes sharing an id would both believe they hold each other's leases). A member is
registered ``joining`` when the server starts and counts in ``members`` only once it says
``ready`` (``ready()``, when it can take users): a server still migrating or loading must not
have users handed to it.

``owner_of(name)`` is rendezvous (highest-random-weight) hashing over the live members: every
server computes the same answer from the same member list, and when a member joins or leaves
only the names whose top choice changed move (about 1/n of them), so rebalancing is bounded.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from hoga.cluster.bus import ClusterBus, cancel

if TYPE_CHECKING:
    from nats.js.kv import KeyValue

log = logging.getLogger(__name__)

BUCKET = "members"


class DuplicateInstance(RuntimeError):
    """Another live server already uses this instance id."""


def weight(member: str, name: str) -> int:
    digest = hashlib.blake2b(f"{member}\0{name}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big")


def rendezvous(members: list[str] | tuple[str, ...], name: str) -> str | None:
    """The member with the highest weight for ``name`` (None if there are no members)."""
    return max(members, key=lambda m: (weight(m, name), m), default=None)


class Members:
    """This server's membership and the live member list (see the module docstring).

    ``members`` (the ready ones) is refreshed every ttl/4; ``stable_since(member)`` says how long a member has
    been seen continuously, which the ownership rounds use so that a server that has just
    joined (or flickers) does not pull users to itself before it is settled.
    """

    def __init__(
        self, bus: ClusterBus, ttl: float, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.bus = bus
        self.ttl = ttl
        self.me = bus.instance_id
        self._clock = clock
        self._kv: KeyValue | None = None
        self._revision = 0
        self._seen: dict[str, float] = {}
        self._task: asyncio.Task[None] | None = None
        self._state = b"joining"

    @property
    def members(self) -> list[str]:
        return sorted(self._seen)

    def stable_since(self, member: str) -> float | None:
        return self._seen.get(member)

    def owner_of(self, name: str) -> str | None:
        return rendezvous(self.members, name)

    async def start(self) -> None:
        from nats.js.errors import KeyWrongLastSequenceError

        self._kv = await self.bus.key_value(BUCKET, ttl=self.ttl / 2)
        try:
            self._revision = await self._kv.create(self.me, self._state)
        except KeyWrongLastSequenceError:
            raise DuplicateInstance(
                f"another live server uses instance id {self.me!r} (HOGA_CLUSTER_INSTANCE_ID)"
            ) from None
        await self.refresh()
        self._task = asyncio.get_running_loop().create_task(self._run(), name="cluster-members")

    async def ready(self) -> None:
        """From now on other servers count this one (and may hand it users)."""
        self._state = b"ready"
        assert self._kv is not None
        with contextlib.suppress(Exception):
            self._revision = await asyncio.wait_for(
                self._kv.put(self.me, self._state), self.ttl / 4
            )
        await self.refresh()

    async def stop(self) -> None:
        task, self._task = self._task, None
        await cancel(task)
        if self._kv is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._kv.delete(self.me), 1.0)

    async def refresh(self) -> None:
        """Re-read the live member list (this server is always in it)."""
        assert self._kv is not None
        try:
            keys = set(await asyncio.wait_for(self._kv.keys(), self.ttl / 2))
        except Exception as e:  # nats' NoKeysError when empty, or a timeout
            if type(e).__name__ != "NoKeysError":
                log.debug("cluster members: not refreshed (%s)", type(e).__name__)
                return
            keys = set()
        ready = {m for m in keys if m != self.me and await self._is_ready(m)}
        if self._state == b"ready":
            ready.add(self.me)
        now = self._clock()
        self._seen = {m: self._seen.get(m, now) for m in ready}

    async def _is_ready(self, member: str) -> bool:
        assert self._kv is not None
        try:
            entry = await asyncio.wait_for(self._kv.get(member), self.ttl / 4)
        except Exception:
            return False
        return entry.value == b"ready"

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.ttl / 8)
            assert self._kv is not None
            try:
                self._revision = await asyncio.wait_for(
                    self._kv.put(self.me, self._state), self.ttl / 4
                )
            except Exception as e:
                log.debug("cluster members: heartbeat failed (%s)", type(e).__name__)
            await self.refresh()
