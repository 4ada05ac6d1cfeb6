"""``Handoff.stop()`` returns only once the pick-ups it started have ended: a pick-up still
running after the server stopped would load work on a node that no longer owns anything."""

from __future__ import annotations

import asyncio
from typing import Any, cast

from hoga.cluster.bus import ClusterBus
from hoga.cluster.handoff import Handoff


class _Bus:
    """What ``Handoff`` uses of a ``ClusterBus``, without NATS."""

    instance_id = "n1"

    def subject(self, *parts: str) -> str:
        return ".".join(("hoga", *parts))

    async def subscribe(self, subject: str, handler: Any) -> None:
        self.handler = handler

    async def publish(self, subject: str, data: bytes) -> None:
        return None


async def test_stop_waits_for_a_running_pickup() -> None:
    started, ended = asyncio.Event(), asyncio.Event()

    async def pickup(user_id: int) -> None:
        started.set()
        try:
            await asyncio.Event().wait()  # loading the user's work, until cancelled
        finally:
            ended.set()

    bus = _Bus()
    handoff = Handoff(cast(ClusterBus, bus), pickup, owns=lambda u: True)
    await handoff.start()
    await bus.handler("hoga.work.7", b"{}")
    await asyncio.wait_for(started.wait(), 5)
    await handoff.stop()
    assert ended.is_set()
