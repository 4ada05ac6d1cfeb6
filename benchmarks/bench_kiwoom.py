"""Kiwoom adapter benchmark: the adapter against the in-process Kiwoom fake over loopback.

Prints, for this machine:

* order round trip (``place`` -> HTTP -> fake -> answer): p50/p99/max and orders per second,
  one at a time and with 8 in flight, limits lifted so the wire itself is measured;
* realtime: ticks per second from the fake's matching engine to a hub-style consumer over the
  WebSocket (``0B``/``0D`` frames decoded into ``Tick``), for 40 registered symbols;
* decoding alone: type-00 execution notices -> events, and 0B frames -> ticks, per second;
* memory: tracemalloc peak for tracking 10,000 order chains.

    .venv/bin/python -m benchmarks.bench_kiwoom [--orders 400] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sys
import time
import tracemalloc
from datetime import datetime
from typing import Any

from tests.helpers import eventually

from hoga.brokers.base import AccountRef, MemoryTokenStore, PlaceRequest
from hoga.brokers.kiwoom import (
    ClientOptions,
    FeedCredentials,
    KiwoomBroker,
    KiwoomFeed,
    Timeouts,
)
from hoga.brokers.kiwoom.feed import KiwoomFeedSession
from hoga.brokers.kiwoom.tracking import OrderTracker
from hoga.domain import krx
from hoga.domain.clock import KST, ManualClock, SystemClock
from hoga.domain.market import Tick
from hoga.domain.orders import OrderType, Side
from hoga.domain.secret import Secret
from hoga.fakes import FakeAccount, FakeOptions
from hoga.fakes.kiwoom import KiwoomFake
from hoga.marketdata.universe import bundled_universe

KEY, SECRET, ACCOUNT = "BENCHKEY00000001", "BENCHSECRET000001", "5012345601"


def pct(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, max(0, round(p / 100 * len(xs)) - 1))]


def _rate(n: int, seconds: float, lat: list[float]) -> dict[str, Any]:
    """Orders per second and latency percentiles (ms) of ``n`` orders in ``seconds``."""
    return {
        "orders": n,
        "per_s": round(n / seconds, 1),
        "p50_ms": round(pct(lat, 50), 2),
        "p99_ms": round(pct(lat, 99), 2),
    }


async def order_round_trip(n: int) -> dict[str, Any]:
    fake = KiwoomFake(
        FakeOptions(broker="kiwoom", accounts=[FakeAccount(ACCOUNT, KEY, SECRET, 10**13)]),
        rate=100_000,
    )
    url = await fake.start()
    broker = KiwoomBroker(
        clock=SystemClock(),
        token_store=MemoryTokenStore(),
        options=ClientOptions(rate=100_000, margin=0.0, timeouts=Timeouts(order=10, query=10)),
    )
    await broker.start()
    ref = AccountRef(1, 1, "kiwoom", "mock", ACCOUNT, Secret(KEY), Secret(SECRET), base_url=url)
    out: dict[str, Any] = {}
    try:
        await broker.test_connection(ref)
        inst = fake.market.instrument("005930")
        assert inst is not None
        price = krx.round_to_tick(int(inst.base_price * 0.8), inst.kind)

        def req(i: int) -> PlaceRequest:
            return PlaceRequest(f"b{i}", "005930", Side.BUY, OrderType.LIMIT, 1, price)

        lat: list[float] = []
        t0 = time.perf_counter()
        for i in range(n):
            s = time.perf_counter()
            await broker.place(ref, req(i))
            lat.append((time.perf_counter() - s) * 1000)
        serial = time.perf_counter() - t0
        out["serial"] = {**_rate(n, serial, lat), "max_ms": round(max(lat), 2)}
        lat2: list[float] = []
        sem = asyncio.Semaphore(8)

        async def one(i: int) -> None:
            async with sem:
                s = time.perf_counter()
                await broker.place(ref, req(n + i))
                lat2.append((time.perf_counter() - s) * 1000)

        t0 = time.perf_counter()
        await asyncio.gather(*(one(i) for i in range(n)))
        par = time.perf_counter() - t0
        out["inflight_8"] = _rate(n, par, lat2)
    finally:
        await broker.stop()
        await fake.stop()
    return out


async def realtime_ticks(steps: int) -> dict[str, Any]:
    fake = KiwoomFake(
        FakeOptions(broker="kiwoom", accounts=[FakeAccount(ACCOUNT, KEY, SECRET)]), rate=1000
    )
    url = await fake.start()
    clock = SystemClock()
    broker = KiwoomBroker(
        clock=clock, token_store=MemoryTokenStore(), options=ClientOptions(rate=1000)
    )
    await broker.start()
    feed = KiwoomFeed(
        broker.wire, [FeedCredentials(Secret(KEY), Secret(SECRET), "mock", url)], clock=clock
    )
    got: list[Tick] = []
    closed: list[Any] = []
    symbols = [i.symbol for i in bundled_universe()[:40]]
    target = [0]
    arrived = asyncio.Event()

    def on_tick(tick: Tick) -> None:
        got.append(tick)
        if target[0] and len(got) >= target[0]:
            arrived.set()

    try:
        session = await feed.open_session(on_tick, lambda s, e: closed.append(e))
        await session.subscribe(symbols)

        async def registered() -> bool:
            return len(fake.registrations(KEY).get("0B", ())) >= len(symbols)

        await eventually(registered, 10, "the registration to complete", pause=0.01)
        universe = len(bundled_universe())
        expected = 0
        t0 = time.perf_counter()
        for _ in range(steps // 100):
            for tick in fake.pump(100):
                expected += 2 if tick.symbol in symbols else 0
            await asyncio.sleep(0)
        # Book frames before a symbol's first trade carry no price and give no tick.
        target[0] = int(expected * 0.99)
        if len(got) >= target[0]:
            arrived.set()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(arrived.wait(), 30)
        elapsed = time.perf_counter() - t0
        return {
            "market_steps": steps,
            "universe": universe,
            "symbols": len(symbols),
            "frames_expected": expected,
            "ticks_delivered": len(got),
            "ticks_per_s": round(len(got) / elapsed, 1),
        }
    finally:
        await feed.close()
        await broker.stop()
        await fake.stop()


def decode_rates(n: int) -> dict[str, Any]:
    clock = ManualClock(datetime(2026, 11, 26, 10, 0, tzinfo=KST))
    tracker = OrderTracker(1, clock)
    frames = []
    for i in range(n):
        no = f"{i + 1:07d}"
        base = {
            "9201": ACCOUNT,
            "9203": no,
            "9001": "A005930",
            "905": "+매수",
            "906": "보통",
            "907": "2",
            "900": "10",
            "901": "70000",
            "904": "0000000",
            "908": "100001",
        }
        frames.append({**base, "913": "접수", "902": "10"})
        frames.append(
            {**base, "913": "체결", "902": "0", "911": "10", "915": "10", "914": "+70000"}
        )
    t0 = time.perf_counter()
    events = sum(len(tracker.on_order_frame(f)) for f in frames)
    notices = time.perf_counter() - t0

    class _Feed:
        symbols_per_session = 10

        def ts(self, hms: Any) -> float:
            return 0.0

    ticks: list[Tick] = []
    session = KiwoomFeedSession(_Feed(), "b", None, None, ticks.append, lambda s, e: None)  # type: ignore[arg-type]
    session._symbols.add("005930")
    trade = {"20": "100001", "10": "+70100", "11": "+600", "15": "+12", "13": "123456"}
    trade |= {"27": "+70200", "28": "+70100"}
    t0 = time.perf_counter()
    for _ in range(n):
        session.on_real("0B", "005930", trade)
    frames_time = time.perf_counter() - t0
    return {
        "notices_per_s": round(len(frames) / notices),
        "events": events,
        "trade_frames_per_s": round(n / frames_time),
    }


def chain_memory(n: int) -> dict[str, Any]:
    clock = ManualClock(datetime(2026, 11, 26, 10, 0, tzinfo=KST))
    tracemalloc.start()
    tracker = OrderTracker(1, clock)
    for i in range(n):
        p = tracker.expect(PlaceRequest(f"c{i}", "005930", Side.BUY, OrderType.LIMIT, 5, 70000))
        tracker.placed(p, f"{i + 1:07d}")
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return {"chains": n, "peak_kib": round(peak / 1024), "bytes_per_chain": round(peak / n)}


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--orders", type=int, default=400)
    ap.add_argument("--steps", type=int, default=20_000)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    results = {
        "order_round_trip": asyncio.run(order_round_trip(args.orders)),
        "realtime": asyncio.run(realtime_ticks(args.steps)),
        "decode": decode_rates(50_000),
        "memory": chain_memory(10_000),
    }
    if args.json:
        print(json.dumps(results, indent=2))
        return 0
    rt = results["order_round_trip"]
    print("order round trip (adapter -> loopback HTTP -> fake), limits lifted")
    for name, r in rt.items():
        print(f"  {name:<11} {r['per_s']:>8} orders/s  p50 {r['p50_ms']} ms  p99 {r['p99_ms']} ms")
    r = results["realtime"]
    print(
        f"realtime: {r['ticks_delivered']}/{r['frames_expected']} ticks for {r['symbols']} "
        f"symbols, {r['ticks_per_s']} ticks/s through the WebSocket"
    )
    d = results["decode"]
    print(
        f"decoding: {d['notices_per_s']:,} execution notices/s, "
        f"{d['trade_frames_per_s']:,} trade frames/s"
    )
    m = results["memory"]
    print(f"memory: {m['peak_kib']} KiB for {m['chains']} chains ({m['bytes_per_chain']} B each)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
