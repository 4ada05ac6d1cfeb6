"""KIS adapter benchmark against the local KIS fake over loopback.

1. Orders: ``--orders`` limit orders from concurrent callers through one real-environment app
   key (18 requests/s). Prints achieved orders/s, p50/p99/max time per ``place`` (pacing wait
   included), and the fake's busiest one-second window and rate-limit rejections (must be 0).
2. Notices: time from the fake booking a fill to the ``FillEvent`` reaching the sink
   (WebSocket + AES decryption + parsing), p50/p99.
3. Feed decoding: H0STCNT0 records per second through frame parsing and ``Tick`` building,
   and the peak memory it allocates.

    .venv/bin/python -m benchmarks.bench_kis [--orders 90] [--records 50000] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
import tracemalloc
from typing import Any

from hoga.brokers.base import (
    AccountRef,
    BrokerNotProcessed,
    ExecutionEvent,
    FillEvent,
    MemoryTokenStore,
    PlaceRequest,
)
from hoga.brokers.kis import KisBroker, KisFeed, wire
from hoga.brokers.kis.feed import KisFeedSession
from hoga.domain import krx
from hoga.domain.clock import SystemClock
from hoga.domain.orders import OrderType, Side
from hoga.domain.secret import Secret
from hoga.fakes.kis import KisFake, KisFakeAccount, frames

KEY, SECRET, ACCOUNT = "PSbench" + "k" * 29, "bench" + "s" * 175, "50123456-01"


def pct(values: list[float], p: float) -> float:
    if not values:
        return 0.0
    s = sorted(values)
    return s[min(len(s) - 1, round(p / 100 * (len(s) - 1)))]


async def orders_and_notices(n: int) -> dict[str, Any]:
    fake = KisFake(
        env="real", accounts=[KisFakeAccount(ACCOUNT, KEY, SECRET, hts_id="bench")], seed=2
    )
    await fake.start()
    fake.pump(300)
    clock = SystemClock()
    broker = KisBroker(clock, MemoryTokenStore())
    arrived: list[float] = []

    async def sink(account_id: int, event: ExecutionEvent) -> None:
        if isinstance(event, FillEvent):
            arrived.append(time.perf_counter())

    broker.set_event_sink(sink)
    await broker.start()
    ref = AccountRef(
        1,
        1,
        "kis",
        "real",
        ACCOUNT,
        Secret(KEY),
        Secret(SECRET),
        "bench",
        fake.base_url,
        fake.ws_url,
    )
    try:
        await broker.attach(ref)
        await broker.balance(ref)  # token issued outside the timed part
        key = broker.key(ref)
        for _ in range(1000):
            if key.socket.registrations:
                break
            await asyncio.sleep(0.01)
        inst = fake.market.instrument("034220")
        assert inst is not None
        lower, _ = krx.price_limits(inst.base_price, inst.kind)
        latencies: list[float] = []

        handed_back = 0

        async def one(i: int) -> None:
            nonlocal handed_back
            t0 = time.perf_counter()
            while True:
                try:
                    await broker.place(
                        ref, PlaceRequest(f"b{i}", "034220", Side.BUY, OrderType.LIMIT, 1, lower)
                    )
                    break
                except BrokerNotProcessed:
                    # Queued past the adapter's wait behind this key's other calls: nothing was
                    # sent, so send again as the dispatcher would.
                    handed_back += 1
            latencies.append(time.perf_counter() - t0)

        t0 = time.perf_counter()
        await asyncio.gather(*(one(i) for i in range(n)))
        elapsed = time.perf_counter() - t0

        # Notices: market buys that fill at once; measure booking -> sink.
        notice_lat: list[float] = []
        for i in range(40):
            arrived.clear()
            await broker.place(
                ref, PlaceRequest(f"m{i}", "005930", Side.BUY, OrderType.MARKET, 1, None)
            )
            booked = time.perf_counter()
            for _ in range(500):
                if arrived:
                    break
                await asyncio.sleep(0.0005)
            if arrived:
                notice_lat.append(arrived[0] - booked)
        return {
            "orders": n,
            "orders_per_s": round(n / elapsed, 2),
            "place_p50_ms": round(pct(latencies, 50) * 1000, 1),
            "place_p99_ms": round(pct(latencies, 99) * 1000, 1),
            "place_max_ms": round(max(latencies) * 1000, 1),
            "handed_back_not_sent": handed_back,
            "broker_busiest_window": fake.max_in_window[KEY],
            "broker_rate_limit_rejections": fake.rate_limited[KEY],
            "notice_to_event_p50_ms": round(pct(notice_lat, 50) * 1000, 2),
            "notice_to_event_p99_ms": round(pct(notice_lat, 99) * 1000, 2),
        }
    finally:
        await broker.stop()
        await fake.stop()


def feed_decoding(records: int) -> dict[str, Any]:
    fake = KisFake(env="real", seed=4)
    ticks = [fake.market.step() for _ in range(2000)]
    texts = []
    for t in ticks:
        stats = {"open": t.price, "high": t.price, "low": t.price, "amount": t.price * t.volume}
        texts.append(
            frames.frame("H0STCNT0", [frames.trade_record(t, "stock", stats)], frames.TRADE_LAYOUT)
        )
    feed = KisFeed(KisBroker(SystemClock(), MemoryTokenStore()), SystemClock(), account_ids=[])
    got: list[object] = []
    session = KisFeedSession(feed, None, "bench", got.append, lambda s, e: None)  # type: ignore[arg-type]
    session._symbols.update(t.symbol for t in ticks)
    width = len(wire.TRADE_FIELDS)

    def run(n: int) -> int:
        done = 0
        while done < n:
            for text in texts:
                parsed = wire.parse_frame(text)
                assert parsed is not None
                for rec in wire.records(parsed[3], parsed[2], width):
                    session.on_trade(rec)
                done += 1
                if done >= n:
                    break
            got.clear()
        return done

    t0 = time.perf_counter()
    done = run(records)
    elapsed = time.perf_counter() - t0
    # Memory separately: tracemalloc slows every allocation down.
    tracemalloc.start()
    run(min(records, 5000))
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return {
        "records": done,
        "records_per_s": int(done / elapsed),
        "us_per_record": round(elapsed / done * 1e6, 2),
        "peak_alloc_kib": round(peak / 1024, 1),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--orders", type=int, default=90)
    ap.add_argument("--records", type=int, default=50_000)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    result = {
        "orders_and_notices": asyncio.run(orders_and_notices(args.orders)),
        "feed_decoding": feed_decoding(args.records),
    }
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    for section, figures in result.items():
        print(f"{section}:")
        for k, v in figures.items():
            print(f"  {k:32} {v}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
