"""Order latency inside hoga and through its HTTP API.

1. submit -> adapter call: ``OrderService.submit`` to the moment the paper broker's ``place`` is
   entered, in-process on SQLite (risk gate, two transactions, the queue, the dispatcher).
   Orders arrive open-loop at ``--rate`` per second; limit orders rest, so no fill work mixes in.
2. ``POST /api/orders`` against a real ``hoga serve`` process (SQLite, fresh data dir) from a
   loopback client in this process, open-loop at 200 requests/s: latency percentiles, achieved
   rate, errors, and the server's memory.

    .venv/bin/python -m benchmarks.bench_latency [--internal-orders 2000] [--api-seconds 20]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from benchmarks.server import ADMIN_PASSWORD, admin_headers, hoga_server, rss_mb
from hoga.app import HogaApp
from hoga.config import Settings
from hoga.domain.orders import OrderIntent, OrderType, Side


def pct(xs: list[float], p: float) -> float:
    s = sorted(xs)
    return s[min(len(s) - 1, max(0, round(p / 100 * len(s)) - 1))]


def summary(ms: list[float]) -> dict[str, float]:
    return {
        "n": len(ms),
        "p50_ms": round(pct(ms, 50), 3),
        "p95_ms": round(pct(ms, 95), 3),
        "p99_ms": round(pct(ms, 99), 3),
        "max_ms": round(max(ms), 3),
        "mean_ms": round(statistics.fmean(ms), 3),
    }


async def internal(n: int, rate: float) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(
            data_dir=Path(tmp),
            admin_password=ADMIN_PASSWORD,
            paper_initial_cash=10**13,
            max_order_value=10**12,
            duplicate_window=0,
        )
        hoga = HogaApp(settings, drive_feed=False)
        await hoga.start()
        await hoga.auth.update_tier("premium", actor_id=None, ip=None, daily_trades=10**7)
        users = []
        for i in range(5):
            u = await hoga.auth.create_user(
                f"bench{i}", "bench-password-1", "premium", actor_id=None, ip=None
            )
            users.append(u.id)
        hoga.feed.pump(500)  # type: ignore[attr-defined]
        entered: dict[str, float] = {}
        original = hoga.paper.place

        async def timed_place(account: Any, request: Any) -> Any:
            entered[request.client_order_id] = time.perf_counter()
            return await original(account, request)

        hoga.paper.place = timed_place  # type: ignore[method-assign]
        started: dict[str, float] = {}
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        tasks = []

        async def one(i: int) -> None:
            cid = f"b{i}"
            started[cid] = time.perf_counter()
            await hoga.orders.submit(
                users[i % len(users)],
                OrderIntent(
                    "005930",
                    Side.BUY,
                    OrderType.LIMIT,
                    1,
                    50_100 + (i % 50) * 100,
                    client_order_id=cid,
                ),
            )

        for i in range(n):
            delay = t0 + i / rate - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(i)))
        await asyncio.gather(*tasks)
        deadline = loop.time() + 30
        while len(entered) < n and loop.time() < deadline:
            await asyncio.sleep(0.01)
        await hoga.stop()
    ms = [(entered[c] - started[c]) * 1000 for c in started if c in entered]
    return {"orders": n, "offered_per_s": rate, **summary(ms)}


class RawClient:
    """A minimal keep-alive HTTP/1.1 client for the load: httpx spends about a millisecond of
    CPU per request, which on a 2-core machine would take the server's second core."""

    def __init__(self, host: str, port: int, connections: int) -> None:
        self.host, self.port, self.n = host, port, connections
        self._free: asyncio.Queue[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = (
            asyncio.Queue()
        )

    async def open(self) -> None:
        for _ in range(self.n):
            self._free.put_nowait(await asyncio.open_connection(self.host, self.port))

    async def post(self, path: str, headers: dict[str, str], body: bytes) -> int:
        reader, writer = await self._free.get()
        try:
            head = (
                f"POST {path} HTTP/1.1\r\nHost: {self.host}\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(body)}\r\n"
            )
            head += "".join(f"{k}: {v}\r\n" for k, v in headers.items())
            writer.write(head.encode() + b"\r\n" + body)
            status_line = await reader.readline()
            length = 0
            while (line := await reader.readline()) not in (b"\r\n", b""):
                name, _, value = line.decode().partition(":")
                if name.lower() == "content-length":
                    length = int(value)
            await reader.readexactly(length)
            return int(status_line.split()[1])
        finally:
            self._free.put_nowait((reader, writer))

    async def close(self) -> None:
        while not self._free.empty():
            _, writer = self._free.get_nowait()
            writer.close()


async def api(seconds: float, rate: float) -> dict[str, Any]:
    port = 18000 + os.getpid() % 1000
    with hoga_server(
        port,
        paper_initial_cash=str(10**13),
        max_order_value=str(10**12),
        duplicate_window="0",
    ) as proc:
        async with httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{port}",
            timeout=10,
            limits=httpx.Limits(max_connections=64),
        ) as c:
            admin = await admin_headers(c)
            await c.patch(
                "/api/admin/tiers/premium",
                headers=admin,
                json={"daily_trades": 10**6, "api_calls_per_minute": 100_000},
            )
            heads = []
            for i in range(4):
                await c.post(
                    "/api/admin/users",
                    headers=admin,
                    json={
                        "username": f"load{i}",
                        "password": "load-password-1",
                        "tier": "premium",
                    },
                )
                t = (
                    await c.post(
                        "/api/auth/login",
                        json={"username": f"load{i}", "password": "load-password-1"},
                    )
                ).json()
                heads.append({"Authorization": f"Bearer {t['access_token']}"})
            lat: list[float] = []
            errors = 0
            loop = asyncio.get_running_loop()
            n = int(seconds * rate)
            raw = RawClient("127.0.0.1", port, 32)
            await raw.open()

            async def one(i: int, due: float) -> None:
                nonlocal errors
                body = json.dumps(
                    {
                        "symbol": "005930",
                        "side": "buy",
                        "type": "limit",
                        "qty": 1,
                        "price": 50_100 + (i % 50) * 100,
                    }
                ).encode()
                status = await raw.post("/api/orders", heads[i % 4], body)
                # From when the request was due, so waiting for a free connection counts.
                lat.append((loop.time() - due) * 1000)
                if status != 202:
                    errors += 1

            t0 = loop.time()
            tasks = []
            for i in range(n):
                delay = t0 + i / rate - loop.time()
                if delay > 0:
                    await asyncio.sleep(delay)
                tasks.append(asyncio.create_task(one(i, t0 + i / rate)))
            await asyncio.gather(*tasks)
            elapsed = loop.time() - t0
            await raw.close()
            rss = rss_mb(proc.pid)
    return {
        "requests": n,
        "offered_per_s": rate,
        "achieved_per_s": round(n / elapsed, 1),
        "errors": errors,
        "server_rss_mb": rss,
        **summary(lat),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--internal-orders", type=int, default=2000)
    ap.add_argument("--internal-rate", type=float, default=100.0)
    ap.add_argument("--api-seconds", type=float, default=20.0)
    ap.add_argument("--api-rate", type=float, default=200.0)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    inside = asyncio.run(internal(args.internal_orders, args.internal_rate))
    through = asyncio.run(api(args.api_seconds, args.api_rate))
    if args.json:
        print(json.dumps({"submit_to_adapter": inside, "post_orders": through}))
        return 0
    print(
        f"submit -> adapter call (paper, SQLite, {inside['orders']} orders at {inside['offered_per_s']:g}/s): "
        f"p50 {inside['p50_ms']} ms, p99 {inside['p99_ms']} ms, max {inside['max_ms']} ms"
    )
    print(
        f"POST /api/orders ({through['requests']} requests at {through['offered_per_s']:g}/s offered, "
        f"{through['achieved_per_s']}/s achieved, {through['errors']} errors): p50 {through['p50_ms']} ms, "
        f"p95 {through['p95_ms']} ms, p99 {through['p99_ms']} ms, max {through['max_ms']} ms; "
        f"server RSS {through['server_rss_mb']} MB"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
