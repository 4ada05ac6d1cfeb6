"""Order latency inside hoga and through its HTTP API.

1. submit -> adapter call: ``OrderService.submit`` to the moment the paper broker's ``place`` is
   entered, in-process on SQLite (risk gate, two transactions, the queue, the dispatcher).
   Orders arrive open-loop at ``--rate`` per second; limit orders rest, so no fill work mixes in.
2. ``POST /api/orders`` against a real ``hoga serve`` process (SQLite, fresh data dir) from a
   loopback client in this process, open-loop at 200 requests/s: latency percentiles, achieved
   rate, errors, and the server's memory.
3. Intake capacity against a baseline measured in the same run on the same server: closed-loop
   saturation (``--conns`` requests always in flight) of a *trivial authenticated POST* - the
   same route, middleware, JWT check and user lookup, with a body the validator refuses (422),
   so no service runs - and of accepted orders (202). Reported as orders/s, the baseline's
   requests/s, their ratio, and the server's CPU time per answer (from /proc).
4. CPU time per accepted order by part, in-process under cProfile (the ASGI app driven without
   sockets): JWT, risk inputs, SQL, audit, queue, event publish, the rest.

Figures travel between machines only as ratios; note the machine with them.

    .venv/bin/python -m benchmarks.bench_latency [--internal-orders 2000] [--api-seconds 20]
        [--capacity-seconds 10] [--profile-orders 2000]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx

from benchmarks.server import (
    ADMIN_PASSWORD,
    access_token,
    admin_headers,
    bearer,
    cpu_seconds,
    hoga_server,
    new_user,
    rss_mb,
)
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


@contextlib.asynccontextmanager
async def in_process_hoga() -> AsyncIterator[HogaApp]:
    """A started HogaApp on SQLite in a throwaway data directory, with cash and an order-value
    limit no run reaches and no duplicate window; stopped on exit."""
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
        try:
            yield hoga
        finally:
            await hoga.stop()


async def internal(n: int, rate: float) -> dict[str, Any]:
    async with in_process_hoga() as hoga:
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
    ms = [(entered[c] - started[c]) * 1000 for c in started if c in entered]
    return {"orders": n, "offered_per_s": rate, **summary(ms)}


async def premium_users(c: httpx.AsyncClient, prefix: str, n: int) -> list[dict[str, str]]:
    """Lift the premium tier's limits out of the way, create ``n`` premium users and sign
    them in; their Authorization headers."""
    admin = await admin_headers(c)
    await c.patch(
        "/api/admin/tiers/premium",
        headers=admin,
        json={"daily_trades": 10**6, "api_calls_per_minute": 100_000},
    )
    return [bearer(await new_user(c, admin, f"{prefix}{i}", "load-password-1")) for i in range(n)]


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
            heads = await premium_users(c, "load", 4)
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


async def _saturate(
    raw: RawClient, heads: list[dict[str, str]], body: Any, want: int, seconds: float, conns: int
) -> tuple[int, dict[int, int], float]:
    """Closed loop: ``conns`` requests always in flight for ``seconds``; (answers with status
    ``want``, other answers by status, elapsed)."""
    loop = asyncio.get_running_loop()
    stop = loop.time() + seconds
    ok = 0
    bad: dict[int, int] = {}

    async def worker(w: int) -> None:
        nonlocal ok
        i = w
        while loop.time() < stop:
            status = await raw.post("/api/orders", heads[i % len(heads)], body(i))
            if status == want:
                ok += 1
            else:
                bad[status] = bad.get(status, 0) + 1
            i += conns

    t0 = loop.time()
    await asyncio.gather(*(worker(w) for w in range(conns)))
    return ok, bad, loop.time() - t0


async def capacity(seconds: float, conns: int) -> dict[str, Any]:
    port = 18000 + (os.getpid() + 500) % 1000
    with hoga_server(
        port,
        paper_initial_cash=str(10**13),
        max_order_value=str(10**12),
        duplicate_window="0",
        # Few ticks: the paper broker's matching of thousands of resting orders on every tick
        # is not intake work and would be counted in the server's CPU.
        sim_ticks_per_second="2",
    ) as proc:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10) as c:
            heads = await premium_users(c, "cap", 4)
        raw = RawClient("127.0.0.1", port, conns)
        await raw.open()
        trivial = json.dumps({"symbol": "005930"}).encode()  # refused by the validator: 422

        def order(i: int) -> bytes:
            price = 50_100 + (i % 50) * 100
            return json.dumps(
                {"symbol": "005930", "side": "buy", "type": "limit", "qty": 1, "price": price}
            ).encode()

        out: dict[str, Any] = {"conns": conns, "seconds": seconds}
        for name, body, want in (("trivial", lambda i: trivial, 422), ("orders", order, 202)):
            await _saturate(raw, heads, body, want, min(2.0, seconds), conns)  # warm up
            cpu0 = cpu_seconds(proc.pid)
            ok, bad, elapsed = await _saturate(raw, heads, body, want, seconds, conns)
            cpu = cpu_seconds(proc.pid) - cpu0
            out[name] = {
                "per_s": round(ok / elapsed, 1),
                "other_answers": bad,
                "server_cpu_ms_per_answer": round(cpu / max(ok, 1) * 1000, 3),
                "server_cpu_share": round(cpu / elapsed, 2),
            }
        await raw.close()
    out["ratio"] = round(out["orders"]["per_s"] / max(out["trivial"]["per_s"], 1e-9), 3)
    return out


#: Where CPU goes on the intake path: (part, predicate on the profiled function's file/name).
_PARTS: list[tuple[str, Any]] = [
    ("server", lambda f, n: f.endswith("hoga/api/guard.py") and n == "__call__"),
    (
        "auth_and_body",
        lambda f, n: f.endswith("fastapi/dependencies/utils.py") and n == "solve_dependencies",
    ),
    ("auth", lambda f, n: f.endswith("hoga/api/deps.py") and n == "current_user"),
    ("jwt", lambda f, n: f.endswith("security/tokens.py") or "/jwt/" in f),
    ("endpoint", lambda f, n: f.endswith("hoga/api/orders.py") and n == "place"),
    ("intake", lambda f, n: f.endswith("execution/intake.py") and n == "submit"),
    ("validation", lambda f, n: f.endswith("execution/validation.py") and n == "validate"),
    ("risk_inputs", lambda f, n: f.endswith("execution/riskinputs.py") and n == "read"),
    ("risk_gate", lambda f, n: f.endswith("execution/risk.py") and n == "check"),
    (
        "order_rows",
        lambda f, n: (
            (f.endswith("store/repos/orders.py") and n in ("insert_order", "add_event"))
            or (f.endswith("repos/ledger.py") and n == "bump_day")
        ),
    ),
    ("audit", lambda f, n: f.endswith("store/repos/audit.py") and n == "record"),
    ("commit", lambda f, n: f.endswith("sqlalchemy/engine/base.py") and n == "_commit_impl"),
    ("queue", lambda f, n: f.endswith("execution/ordercore.py") and n == "enqueue"),
    ("event_publish", lambda f, n: f.endswith("execution/ordercore.py") and n == "publish"),
    ("sql", lambda f, n: f.endswith("sqlalchemy/engine/base.py") and n == "_execute_context"),
]
#: Parts derived from others: (name, part, minus these parts).
_DERIVED = [
    ("body_parsing", "auth_and_body", ["auth"]),
    ("framework_and_response", "server", ["auth_and_body", "endpoint"]),
    ("endpoint_rest", "endpoint", ["intake"]),
]


async def _count_statements(hoga: HogaApp, post: Any, n: int) -> float:
    """SQL statements (commits included) per accepted order, counted on a few orders outside
    the profile (a cursor listener slows every statement)."""
    from sqlalchemy import event

    engine = hoga.db.engine.sync_engine
    seen = 0

    def count(*_: Any) -> None:
        nonlocal seen
        seen += 1

    event.listen(engine, "before_cursor_execute", count)
    event.listen(engine, "commit", count)
    try:
        accepted: int = sum([await post(10_000 + i) == 202 for i in range(n)])
    finally:
        event.remove(engine, "before_cursor_execute", count)
        event.remove(engine, "commit", count)
    return round(float(seen) / max(accepted, 1), 2)


async def profile_parts(n: int) -> dict[str, Any]:
    """Accepted orders through the ASGI app in-process under cProfile; CPU per order by part.
    Parts nest (SQL inside risk inputs and audit), so they do not add up to the total."""
    import cProfile
    import pstats

    async with in_process_hoga() as hoga:
        await hoga.dispatcher.stop()  # intake only: nothing is sent
        await hoga.auth.update_tier(
            "premium", actor_id=None, ip=None, daily_trades=10**7, api_calls_per_minute=10**7
        )
        await hoga.auth.create_user("prof0", "bench-password-1", "premium", actor_id=None, ip=None)
        hoga.feed.pump(500)  # type: ignore[attr-defined]
        transport = httpx.ASGITransport(app=hoga.api)
        async with httpx.AsyncClient(transport=transport, base_url="http://hoga") as c:
            head = bearer(await access_token(c, "prof0", "bench-password-1"))

            async def post(i: int) -> int:
                body = {
                    "symbol": "005930",
                    "side": "buy",
                    "type": "limit",
                    "qty": 1,
                    "price": 50_100 + (i % 50) * 100,
                }
                return (await c.post("/api/orders", json=body, headers=head)).status_code

            for i in range(50):
                await post(i)  # warm up
            statements = await _count_statements(hoga, post, 50)
            prof = cProfile.Profile(time.process_time)
            cpu0 = time.process_time()
            prof.enable()
            accepted = sum([await post(i) == 202 for i in range(n)])
            prof.disable()
            total = time.process_time() - cpu0
    stats = pstats.Stats(prof).stats  # type: ignore[attr-defined]
    parts: dict[str, float] = {}
    for name, match in _PARTS:
        seen = 0.0
        for key, (_cc, _nc, _tt, ct, callers) in stats.items():
            file, _line, func = key
            # Count a function's cumulative time only where no other caller is in the same
            # part (helpers within a part would count twice; pstats already folds recursion).
            if match(file, func) and not any(match(c[0], c[2]) for c in callers if c != key):
                seen += ct
        parts[name] = round(seen / max(accepted, 1) * 1e6, 1)
    for name, whole, minus in _DERIVED:
        parts[name] = round(parts[whole] - sum(parts[m] for m in minus), 1)
    return {
        "orders": n,
        "accepted": accepted,
        "cpu_us_per_order": round(total / max(accepted, 1) * 1e6, 1),
        "sql_statements_per_order": statements,
        "parts_us_per_order": parts,
        "note": "under cProfile (inflated ~1.5-2x); parts nest (SQL is inside the others); "
        "'server' is the ASGI app, the rest of the total is the in-process client",
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--internal-orders", type=int, default=2000)
    ap.add_argument("--internal-rate", type=float, default=100.0)
    ap.add_argument("--api-seconds", type=float, default=20.0)
    ap.add_argument("--api-rate", type=float, default=200.0)
    ap.add_argument("--capacity-seconds", type=float, default=10.0)
    ap.add_argument("--conns", type=int, default=16)
    ap.add_argument("--profile-orders", type=int, default=2000)
    ap.add_argument(
        "--only", choices=["internal", "api", "capacity", "profile"], action="append", default=None
    )
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    only = set(args.only or ["internal", "api", "capacity", "profile"])
    out: dict[str, Any] = {"machine": f"{os.cpu_count()} cores, load {os.getloadavg()[0]:.1f}"}
    if "capacity" in only:
        out["capacity"] = asyncio.run(capacity(args.capacity_seconds, args.conns))
    if "profile" in only:
        out["profile"] = asyncio.run(profile_parts(args.profile_orders))
    if "internal" in only:
        out["submit_to_adapter"] = asyncio.run(internal(args.internal_orders, args.internal_rate))
    if "api" in only:
        out["post_orders"] = asyncio.run(api(args.api_seconds, args.api_rate))
    if args.json or not {"internal", "api"} <= only:
        print(json.dumps(out, indent=None if args.json else 2))
        return 0
    inside, through = out["submit_to_adapter"], out["post_orders"]
    print(json.dumps({k: out[k] for k in ("machine", "capacity", "profile") if k in out}, indent=2))
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
