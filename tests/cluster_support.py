"""Shared parts for cluster tests: the NATS server, per-test prefixes, a cuttable TCP proxy.

NATS comes from HOGA_TEST_NATS_URL (default: the local JetStream server). Tests that need it
take the ``nats_url`` fixture (tests/conftest.py): skipped when NATS is unreachable, failed under
CI=true. Every test uses a prefix of its own (``unique_prefix``) so runs on the shared server
never hear each other, and deletes its buckets afterwards (``delete_buckets``).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import uuid
from collections.abc import AsyncIterator

import pytest

from hoga.cluster.bus import ClusterBus

NATS_URL = os.environ.get("HOGA_TEST_NATS_URL", "nats://127.0.0.1:4222")
IN_CI = os.environ.get("CI", "").lower() == "true"


def unique_prefix() -> str:
    return f"t{uuid.uuid4().hex[:10]}"


async def nats_alive(url: str = NATS_URL) -> str | None:
    import nats

    try:
        nc = await nats.connect(
            url, connect_timeout=2, max_reconnect_attempts=0, allow_reconnect=False
        )
    except Exception as e:
        return f"{type(e).__name__}: {e}"
    try:
        await nc.jetstream().account_info()
    except Exception as e:
        return f"JetStream unavailable: {type(e).__name__}"
    finally:
        await nc.close()
    return None


async def delete_buckets(prefix: str, url: str = NATS_URL) -> None:
    """Delete every key-value bucket (and stream) a test run with ``prefix`` created."""
    import nats

    nc = await nats.connect(url, connect_timeout=2, max_reconnect_attempts=0, allow_reconnect=False)
    try:
        js = nc.jetstream()
        for name in await js.streams_info():
            stream = name.config.name or ""
            if stream.startswith(f"KV_{prefix}_") or stream.startswith(prefix):
                with contextlib.suppress(Exception):
                    await js.delete_stream(stream)
    finally:
        await nc.close()


class TcpProxy:
    """A loopback TCP proxy to ``target`` that can be blocked: a network partition on demand.

    ``block()`` silently drops every byte in both directions (connections stay open, as with a
    pulled cable: the client notices only through its own pings) and holds new connections
    without forwarding; ``unblock()`` forwards again (connections opened while blocked are
    closed so the client reconnects cleanly).
    """

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.blocked = False
        self.port = 0
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    def block(self) -> None:
        self.blocked = True

    def unblock(self) -> None:
        self.blocked = False
        for w in list(self._writers):
            w.close()

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        for w in list(self._writers):
            w.close()
        if self._server is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 2)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.close()
            self._writers.discard(writer)
            return
        self._writers.add(up_writer)
        await asyncio.gather(
            self._pipe(reader, up_writer), self._pipe(up_reader, writer), return_exceptions=True
        )
        for w in (writer, up_writer):
            w.close()
            self._writers.discard(w)

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            data = await reader.read(65536)
            if not data:
                return
            if self.blocked:
                continue  # dropped on the floor, like a partitioned link
            writer.write(data)
            await writer.drain()


class Buses:
    """``await buses.new("a")`` - a started ``ClusterBus`` named ``a`` on this test's prefix
    (several servers' connections in one process)."""

    def __init__(self) -> None:
        self.prefix = unique_prefix()
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
        for bus in self.started:
            with contextlib.suppress(Exception):
                await bus.stop()
        with contextlib.suppress(Exception):
            await delete_buckets(self.prefix)


@contextlib.asynccontextmanager
async def buses() -> AsyncIterator[Buses]:
    b = Buses()
    try:
        yield b
    finally:
        await b.close()
