"""WebSocket fan-out: 100 clients on loopback, each on 20 symbols, simulator at 1,000 ticks/s.

Starts a real ``hoga serve`` (SQLite, fresh data dir) with 10 users; optionally each user runs
5 strategies on 10 symbols each (unless ``--no-strategies``), so
the server carries the whole seed workload: 10 users x 5 strategies, 100 symbols. Then 100
clients (10 per user, in a separate process) subscribe to 20 symbols each and measure, for
every quote, the delay from the tick's timestamp to its arrival. Prints p50/p99 end-to-end
delay, quotes received, quotes dropped by conflation (from the server's per-connection
counters) and the server's resident memory.

    .venv/bin/python -m benchmarks.bench_fanout [--seconds 20] [--clients 100] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import socket
import sys
import time
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

import httpx
import websockets

from benchmarks.server import admin_headers, bearer, cpu_seconds, hoga_server, new_user, rss_mb

USERS = 10


async def _setup(base: str, strategies: bool) -> tuple[list[str], list[str], int]:
    async with httpx.AsyncClient(base_url=base, timeout=30) as c:
        admin = await admin_headers(c)
        symbols = [
            s["symbol"]
            for s in (await c.get("/api/market/symbols", headers=admin)).json()["symbols"]
        ][:100]
        tokens = []
        running = 0
        for u in range(USERS):
            token = await new_user(c, admin, f"fan{u}", "fan-password-1")
            tokens.append(token)
            if strategies:
                h = bearer(token)
                for k in range(5):
                    syms = symbols[(u * 5 + k) * 2 % 100 :][:10] or symbols[:10]
                    r = await c.post(
                        "/api/strategies",
                        headers=h,
                        json={
                            "name": f"s{k}",
                            "kind": "sma_cross",
                            "symbols": syms,
                            "params": {"fast": 5, "slow": 20, "qty": 1},
                        },
                    )
                    if r.status_code == 201:
                        sid = r.json()["id"]
                        if (
                            await c.post(f"/api/strategies/{sid}/start", headers=h)
                        ).status_code == 200:
                            running += 1
        return tokens, symbols, running


async def received(ws: Any, until: float) -> AsyncIterator[dict[str, Any]]:
    """The socket's messages, decoded, until the event loop's clock reaches ``until``.

    A deadline context per message rather than ``wait_for``: on Python 3.11 ``wait_for`` makes
    a task per call, and at 20,000 quotes/s this process (not the server) became the
    bottleneck whose backlog the delays then measured."""
    messages = aiter(ws)
    while True:
        try:
            async with asyncio.timeout_at(until):
                raw = await anext(messages)
        except (TimeoutError, StopAsyncIteration):
            return
        yield json.loads(raw)


def age(msg: dict[str, Any]) -> float:
    """Seconds from the message's market timestamp to now (fan-out delay)."""
    return time.time() - datetime.fromisoformat(msg["ts"]).timestamp()


async def socket_stats(ws: Any) -> dict[str, int]:
    """The server's counters for this socket (sent, conflated...), from its answer to a ping."""
    await ws.send(json.dumps({"type": "ping"}))
    while True:
        msg = json.loads(await asyncio.wait_for(ws.recv(), 10))
        if msg.get("type") == "pong":
            counters: dict[str, int] = msg["stats"]
            return counters


async def _small_socket(url: str) -> socket.socket:
    """A connected TCP socket whose receive buffer is small (64 KiB, set before connecting so
    the window stays small). On loopback the kernel would otherwise let a client that reads
    slower than the server sends hide megabytes of old quotes in its receive buffer, where the
    server's conflation cannot reach them: the delay measured would then be this process's
    backlog, not hoga's."""
    host, port = url.split("//", 1)[1].rsplit(":", 1)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
    sock.setblocking(False)
    await asyncio.get_running_loop().sock_connect(sock, (host, int(port)))
    return sock


async def _client(
    url: str,
    token: str,
    symbols: list[str],
    until: float,
    delays: list[float],
    stats: dict[str, int],
) -> None:
    async with websockets.connect(
        f"{url}/ws/market-data?token={token}", max_size=2**20, sock=await _small_socket(url)
    ) as ws:
        await ws.recv()
        await ws.send(json.dumps({"type": "subscribe", "symbols": symbols}))
        async for msg in received(ws, until):
            if msg.get("type") == "quote":
                delays.append(age(msg))
        counters = await socket_stats(ws)
        stats["conflated"] += counters["conflated"]
        stats["sent"] += counters["sent"]


async def _load(
    url: str, tokens: list[str], symbols: list[str], clients: int, seconds: float
) -> dict[str, Any]:
    rng = random.Random(5)
    delays: list[float] = []
    stats = {"conflated": 0, "sent": 0}
    loop = asyncio.get_running_loop()
    until = loop.time() + seconds + 2
    tasks = [
        asyncio.create_task(
            _client(url, tokens[i % len(tokens)], rng.sample(symbols, 20), until, delays, stats)
        )
        for i in range(clients)
    ]
    await asyncio.gather(*tasks)
    delays.sort()
    ms = [d * 1000 for d in delays[len(delays) // 20 :]]  # skip the warm-up snapshot quotes
    return {
        "clients": clients,
        "quotes_received": len(delays),
        "p50_ms": round(ms[len(ms) // 2], 2),
        "p99_ms": round(ms[int(len(ms) * 0.99)], 2),
        "max_ms": round(ms[-1], 2),
        **stats,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--clients", type=int, default=100)
    ap.add_argument("--no-strategies", action="store_true")
    ap.add_argument(
        "--compression", action="store_true", help="permessage-deflate on (HOGA_WS_COMPRESSION)"
    )
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    port = 19000 + os.getpid() % 1000
    extra = {"ws_compression": "true"} if args.compression else {}
    with hoga_server(port, sim_ticks_per_second="1000", ws_max_connections="20", **extra) as proc:
        base = f"http://127.0.0.1:{port}"
        tokens, symbols, running = asyncio.run(_setup(base, not args.no_strategies))
        cpu0 = cpu_seconds(proc.pid)
        result = asyncio.run(
            _load(f"ws://127.0.0.1:{port}", tokens, symbols, args.clients, args.seconds)
        )
        cpu = cpu_seconds(proc.pid) - cpu0
        result["server_cpu_s"] = round(cpu, 2)
        result["server_cpu_us_per_quote_sent"] = round(cpu * 1e6 / max(result["sent"], 1), 1)
        result["strategies_running"] = running
        result["server_rss_mb"] = rss_mb(proc.pid)
    if args.json:
        print(json.dumps(result))
        return 0
    total = result["sent"] + result["conflated"]
    print(
        f"fan-out: {result['clients']} WebSocket clients x 20 symbols, simulator 1,000 ticks/s, "
        f"{USERS} users, {result['strategies_running']} strategies running"
    )
    print(
        f"  end-to-end delay p50 {result['p50_ms']} ms, p99 {result['p99_ms']} ms, max {result['max_ms']} ms "
        f"over {result['quotes_received']:,} quotes"
    )
    print(
        f"  dropped by conflation: {result['conflated']:,} of {total:,} ({result['conflated'] / max(total, 1):.1%}); "
        f"server RSS {result['server_rss_mb']} MB"
    )
    print(
        f"  server CPU {result['server_cpu_s']} s, "
        f"{result['server_cpu_us_per_quote_sent']} us per quote sent "
        f"(ticks, hub, strategies and the sends together)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
