"""Real NATS for cluster tests: buses with a prefix of their own, buckets deleted afterwards."""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import AsyncIterator

import pytest

from hoga.cluster.bus import ClusterBus

NATS_URL = os.environ.get("HOGA_TEST_NATS_URL", "nats://127.0.0.1:4222")
IN_CI = os.environ.get("CI", "").lower() == "true"


class Buses:
    """``await buses.new("a")`` - a started ``ClusterBus`` named ``a`` on this test's prefix."""

    def __init__(self) -> None:
        self.prefix = f"t{uuid.uuid4().hex[:10]}"
        self.started: list[ClusterBus] = []

    async def new(self, name: str) -> ClusterBus:
        bus = ClusterBus(NATS_URL, f"{name}-{uuid.uuid4().hex[:6]}", prefix=self.prefix)
        try:
            await bus.start(connect_timeout=2.0)
        except Exception as e:
            msg = f"NATS at {NATS_URL} is not reachable: {type(e).__name__}"
            if IN_CI:
                pytest.fail(msg + " (CI=true: cluster tests must run)")
            pytest.skip(msg)
        self.started.append(bus)
        return bus

    async def close(self) -> None:
        """Close the connections, then delete every bucket of this prefix (servers under
        test may have made some through connections of their own)."""
        import nats

        for bus in self.started:
            with contextlib.suppress(Exception):
                await bus.stop()
        with contextlib.suppress(Exception):
            nc = await nats.connect(NATS_URL, connect_timeout=2, max_reconnect_attempts=0)
            try:
                js = nc.jetstream()
                for info in await js.streams_info():
                    stream = info.config.name or ""
                    if stream.startswith(f"KV_{self.prefix}_"):
                        await js.delete_stream(stream)
            finally:
                await nc.close()


@contextlib.asynccontextmanager
async def buses() -> AsyncIterator[Buses]:
    b = Buses()
    try:
        yield b
    finally:
        await b.close()
