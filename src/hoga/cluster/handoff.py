"""Work handed to a user's owner: "user N has new work in the database, come and get it".

Any server serves the API. A request for a user owned elsewhere is written to the database
exactly as on a single server (persist before send) and, where a single server would put it in
its queue, this server publishes the user's id on ``<prefix>.work.<user_id>`` instead. The
owner answers by loading that user's open work from the database (``pickup``) - the message
carries no order, so a lost or duplicated message costs nothing but latency: the database is
the record, and the owner's queue resync (every few seconds) and the next owner's recovery
pick up whatever a lost message left waiting.

Pickups are coalesced per user: a burst of N orders for one user costs at most two database
reads on the owner, not N.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable

from hoga.cluster.bus import ClusterBus
from hoga.tasks import cancel_and_wait

log = logging.getLogger(__name__)

Pickup = Callable[[int], Awaitable[None]]


class Handoff:
    """Publish "user has work" and, for the users this server owns, pick it up.

    Contract: ``notify(user_id)`` never blocks the caller (the publish runs as a task) and
    never raises; ``pickup(user_id)`` runs for a user only while ``owns(user_id)`` is True,
    at most once at a time per user, and once more if work arrived while it ran.
    """

    def __init__(self, bus: ClusterBus, pickup: Pickup, owns: Callable[[int], bool]) -> None:
        self.bus = bus
        self._pickup = pickup
        self._owns = owns
        self._running: set[int] = set()
        self._again: set[int] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self.sent = 0
        self.received = 0

    async def start(self) -> None:
        await self.bus.subscribe(self.bus.subject("work") + ".*", self._on_message)

    async def stop(self) -> None:
        # Waited for, not only cancelled: a publish still running after stop() would use a
        # bus that is closing.
        tasks = list(self._tasks)
        self._tasks.clear()
        await cancel_and_wait(tasks, swallow_errors=True)

    def notify(self, user_id: int) -> None:
        self._spawn(self._publish(user_id))

    async def _publish(self, user_id: int) -> None:
        try:
            data = json.dumps({"user_id": user_id, "from": self.bus.instance_id}).encode()
            await self.bus.publish(self.bus.subject("work", str(user_id)), data)
            self.sent += 1
        except Exception as e:  # the work waits in the database for the owner's resync
            log.warning(
                "cluster: hand-off for user %s not published (%s)", user_id, type(e).__name__
            )

    async def _on_message(self, subject: str, data: bytes) -> None:
        user_id = int(subject.rsplit(".", 1)[1])
        if not self._owns(user_id):
            return
        self.received += 1
        if user_id in self._running:
            self._again.add(user_id)
            return
        self._running.add(user_id)  # before the task starts: the next message must see it
        self._spawn(self._run(user_id))

    async def _run(self, user_id: int) -> None:
        try:
            while True:
                self._again.discard(user_id)
                if self._owns(user_id):
                    try:
                        await self._pickup(user_id)
                    except Exception:
                        log.exception("cluster: picking up user %s's work failed", user_id)
                if user_id not in self._again:
                    return
        finally:
            self._running.discard(user_id)

    def _spawn(self, coro: Awaitable[None]) -> None:
        task: asyncio.Task[None] = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
