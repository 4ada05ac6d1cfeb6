"""Market data in cluster mode with real processes: kill -9 the feed owner, quotes resume.

Two ``hoga serve`` on one PostgreSQL and one NATS (own prefix), the simulator feed. A browser
(WebSocket ``/ws/market-data``) on the server that does *not* run the feed gets its quotes over
NATS; the feed owner dies without a word; the other server takes lease ``feed-simulator`` after
the TTL, subscribes upstream for the demand it already knows, and the same socket's quotes
resume. Lease TTL 3 s.
"""

from __future__ import annotations

import asyncio
import json
import signal
import time
from pathlib import Path
from typing import Any

import pytest
import websockets

from tests.cluster_support import delete_buckets, unique_prefix
from tests.e2e.cluster_support import (
    cluster_env,
    lease_holders,
    make_users,
    shared_secrets,
    start_cluster,
    stop_all,
)
from tests.helpers import eventually_sync

pytestmark = [pytest.mark.postgres, pytest.mark.nats, pytest.mark.timeout(600)]

TTL = 3.0
LEASE = "feed-simulator"
BOUND = 15.0  # seconds from kill -9 to quotes again (TTL + an ownership round + the settle)


async def _watch(url: str, token: str, symbols: list[str], kill: Any) -> dict[str, float]:
    """Quotes on one socket; ``kill()`` once they flow; when they flowed again after it."""
    ws_url = url.replace("http://", "ws://") + "/ws/market-data"
    async with websockets.connect(ws_url, max_size=None) as conn:
        await conn.send(json.dumps({"type": "auth", "token": token}))
        await conn.send(json.dumps({"type": "subscribe", "symbols": symbols}))

        async def quote(within: float) -> dict[str, Any]:
            deadline = time.monotonic() + within
            while True:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"no quote within {within} s")
                msg = json.loads(await asyncio.wait_for(conn.recv(), left))
                if msg.get("type") == "quote":
                    return msg  # type: ignore[no-any-return]

        for _ in range(3):
            await quote(60)
        before = time.monotonic()
        kill()
        killed = time.monotonic()
        # What was in flight may still arrive: drain for a moment, then wait for fresh ones.
        while True:
            try:
                await quote(0.5)
            except (AssertionError, TimeoutError):
                break
        await quote(BOUND + 30)
        return {"kill": killed - before, "resumed_after": time.monotonic() - killed}


def test_kill_9_of_the_feed_owner_quotes_resume_on_the_other_server(
    tmp_path: Path, pg_url: str, nats_available: str
) -> None:
    prefix = unique_prefix()
    keys = shared_secrets()
    envs = [{**cluster_env(pg_url, nats_available, prefix, f"n{i}", TTL), **keys} for i in range(2)]
    servers = start_cluster(tmp_path, envs)
    try:
        holder = eventually_sync(
            lambda: lease_holders(nats_available, prefix).get(LEASE), 60, "owner"
        )
        owner = int(holder.removeprefix("n"))
        watcher = servers[1 - owner]
        _, (headers,) = make_users([servers[0].url], 1)
        token = headers["Authorization"].split()[1]
        symbols = ["005930", "000660", "035420", "005380", "051910", "006400", "035720"]
        victim = servers[owner]

        def kill() -> None:
            victim.proc.send_signal(signal.SIGKILL)
            victim.proc.wait(10)

        got = asyncio.run(_watch(watcher.url, token, symbols, kill))
        print(
            f"feed owner n{owner} killed (-9): quotes on n{1 - owner} resumed after "
            f"{got['resumed_after']:.1f} s (lease ttl {TTL} s)"
        )
        assert got["resumed_after"] <= BOUND
        assert lease_holders(nats_available, prefix).get(LEASE) == f"n{1 - owner}"
        log = watcher.output()
        assert "now runs the feed-simulator feed" in log
    finally:
        stop_all(servers)
        asyncio.run(delete_buckets(prefix, nats_available))
