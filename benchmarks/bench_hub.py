"""Market-data hub throughput and latency, with vn.py's EventEngine side by side.

Workload: 100 symbols; 50 subscribers (10 users x 5 strategies), each on 5-10 symbols, each
keeping a 20-tick running mean per symbol. Ticks come from the simulated market, generated
before timing starts.

* saturated: ticks pushed through the hub's session path (feed session -> cache -> bars ->
  callbacks) as fast as one core allows; the same ticks through ``vnpy.event.EventEngine``
  (one ``eTick.<symbol>`` event type per symbol, its worker thread calling the handlers);
* latency: 10,000 ticks/s offered in 1 ms batches on the event loop; feed-to-callback delay
  per delivery, p50/p99.

vn.py is not a hoga dependency; install it for the comparison only:
``.venv/bin/pip install --no-deps vnpy`` (``vnpy.event`` needs nothing else).

    .venv/bin/python -m benchmarks.bench_hub [--ticks 500000] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import resource
import sys
import threading
import time
from collections import deque
from datetime import datetime
from typing import Any

from hoga.domain.clock import KST, ManualClock
from hoga.domain.market import Tick
from hoga.marketdata.feeds.simulator import SimulatedMarket, SimulatorFeed
from hoga.marketdata.hub import Hub
from hoga.marketdata.universe import Universe, bundled_universe

USERS, STRATEGIES, SYMBOLS, WINDOW = 10, 5, 100, 20


class RunningMean:
    """One strategy's state: a 20-tick running mean per symbol it follows."""

    __slots__ = ("calls", "sums", "windows")

    def __init__(self) -> None:
        self.windows: dict[str, deque[int]] = {}
        self.sums: dict[str, int] = {}
        self.calls = 0

    def on_tick(self, tick: Tick) -> None:
        self.calls += 1
        w = self.windows.get(tick.symbol)
        if w is None:
            w = self.windows[tick.symbol] = deque()
            self.sums[tick.symbol] = 0
        w.append(tick.price)
        total = self.sums[tick.symbol] + tick.price
        if len(w) > WINDOW:
            total -= w.popleft()
        self.sums[tick.symbol] = total

    def mean(self, symbol: str) -> float:
        w = self.windows[symbol]
        return self.sums[symbol] / len(w)


def workload(seed: int = 7) -> tuple[list[str], list[tuple[RunningMean, list[str]]]]:
    universe = [i.symbol for i in bundled_universe()][:SYMBOLS]
    rng = random.Random(seed)
    subs = [
        (RunningMean(), rng.sample(universe, rng.randint(5, 10))) for _ in range(USERS * STRATEGIES)
    ]
    return universe, subs


def throughput(ticks: int, callbacks: int, elapsed: float) -> dict[str, Any]:
    return {
        "ticks": ticks,
        "seconds": round(elapsed, 3),
        "ticks_per_s": round(ticks / elapsed),
        "callbacks": callbacks,
        "callbacks_per_s": round(callbacks / elapsed),
    }


def make_ticks(n: int, symbols: list[str]) -> list[Tick]:
    clock = ManualClock(datetime(2026, 11, 26, 10, 0, tzinfo=KST))
    market = SimulatedMarket(
        Universe([i for i in bundled_universe() if i.symbol in set(symbols)]), seed=1, clock=clock
    )
    out = []
    for _ in range(n):
        clock.advance(0.0001)
        out.append(market.step())
    return out


async def hoga_saturated(ticks: list[Tick]) -> dict[str, Any]:
    _, subs = workload()
    clock = ManualClock(datetime(2026, 11, 26, 10, 0, tzinfo=KST))
    market = SimulatedMarket(Universe(bundled_universe()), seed=1, clock=clock)
    feed = SimulatorFeed(market, ticks_per_second=1)
    hub = Hub(feed, Universe(bundled_universe()), clock, grace=0)
    for sub, syms in subs:
        hub.subscribe(syms, sub.on_tick, owner="bench")
    await hub.rebalance()
    (session,) = feed.open_sessions
    deliver = session.on_tick
    t0 = time.perf_counter()
    for tick in ticks:
        deliver(tick)
    elapsed = time.perf_counter() - t0
    return throughput(len(ticks), sum(s.calls for s, _ in subs), elapsed)


def vnpy_saturated(ticks: list[Tick]) -> dict[str, Any] | None:
    try:
        from vnpy.event import Event, EventEngine
    except ImportError:
        return None
    _, subs = workload()
    # interval=1: stop() joins the timer thread, which sleeps a whole interval between timer
    # events; a long interval would make stop() hang for that long.
    engine = EventEngine(interval=1)
    done = threading.Event()
    remaining = [len(ticks)]
    for sub, syms in subs:
        handler = (lambda s: lambda event: s.on_tick(event.data))(sub)
        for sym in syms:
            engine.register("eTick." + sym, handler)

    def countdown(event: Any) -> None:
        if not event.type.startswith("eTick."):
            return  # the engine's own timer events
        remaining[0] -= 1
        if remaining[0] == 0:
            done.set()

    engine.register_general(countdown)
    engine.start()
    t0 = time.perf_counter()
    put = engine.put
    for tick in ticks:
        put(Event("eTick." + tick.symbol, tick))
    done.wait(600)
    elapsed = time.perf_counter() - t0
    engine.stop()
    return throughput(len(ticks), sum(s.calls for s, _ in subs), elapsed)


async def hoga_latency(ticks: list[Tick], rate: int, seconds: float) -> dict[str, Any]:
    _, subs = workload()
    clock = ManualClock(datetime(2026, 11, 26, 10, 0, tzinfo=KST))
    feed = SimulatorFeed(
        SimulatedMarket(Universe(bundled_universe()), seed=1, clock=clock), ticks_per_second=1
    )
    hub = Hub(feed, Universe(bundled_universe()), clock, grace=0)
    delays: list[float] = []
    emitted: dict[int, float] = {}

    def timed(sub: RunningMean) -> Any:
        def on_tick(tick: Tick) -> None:
            sub.on_tick(tick)
            delays.append(time.perf_counter() - emitted[id(tick)])

        return on_tick

    for sub, syms in subs:
        hub.subscribe(syms, timed(sub), owner="bench")
    await hub.rebalance()
    (session,) = feed.open_sessions
    deliver = session.on_tick
    loop = asyncio.get_running_loop()
    per_ms = rate // 1000
    n = int(rate * seconds)
    start = loop.time()
    i = 0
    while i < n:
        due = start + i / rate
        wait = due - loop.time()
        if wait > 0:
            await asyncio.sleep(wait)
        for tick in ticks[i % len(ticks) : i % len(ticks) + per_ms]:
            emitted[id(tick)] = time.perf_counter()
            deliver(tick)
        i += per_ms
    delays.sort()
    us = [d * 1e6 for d in delays]
    return {
        "offered_per_s": rate,
        "deliveries": len(us),
        "p50_us": round(us[len(us) // 2], 1),
        "p99_us": round(us[int(len(us) * 0.99)], 1),
        "max_us": round(us[-1], 1),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ticks", type=int, default=500_000)
    ap.add_argument("--latency-seconds", type=float, default=5.0)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    universe, _ = workload()
    ticks = make_ticks(args.ticks, universe)
    hoga = asyncio.run(hoga_saturated(ticks))
    vn = vnpy_saturated(ticks)
    lat = asyncio.run(hoga_latency(ticks, 10_000, args.latency_seconds))
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    result = {"hoga": hoga, "vnpy": vn, "latency": lat, "max_rss_mb": round(rss, 1)}
    if args.json:
        print(json.dumps(result))
        return 0
    print(
        f"hub: {SYMBOLS} symbols, {USERS * STRATEGIES} subscribers on 5-10 symbols each, 20-tick running means"
    )
    print(
        f"  hoga hub     {hoga['ticks_per_s']:>9,} ticks/s  ({hoga['callbacks_per_s']:,} callbacks/s, one core)"
    )
    if vn:
        print(
            f"  vn.py engine {vn['ticks_per_s']:>9,} ticks/s  ({vn['callbacks_per_s']:,} callbacks/s)  "
            f"-> hoga is {hoga['ticks_per_s'] / vn['ticks_per_s']:.1f}x"
        )
    else:
        print("  vn.py engine not installed (.venv/bin/pip install --no-deps vnpy) - skipped")
    print(
        f"  latency at {lat['offered_per_s']:,} ticks/s offered: p50 {lat['p50_us']} us, p99 {lat['p99_us']} us, "
        f"max {lat['max_us']} us over {lat['deliveries']:,} deliveries"
    )
    print(
        f"  peak RSS of the benchmark process: {result['max_rss_mb']} MB (includes the pre-generated ticks)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
