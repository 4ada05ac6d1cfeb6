"""Which users' trading work this server does: take, keep, hand back and adopt user leases.

Every ``interval`` seconds a round compares three things: the users with accounts (from the
database), the live members (``Members``) and the leases present in the bucket. For each user:

* the *target* server is ``rendezvous(members, group)`` where ``group`` is the user's smallest
  broker-key lease name (users sharing an app key land on one server, which then holds that
  key's sessions and request window) or ``user-<id>`` for a user with no real-broker key;
* the target takes the user's leases (broker keys first, then ``user-<id>``) and starts the
  work (``UserWork.start_user``: the same recovery a restart runs, for that user only);
* any server *adopts* a user whose lease has been absent for a whole ``ttl`` even if it is
  not the target (a fallback: a dead target leaves the member list within ``ttl`` and the new
  target takes the user at its next round, well before that);
* a holder that is no longer the target hands the user back - at most ``max_moves`` users per
  round, only after holding it ``min_hold`` seconds and only to a target seen alive for
  ``settle`` seconds - so a server joining or flickering moves users gradually, never back
  and forth.

A lost or fenced lease (``LeaseKeeper.on_lost``) stops the user's work at once. The send path
asks ``may_send(user_id)`` immediately before claiming an order: True only while the lease is
held (not fenced) *and* the user's work was started here.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Protocol

from hoga.cluster.bus import cancel
from hoga.cluster.leases import LeaseKeeper
from hoga.cluster.members import Members, rendezvous

log = logging.getLogger(__name__)


def user_lease(user_id: int) -> str:
    return f"user-{user_id}"


class UserWork(Protocol):
    """What a server does for the users it owns (``cluster/node.py`` implements it)."""

    async def users(self) -> dict[int, list[str]]:
        """Every user with accounts -> the broker-key lease names of their real accounts."""

    async def start_user(self, user_id: int) -> None:
        """Begin the user's trading work after a restart-style recovery from the database."""

    async def stop_user(self, user_id: int) -> None:
        """Stop the user's trading work now (sending first)."""


class Ownership:
    """The ownership rounds (see the module docstring)."""

    def __init__(
        self,
        leases: LeaseKeeper,
        members: Members,
        work: UserWork,
        *,
        interval: float | None = None,
        max_moves: int = 5,
        min_hold: float | None = None,
        settle: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        ttl = leases.ttl
        self.leases = leases
        self.members = members
        self.work = work
        self.interval = interval if interval is not None else ttl / 6
        self.max_moves = max_moves
        self.min_hold = min_hold if min_hold is not None else 2 * ttl
        self.settle = settle if settle is not None else ttl / 2
        self._clock = clock
        self.me = members.me
        self.started: dict[int, float] = {}  # user id -> when its work started here
        self._keys: dict[int, list[str]] = {}
        self._absent: dict[str, float] = {}  # lease name -> since when seen absent
        self._lock = asyncio.Lock()
        self._taking: set[int] = set()
        self._takes: set[asyncio.Task[None]] = set()
        self._task: asyncio.Task[None] | None = None
        self.gained = 0
        self.lost = 0
        leases.on_lost(self._on_lost)

    # --- the send path's question
    def may_send(self, user_id: int) -> bool:
        return user_id in self.started and self.leases.holds(user_lease(user_id))

    def owns(self, user_id: int) -> bool:
        return user_id in self.started

    # --- life
    async def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="cluster-ownership")

    async def stop(self) -> None:
        task, self._task = self._task, None
        await cancel(task)
        for take in list(self._takes):
            await cancel(take)
        async with self._lock:
            for user_id in list(self.started):
                await self._drop(user_id, release=True)

    async def _run(self) -> None:
        while True:
            try:
                await self.round()
            except Exception:
                log.exception("cluster ownership round failed")
            await asyncio.sleep(self.interval)

    # --- one round
    async def round(self) -> None:
        users = await self.work.users()
        self._keys = users
        present = await self._present()
        members = self.members.members
        moves = 0
        for user_id, keys in sorted(users.items()):
            name = user_lease(user_id)
            target = rendezvous(members, min(keys) if keys else name)
            if user_id in self.started:
                if (
                    target != self.me
                    and moves < self.max_moves
                    and self._may_hand_back(user_id, target)
                ):
                    moves += 1
                    log.info("cluster: handing user %s back to %s", user_id, target)
                    async with self._lock:
                        await self._drop(user_id, release=True)
                continue
            since = self._absent.get(name)
            orphan = since is not None and self._clock() - since >= self.leases.ttl
            if target == self.me or orphan:
                self._spawn_take(user_id, keys)
        if present is not None:
            now = self._clock()
            self._absent = {
                n: self._absent.get(n, now)
                for n in (user_lease(u) for u in users)
                if n not in present
            }
        for user_id in [u for u in self.started if u not in users]:
            async with self._lock:  # the user has no accounts any more
                await self._drop(user_id, release=True)

    def _spawn_take(self, user_id: int, keys: list[str]) -> None:
        """Take a user in a task of its own: a dead server's users start side by side, and
        a slow recovery does not hold up the next round."""
        if user_id in self._taking:
            return
        self._taking.add(user_id)
        task = asyncio.get_running_loop().create_task(self._take(user_id, keys))
        task.add_done_callback(lambda _t: self._taking.discard(user_id))
        self._takes.add(task)
        task.add_done_callback(self._takes.discard)

    def _may_hand_back(self, user_id: int, target: str | None) -> bool:
        now = self._clock()
        seen = self.members.stable_since(target) if target else None
        return (
            now - self.started[user_id] >= self.min_hold
            and seen is not None
            and now - seen >= self.settle
        )

    async def _present(self) -> set[str] | None:
        """Lease names in the bucket now (None if NATS did not answer)."""
        try:
            return set(await asyncio.wait_for(self.leases.kv.keys(), self.leases.ttl / 2))
        except Exception as e:
            if type(e).__name__ == "NoKeysError":
                return set()
            return None

    async def _take(self, user_id: int, keys: list[str]) -> None:
        async with self._lock:
            if user_id in self.started:
                return
            got: list[str] = []
            for name in [*sorted(keys), user_lease(user_id)]:
                if self.leases.holds(name) or await self.leases.try_acquire(name):
                    got.append(name)
                    continue
                # Someone else has it: give back what this attempt took and try next round.
                for held in got:
                    if not self._key_in_use(held, user_id):
                        await self.leases.release(held)
                return
            self.started[user_id] = self._clock()
        try:
            await self.work.start_user(user_id)
        except Exception:
            log.exception("cluster: starting user %s failed; handing it back", user_id)
            async with self._lock:
                await self._drop(user_id, release=True)
            return
        self.gained += 1
        log.info("cluster: now owning user %s", user_id)

    def _key_in_use(self, name: str, except_user: int) -> bool:
        return any(name in self._keys.get(u, ()) for u in self.started if u != except_user)

    async def _drop(self, user_id: int, *, release: bool) -> None:
        """Stop the user's work (sending stops first: ``may_send`` turns False at once), then
        give up its leases. Called with ``_lock`` held."""
        if self.started.pop(user_id, None) is None:
            return
        self.lost += 1
        try:
            await self.work.stop_user(user_id)
        except Exception:
            log.exception("cluster: stopping user %s failed", user_id)
        if release:
            await self.leases.release(user_lease(user_id))
            for name in self._keys.get(user_id, ()):
                if not self._key_in_use(name, user_id):
                    await self.leases.release(name)

    async def _on_lost(self, name: str) -> None:
        """A lease was lost or fenced: stop every user it covered, now."""
        if name.startswith("user-"):
            affected = [int(name.removeprefix("user-"))]
        else:
            affected = [u for u in self.started if name in self._keys.get(u, ())]
        async with self._lock:
            for user_id in affected:
                if user_id in self.started:
                    log.warning("cluster: lease %s lost; stopping user %s", name, user_id)
                    await self._drop(user_id, release=True)
