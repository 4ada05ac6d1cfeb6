"""Orders/s under the global order cap: one server vs three servers sharing it over NATS.

cluster-core's ownership (which lets three ``hoga serve`` processes share one database) is not
on this branch yet, so the cap's seam is driven directly: the dispatcher asks a ``RateLimit``
``available_at(now)`` and ``record``s each send, and so does each worker here.

* ``single``: one process, the in-memory ``SlidingWindow`` (what a single server uses),
  offered the whole load.
* ``cluster``: three processes, each with its own NATS connection and ``QuotaLedger``, each
  offered a third of the load (or, skewed, the first one ``k`` times each other's), sharing
  one cap.
* ``kv-counter``: the design not taken - a JetStream key-value compare-and-set per order, from
  three processes on one key: its round trip and throughput.

Orders arrive open-loop (Poisson, seeded) into a FIFO per process; an order not admitted
within ``--max-wait`` seconds is refused (dropped from the queue). Reported: accepted/s,
refused, the worst count in any 1-second window of all processes' admissions together
against the cap (overshoot = the excess), and the p50/p99 wait from arrival to admission.
Both loads - under the cap and above it - run in one invocation.

    .venv/bin/python -m benchmarks.bench_cluster_orders [--cap 200] [--seconds 8] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import json
import os
import random
import statistics
import subprocess
import sys
import time
import uuid
from collections import deque
from typing import Any

from hoga.domain.ratelimit import RateLimit, SlidingWindow

NATS_URL = os.environ.get("HOGA_BENCH_NATS_URL", "nats://127.0.0.1:4222")
MARGIN = 0.02  # the dispatcher's default safety margin on every window


def pct(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    s = sorted(values)
    return s[min(len(s) - 1, int(q * len(s)))]


def worst_window(times: list[float], window: float = 1.0) -> int:
    times = sorted(times)
    return max((bisect.bisect_left(times, t + window) - i for i, t in enumerate(times)), default=0)


async def drive(
    cap: RateLimit, rate: float, seconds: float, start_at: float, seed: int, max_wait: float
) -> dict[str, Any]:
    """Offer ``rate`` orders/s for ``seconds`` from wall time ``start_at``; admit under ``cap``."""
    rng = random.Random(seed)
    arrivals, t = [], 0.0
    while True:
        t += rng.expovariate(rate)
        if t >= seconds:
            break
        arrivals.append(t)
    await asyncio.sleep(max(0.0, start_at - time.time()))
    # Admissions are stamped with the monotonic clock, which Linux shares between processes:
    # a wall-clock stamp would mix in each process's offset between the two clocks.
    t0_mono = time.monotonic()
    queue: deque[float] = deque()
    admitted: list[float] = []
    waits: list[float] = []
    refused = nos = i = 0
    while i < len(arrivals) or queue:
        mono = time.monotonic()
        now = mono - t0_mono
        while i < len(arrivals) and arrivals[i] <= now:
            queue.append(arrivals[i])
            i += 1
        while queue and now - queue[0] > max_wait:
            queue.popleft()
            refused += 1
        next_arrival = arrivals[i] - now if i < len(arrivals) else max_wait
        if queue:
            at = cap.available_at(mono)
            if at <= mono:
                cap.record(mono)
                admitted.append(mono)
                waits.append(now - queue.popleft())
                if len(admitted) % 16 == 0:
                    await asyncio.sleep(0)
                continue
            nos += 1
            await asyncio.sleep(max(0.0005, min(at - mono, next_arrival)))
        else:
            await asyncio.sleep(max(0.0005, next_arrival))
    return {
        "admitted": admitted,
        "in_period": sum(1 for t in admitted if t < t0_mono + seconds),
        "waits": waits,
        "refused": refused,
        "cap_said_wait": nos,
    }


async def worker(args: argparse.Namespace) -> dict[str, Any]:
    from hoga.cluster.bus import ClusterBus
    from hoga.cluster.quota import QuotaLedger
    from hoga.domain.clock import SystemClock

    bus = ClusterBus(NATS_URL, f"w{args.index}-{os.getpid()}", prefix=args.prefix)
    await bus.start()
    ledger = QuotaLedger(bus, SystemClock())
    await ledger.start()
    try:
        if args.kv:
            return await kv_counter(bus, args.seconds, args.start_at)
        cap = ledger.quota("orders", args.cap, 1.0 + MARGIN)
        out = await drive(cap, args.rate, args.seconds, args.start_at, args.index, args.max_wait)
        out["ledger_writes"] = ledger.writes
        return out
    finally:
        await ledger.stop()
        await bus.stop()


async def kv_counter(bus: Any, seconds: float, start_at: float) -> dict[str, Any]:
    """Compare-and-set increments of one shared key as fast as they go."""
    from nats.js.errors import KeyNotFoundError, KeyWrongLastSequenceError

    kv = await bus.key_value("counter", ttl=3600.0)
    await asyncio.sleep(max(0.0, start_at - time.time()))
    lat: list[float] = []
    conflicts = 0
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        t = time.monotonic()
        while True:
            try:
                e = await kv.get("n")
                value, rev = int(e.value or b"0"), e.revision or 0
            except KeyNotFoundError:
                value, rev = 0, 0
            try:
                await kv.update("n", str(value + 1).encode(), last=rev)
                break
            except KeyWrongLastSequenceError:
                conflicts += 1
        lat.append(time.monotonic() - t)
    return {"ops": len(lat), "lat": lat, "conflicts": conflicts}


def run_workers(
    prefix: str, n: int, rates: list[float], args: argparse.Namespace, kv: bool = False
) -> list[dict[str, Any]]:
    start_at = time.time() + 3.0  # every worker connected before the first order
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "benchmarks.bench_cluster_orders",
                "--worker",
                "--index",
                str(i),
                "--prefix",
                prefix,
                "--cap",
                str(args.cap),
                "--rate",
                str(rates[i]),
                "--seconds",
                str(args.seconds if not kv else 4.0),
                "--start-at",
                str(start_at),
                "--max-wait",
                str(args.max_wait),
                *(["--kv"] if kv else []),
            ],
            stdout=subprocess.PIPE,
        )
        for i in range(n)
    ]
    outs = []
    for p in procs:
        data, _ = p.communicate(timeout=args.seconds + 60)
        if p.returncode:
            raise SystemExit(f"worker failed ({p.returncode})")
        outs.append(json.loads(data))
    return outs


def summarise(runs: list[dict[str, Any]], cap: int, seconds: float) -> dict[str, Any]:
    admitted = [t for r in runs for t in r["admitted"]]
    waits = [w for r in runs for w in r["waits"]]
    worst = worst_window(admitted)
    return {
        # While orders were offered (the queues drain for up to --max-wait afterwards).
        "accepted_per_s": round(sum(r["in_period"] for r in runs) / seconds, 1),
        "accepted_per_process": [len(r["admitted"]) for r in runs],
        "refused": sum(r["refused"] for r in runs),
        "worst_1s_window": worst,
        "overshoot": max(0, worst - cap),
        "wait_p50_ms": round(1000 * pct(waits, 0.5), 2),
        "wait_p99_ms": round(1000 * pct(waits, 0.99), 2),
        "ledger_writes": sum(r.get("ledger_writes", 0) for r in runs),
    }


async def nats_reachable() -> bool:
    import nats

    try:
        nc = await nats.connect(NATS_URL, connect_timeout=2, max_reconnect_attempts=0)
    except Exception:
        return False
    await nc.close()
    return True


async def cleanup(prefix: str) -> None:
    import nats

    nc = await nats.connect(NATS_URL)
    js = nc.jetstream()
    for info in await js.streams_info():
        name = info.config.name or ""
        if name.startswith(f"KV_{prefix}_"):
            await js.delete_stream(name)
    await nc.close()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cap", type=int, default=200, help="global order cap, orders/s")
    ap.add_argument("--seconds", type=float, default=8.0)
    ap.add_argument("--processes", type=int, default=3)
    ap.add_argument(
        "--loads",
        default="0.5,1.5,1.5:4",
        help="offered loads as multiples of the cap; ':k' offers the first process k times "
        "what each other one gets",
    )
    ap.add_argument("--max-wait", type=float, default=1.0)
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--kv", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--index", type=int, default=0, help=argparse.SUPPRESS)
    ap.add_argument("--prefix", default="", help=argparse.SUPPRESS)
    ap.add_argument("--rate", type=float, default=0.0, help=argparse.SUPPRESS)
    ap.add_argument("--start-at", type=float, default=0.0, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:
        print(json.dumps(asyncio.run(worker(args))))
        return 0
    out: dict[str, Any] = {
        "machine": f"{os.cpu_count()} cores, load {os.getloadavg()[0]:.1f}",
        "cap": args.cap,
        "seconds": args.seconds,
    }
    n = args.processes
    if not asyncio.run(nats_reachable()):
        print(f"NATS at {NATS_URL} is not reachable: the cluster benchmark needs it")
        return 0
    for spec in args.loads.split(","):
        load_s, _, skew_s = spec.partition(":")
        load, skew = float(load_s), float(skew_s or 1.0)
        total = load * args.cap
        single = asyncio.run(
            drive(
                SlidingWindow.per_second(args.cap, MARGIN),
                total,
                args.seconds,
                time.time(),
                0,
                args.max_wait,
            )
        )
        weights = [skew] + [1.0] * (n - 1)
        rates = [total * w / sum(weights) for w in weights]
        prefix = f"b{uuid.uuid4().hex[:10]}"
        try:
            cluster = run_workers(prefix, n, rates, args)
        finally:
            asyncio.run(cleanup(prefix))
        name = f"offered {load:g}x cap" + (f", skewed {skew:g}:1" if skew != 1.0 else "")
        out[name] = {
            "single": summarise([single], args.cap, args.seconds),
            f"cluster x{n}": summarise(cluster, args.cap, args.seconds),
        }
    prefix = f"b{uuid.uuid4().hex[:10]}"
    try:
        kv = run_workers(prefix, n, [0.0] * n, args, kv=True)
    finally:
        asyncio.run(cleanup(prefix))
    lat = [x for r in kv for x in r["lat"]]
    out["kv-counter per order"] = {
        "ops_per_s": round(sum(r["ops"] for r in kv) / 4.0, 1),
        "conflicts": sum(r["conflicts"] for r in kv),
        "p50_ms": round(1000 * statistics.median(lat), 2) if lat else 0.0,
        "p99_ms": round(1000 * pct(lat, 0.99), 2),
    }
    print(json.dumps(out, indent=None if args.json else 2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
