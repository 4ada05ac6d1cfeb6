"""Market data across a cluster: ticks/s through NATS to 3 instances x 50 strategies, and
publish-to-callback latency, with one instance without NATS side by side.

Workload (as bench_hub): 100 symbols; per instance 50 strategies (10 users x 5) on 5-10
symbols each, each keeping a 20-tick running mean. Ticks come from the simulated market,
generated before timing starts.

* cluster: this process is the feed owner - a ``ClusterMarket`` holding the feed lease (a
  stand-in lease that is always held), its upstream a simulator feed whose session the ticks
  are pushed into. Three consumer *processes* each run a hub on ``ClusterFeed`` (own NATS
  connection) with their 50 strategies; their demand reaches the owner over NATS exactly as in
  production, so the owner subscribes upstream to the union.
* single: the same ticks into one hub on the local feed in this process (no NATS).

Two phases each: saturated (ticks pushed as fast as the owner can publish them; ticks/s is the
total divided by the time until the slowest instance had its last one) and paced (``--rate``
ticks/s in 1 ms batches; each tick carries its publish time, and every strategy callback
records now - publish time: p50/p99 over all deliveries).

    .venv/bin/python -m benchmarks.bench_cluster_feed [--ticks 60000] [--rate 2000] [--json]

Needs the NATS server (HOGA_TEST_NATS_URL, default nats://127.0.0.1:4222).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

from benchmarks.bench_hub import STRATEGIES, USERS, RunningMean, make_ticks, workload
from hoga.cluster.bus import ClusterBus
from hoga.cluster.marketdata import ClusterMarket
from hoga.cluster.mdsource import ClusterFeed
from hoga.domain.clock import KST, ManualClock, SystemClock
from hoga.domain.market import Tick
from hoga.marketdata.feeds.simulator import SimulatedMarket, SimulatorFeed
from hoga.marketdata.hub import Hub
from hoga.marketdata.universe import Universe, bundled_universe

NATS_URL = os.environ.get("HOGA_TEST_NATS_URL", "nats://127.0.0.1:4222")
INSTANCES = 3
UNIVERSE = Universe(bundled_universe())


class HeldLease:
    """The feed lease, always ours: the benchmark measures the data path, not fail-over."""

    async def try_acquire(self, name: str) -> bool:
        return True

    async def release(self, name: str) -> None:
        return None

    def holds(self, name: str) -> bool:
        return True

    def on_lost(self, callback: Callable[[str], Awaitable[None]]) -> None:
        return None


class Recorder:
    """Per-phase counts and publish-to-callback delays of one instance's strategies."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.ticks = 0
        self.delays: list[float] = []
        self.first = 0.0
        self.last = 0.0

    def wrap(self, strategy: RunningMean) -> Callable[[Tick], None]:
        def on_tick(tick: Tick) -> None:
            strategy.on_tick(tick)
            self.delays.append(time.time() - tick.ts)  # ts: the publish time, stamped

        return on_tick

    def hub_tick(self, tick: Tick) -> None:
        now = time.time()
        if not self.ticks:
            self.first = now
        self.ticks += 1
        self.last = now

    def report(self) -> dict[str, Any]:
        return {"ticks": self.ticks, "first": self.first, "last": self.last, **pcts(self.delays)}


def pcts(delays: list[float]) -> dict[str, Any]:
    if not delays:
        return {"deliveries": 0}
    us = sorted(d * 1e6 for d in delays)
    return {
        "deliveries": len(us),
        "p50_us": round(us[len(us) // 2], 1),
        "p99_us": round(us[int(len(us) * 0.99)], 1),
        "max_us": round(us[-1], 1),
    }


def strategies(instance: int) -> list[tuple[RunningMean, list[str]]]:
    return workload(seed=7 + instance)[1]


# --- consumer process ---------------------------------------------------------------------


async def consumer(prefix: str, index: int) -> None:
    """One instance: a hub on NATS with 50 strategies; phases driven by the owner's markers."""
    bus = ClusterBus(NATS_URL, f"bench-{index}", prefix=prefix)
    await bus.start()
    feed = ClusterFeed(bus, "simulator", period=1.0, settle=0.05)
    hub = Hub(feed, UNIVERSE, SystemClock(), grace=0.0, stale_after=3600)
    await feed.start()
    await hub.start()
    rec = Recorder()
    wanted: set[str] = set()
    for strat, syms in strategies(index):
        hub.subscribe(syms, rec.wrap(strat), owner="bench")
        wanted.update(syms)
    # One more consumer counts the hub's ticks and when they came (for ticks/s).
    hub.subscribe(sorted(wanted), rec.hub_tick, owner="counter")
    done = asyncio.Event()
    phases: asyncio.Queue[dict[str, Any]] = asyncio.Queue()

    async def on_phase(_s: str, data: bytes) -> None:
        await phases.put(json.loads(data))

    await bus.subscribe(bus.subject("bench", "phase"), on_phase)
    await bus.publish(
        bus.subject("bench", "ready", str(index)), json.dumps(sorted(wanted)).encode()
    )
    while not done.is_set():
        msg = await phases.get()
        if msg["phase"] == "quit":
            break
        if msg["phase"] == "begin":
            rec.reset()
            continue
        # "end": wait (bounded) for every tick of our symbols, then report.
        expect = sum(n for s, n in msg["counts"].items() if s in wanted)
        deadline = time.monotonic() + 60
        while rec.ticks < expect and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        out = {"index": index, "expected": expect, **rec.report()}
        await bus.publish(bus.subject("bench", "result", str(index)), json.dumps(out).encode())
    await hub.stop()
    await feed.stop()
    await bus.stop()


# --- owner (this process) -----------------------------------------------------------------


def fresh(ticks: list[Tick]) -> list[Tick]:
    return [
        Tick(t.symbol, t.price, t.volume, 0.0, t.bid, t.ask, t.bid_size, t.ask_size, t.cum_volume)
        for t in ticks
    ]


async def drive(
    deliver: Callable[[Tick], None], ticks: list[Tick], rate: int | None, yield_every: int = 200
) -> float:
    """Push ``ticks`` (stamping ts = publish time); None rate = as fast as possible. Returns
    the wall time of the first push."""
    loop = asyncio.get_running_loop()
    t0 = time.time()
    if rate is None:
        for i, tick in enumerate(ticks):
            tick.ts = time.time()
            deliver(tick)
            if i % yield_every == yield_every - 1:
                await asyncio.sleep(0)  # let the outbox publish
        return t0
    per_ms = max(1, rate // 1000)
    start = loop.time()
    for i in range(0, len(ticks), per_ms):
        wait = start + i / rate - loop.time()
        if wait > 0:
            await asyncio.sleep(wait)
        for tick in ticks[i : i + per_ms]:
            tick.ts = time.time()
            deliver(tick)
    return t0


async def single(ticks: list[Tick], rate: int | None) -> dict[str, Any]:
    """One instance, no NATS: the hub on its local feed, 50 strategies."""
    clock = ManualClock(datetime(2026, 11, 26, 10, 0, tzinfo=KST))
    feed = SimulatorFeed(SimulatedMarket(UNIVERSE, seed=1, clock=clock), ticks_per_second=1)
    hub = Hub(feed, UNIVERSE, clock, grace=0)
    rec = Recorder()
    wanted: set[str] = set()
    for strat, syms in strategies(0):
        hub.subscribe(syms, rec.wrap(strat), owner="bench")
        wanted.update(syms)
    hub.subscribe(sorted(wanted), rec.hub_tick, owner="counter")
    await hub.rebalance()
    (session,) = feed.open_sessions
    deliver = session.on_tick
    t0 = await drive(deliver, ticks, rate)
    rep = rec.report()
    span = max(rep["last"] - t0, 1e-9)
    return {"ticks_per_s": round(rep["ticks"] / span), **rep}


async def cluster(ticks: list[Tick], paced: list[Tick], rate: int, prefix: str) -> dict[str, Any]:
    bus = ClusterBus(NATS_URL, "bench-owner", prefix=prefix)
    await bus.start()
    clock = ManualClock(datetime(2026, 11, 26, 10, 0, tzinfo=KST))
    upstream = SimulatorFeed(SimulatedMarket(UNIVERSE, seed=1, clock=clock), ticks_per_second=1)
    hub = Hub(upstream, UNIVERSE, clock, grace=0)  # this server's own hub: idle here
    cm = ClusterMarket(bus, HeldLease(), hub, clock, source="simulator", period=1.0)
    await cm.start()
    await hub.start()
    ready: dict[int, set[str]] = {}
    results: asyncio.Queue[dict[str, Any]] = asyncio.Queue()

    async def on_ready(subject: str, data: bytes) -> None:
        ready[int(subject.rsplit(".", 1)[1])] = set(json.loads(data))

    async def on_result(_s: str, data: bytes) -> None:
        await results.put(json.loads(data))

    await bus.subscribe(bus.subject("bench", "ready") + ".*", on_ready)
    await bus.subscribe(bus.subject("bench", "result") + ".*", on_result)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "benchmarks.bench_cluster_feed", "--consumer", prefix, str(i)],
            env=env,
        )
        for i in range(INSTANCES)
    ]
    try:
        union: set[str] = set()
        deadline = time.monotonic() + 60
        while len(ready) < INSTANCES or cm.owner.upstream_symbols != union:
            if time.monotonic() > deadline:
                raise RuntimeError("consumers did not come up within 60 s")
            union = set().union(*ready.values()) if ready else set()
            await asyncio.sleep(0.05)
        (session,) = upstream.open_sessions
        out: dict[str, Any] = {"symbols_upstream": len(union)}
        for name, r, src in (("saturated", None, ticks), ("paced", rate, paced)):
            phase = bus.subject("bench", "phase")
            await bus.publish(phase, b'{"phase": "begin"}')
            await bus.flush()
            await asyncio.sleep(0.3)  # every consumer has reset before the first tick
            batch = fresh(src)
            t0 = await drive(session.on_tick, batch, r)
            counts: dict[str, int] = {}
            for t in batch:
                counts[t.symbol] = counts.get(t.symbol, 0) + 1
            await bus.publish(phase, json.dumps({"phase": "end", "counts": counts}).encode())
            reps = [await asyncio.wait_for(results.get(), 90) for _ in range(INSTANCES)]
            delays_p99 = max(x.get("p99_us", 0.0) for x in reps)
            last = max(x["last"] for x in reps)
            got = sum(x["ticks"] for x in reps)
            want = sum(x["expected"] for x in reps)
            out[name] = {
                "ticks": len(batch),
                "ticks_per_s": round(len(batch) / max(last - t0, 1e-9)),
                "delivered": got,
                "expected": want,
                "callbacks": sum(x["deliveries"] for x in reps),
                "p50_us_max": max(x.get("p50_us", 0.0) for x in reps),
                "p99_us_max": delays_p99,
                "per_instance": reps,
            }
        await bus.publish(bus.subject("bench", "phase"), b'{"phase": "quit"}')
        await bus.flush()
        return out
    finally:
        for p in procs:
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
        await hub.stop()
        await cm.stop()
        await bus.stop()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ticks", type=int, default=60_000)
    ap.add_argument("--rate", type=int, default=2_000)
    ap.add_argument("--seconds", type=float, default=5.0, help="length of the paced phase")
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--consumer", nargs=2, metavar=("PREFIX", "INDEX"), help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.consumer:
        asyncio.run(consumer(args.consumer[0], int(args.consumer[1])))
        return 0
    universe, _ = workload()
    ticks = make_ticks(args.ticks, universe)
    paced = ticks[: int(args.rate * args.seconds)]
    one_sat = asyncio.run(single(fresh(ticks), None))
    one_paced = asyncio.run(single(fresh(paced), args.rate))
    prefix = f"bench{uuid.uuid4().hex[:8]}"
    clustered = asyncio.run(cluster(ticks, paced, args.rate, prefix))
    result = {
        "single": {"saturated": one_sat, "paced": one_paced},
        "cluster": clustered,
        "cpus": os.cpu_count(),
        "loadavg": os.getloadavg(),
    }
    if args.json:
        print(json.dumps(result))
        return 0
    c_sat, c_paced = clustered["saturated"], clustered["paced"]
    print(
        f"cluster feed: {len(universe)} symbols; {INSTANCES} instances x {USERS * STRATEGIES} "
        f"strategies (5-10 symbols each); cpus {os.cpu_count()}, "
        f"load {', '.join(f'{x:.1f}' for x in os.getloadavg())}"
    )
    print(
        f"  saturated   one instance, no NATS {one_sat['ticks_per_s']:>8,} ticks/s | "
        f"through NATS to {INSTANCES} {c_sat['ticks_per_s']:>8,} ticks/s "
        f"({c_sat['ticks_per_s'] / one_sat['ticks_per_s']:.2f}x); "
        f"delivered {c_sat['delivered']:,}/{c_sat['expected']:,}"
    )
    print(
        f"  paced {args.rate:,}/s  one instance p50 {one_paced['p50_us']} us p99 "
        f"{one_paced['p99_us']} us | through NATS p50 {c_paced['p50_us_max']} us p99 "
        f"{c_paced['p99_us_max']} us (worst instance; "
        f"{c_paced['p99_us_max'] / max(one_paced['p99_us'], 1e-9):.0f}x); "
        f"delivered {c_paced['delivered']:,}/{c_paced['expected']:,}, "
        f"{c_paced['callbacks']:,} strategy callbacks"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
