"""User events across servers: a user's WebSockets see their orders and fills wherever they are.

``ClusterEventBus`` is the single server's ``EventBus`` plus NATS: every event published here is
delivered locally exactly as before *and* published on ``<prefix>.events.<user_id>``; events
arriving from other servers are delivered to this server's subscribers of that user (and the
all-users subscribers), but not to the hooks - hooks (strategies' fills, notifications) run
where the event happened, so a remote copy would double them. A server ignores its own
messages (each carries its instance id), so the server that produced an event never delivers
it twice. Until ``attach`` it is exactly an ``EventBus``.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

from hoga.cluster.bus import ClusterBus
from hoga.execution.events import Event, EventBus

log = logging.getLogger(__name__)


class ClusterEventBus(EventBus):
    """See the module docstring."""

    def __init__(self, maxsize: int = 1000) -> None:
        super().__init__(maxsize)
        self._cluster: ClusterBus | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self.remote_in = 0
        self.remote_out = 0

    async def attach(self, bus: ClusterBus) -> None:
        self._cluster = bus
        await bus.subscribe(bus.subject("events") + ".*", self._on_remote)

    def publish(self, user_id: int, event: Event) -> None:
        super().publish(user_id, event)
        bus = self._cluster
        if bus is None or not bus.connected:
            return  # other servers' sockets miss it; the REST API and a reload show the state
        body = {"from": bus.instance_id, "event": event}
        try:
            data = json.dumps(body, default=str, separators=(",", ":")).encode()
        except (TypeError, ValueError):
            log.debug("cluster: event for user %s not serialisable", user_id)
            return
        task = asyncio.ensure_future(self._send(bus, bus.subject("events", str(user_id)), data))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _send(self, bus: ClusterBus, subject: str, data: bytes) -> None:
        try:
            await bus.publish(subject, data)
            self.remote_out += 1
        except Exception as e:
            log.debug("cluster: event not published (%s)", type(e).__name__)

    async def _on_remote(self, subject: str, data: bytes) -> None:
        body: dict[str, Any] = json.loads(data)
        if self._cluster is None or body.get("from") == self._cluster.instance_id:
            return
        user_id = int(subject.rsplit(".", 1)[1])
        event = body["event"]
        self.remote_in += 1
        for sub in self._subs.get(user_id, ()):
            sub.offer(event)
        for sub in self._subs.get(None, ()):
            sub.offer({**event, "user_id": user_id})
