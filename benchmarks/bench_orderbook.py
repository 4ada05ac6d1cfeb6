"""Order-book fan-out beside the trade fan-out: 100 WebSocket clients, 100 symbols, one run.

Starts a real ``hoga serve`` (SQLite, simulator at 1,000 trades/s; every trade of a
subscribed symbol also moves its 10-level book, so books arrive at the trade rate). 100
clients (in this process, 10 users) each subscribe to 20 of the 100 symbols with
``"channels": ["trades", "orderbook"]``, so both streams share the server, the sockets and
the conflation. For every message the delay from its timestamp (the trade's, or the book's
which is the last trade's) to its arrival is measured; the server's per-connection counters
give how many of each were superseded by conflation before sending.

    .venv/bin/python -m benchmarks.bench_orderbook [--seconds 20] [--clients 100] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import sys
from typing import Any

import websockets

from benchmarks.bench_fanout import USERS, _setup, age, received, socket_stats
from benchmarks.server import hoga_server, rss_mb


async def _client(
    url: str,
    token: str,
    symbols: list[str],
    until: float,
    delays: dict[str, list[float]],
    stats: dict[str, int],
) -> None:
    async with websockets.connect(f"{url}/ws/market-data?token={token}", max_size=2**22) as ws:
        await ws.recv()
        await ws.send(
            json.dumps(
                {"type": "subscribe", "symbols": symbols, "channels": ["trades", "orderbook"]}
            )
        )
        async for msg in received(ws, until):
            kind = msg.get("type")
            if kind in ("quote", "orderbook"):
                delays[kind].append(age(msg))
        counters = await socket_stats(ws)
        for k in ("conflated", "sent", "books_conflated", "books_sent"):
            stats[k] += counters.get(k, 0)


def _pcts(values: list[float]) -> dict[str, float]:
    values = sorted(values)
    ms = [d * 1000 for d in values[len(values) // 20 :]]  # skip the warm-up snapshots
    if not ms:
        return {"n": 0, "p50_ms": 0.0, "p99_ms": 0.0, "max_ms": 0.0}
    return {
        "n": len(values),
        "p50_ms": round(ms[len(ms) // 2], 2),
        "p99_ms": round(ms[int(len(ms) * 0.99)], 2),
        "max_ms": round(ms[-1], 2),
    }


async def _load(
    url: str, tokens: list[str], symbols: list[str], clients: int, seconds: float
) -> dict[str, Any]:
    rng = random.Random(5)
    delays: dict[str, list[float]] = {"quote": [], "orderbook": []}
    stats = {"conflated": 0, "sent": 0, "books_conflated": 0, "books_sent": 0}
    until = asyncio.get_running_loop().time() + seconds + 2
    await asyncio.gather(
        *(
            _client(url, tokens[i % len(tokens)], rng.sample(symbols, 20), until, delays, stats)
            for i in range(clients)
        )
    )
    return {
        "clients": clients,
        "trades": _pcts(delays["quote"]),
        "books": _pcts(delays["orderbook"]),
        **stats,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--clients", type=int, default=100)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    port = 19000 + (os.getpid() + 500) % 1000
    with hoga_server(port, sim_ticks_per_second="1000", ws_max_connections="20") as proc:
        base = f"http://127.0.0.1:{port}"
        tokens, symbols, _ = asyncio.run(_setup(base, False))
        result = asyncio.run(
            _load(f"ws://127.0.0.1:{port}", tokens, symbols, args.clients, args.seconds)
        )
        result["server_rss_mb"] = rss_mb(proc.pid)
    if args.json:
        print(json.dumps(result))
        return 0
    print(
        f"order-book fan-out: {result['clients']} WebSocket clients x 20 of 100 symbols, trades "
        f"and 10-level books on each, simulator 1,000 trades/s, {USERS} users"
    )
    for label, key, sent, dropped in (
        ("trades", "trades", "sent", "conflated"),
        ("books ", "books", "books_sent", "books_conflated"),
    ):
        r = result[key]
        total = result[sent] + result[dropped]
        print(
            f"  {label}: delay p50 {r['p50_ms']} ms, p99 {r['p99_ms']} ms, max {r['max_ms']} ms "
            f"over {r['n']:,}; conflated {result[dropped]:,} of {total:,} "
            f"({result[dropped] / max(total, 1):.1%})"
        )
    print(f"  server RSS {result['server_rss_mb']} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
