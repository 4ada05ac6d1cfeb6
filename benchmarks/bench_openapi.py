"""Kiwoom OpenAPI+ on real processes: hoga's dispatcher → the kiwoom_openapi adapter → a
hoga-bridge process → worker processes with the fake control, on the wall clock.

The original specification's scenario: 10 users (2 premium), 60 orders/min offered (Poisson),
5% URGENT; one login at a time (``--pool-size 1``) and a user switch that costs
``--switch`` seconds (the fake control's login delay; the real switch is measured and shown).
The same arrivals are then run through the virtual-clock scheduler benchmark
(``bench_scheduler.simulate``, same policy code), and both are printed side by side: served %
(sent within the run; and after ``--drain`` seconds more), p50/p95/max wait by priority (from
entering the queue to being sent), switches per minute. Goals: ≥ 99% served, URGENT p95 ≤ 5 s,
VIP p95 ≤ 10 s, NORMAL p95 ≤ 40 s.

    .venv/bin/python -m benchmarks.bench_openapi [--minutes 3] [--switch 3] [--seed 1]
        [--pool-size 1] [--rate 60] [--urgent-share 0.05] [--drain 60] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import sys
import tempfile
from pathlib import Path
from typing import Any

from tests.dispatch_support import place_item
from tests.openapi_support import launch_bridge, stop_process

from benchmarks.bench_scheduler import PREMIUM, USERS, Result, arrivals, simulate
from hoga.brokers.base import (
    AccountRef,
    BrokerError,
    BrokerOutcomeUnknown,
    PlaceRequest,
)
from hoga.brokers.kiwoom_openapi import KiwoomOpenApiBroker
from hoga.domain.clock import SystemClock
from hoga.domain.orders import OrderType, Side
from hoga.domain.secret import Secret
from hoga.execution.dispatcher import Dispatcher
from hoga.execution.queue import OrderQueue, QueueItem
from hoga.execution.scheduling import HogaSessionPolicy, SeedSessionPolicy

TOKEN = "bench-bridge-token-0123456789"
SYMBOLS = ["005930", "000660", "035420", "051910", "005380"]


def account_no(user: int) -> str:
    return f"50{user:06d}11"


async def start_bridge(tmp: Path, switch: float, pool_size: int) -> tuple[Any, int]:
    users = {f"u{u:02d}": [account_no(u)] for u in range(1, USERS + 1)}
    settings = {
        "state_dir": str(tmp / "state"),
        "login_delay": switch,
        "users": users,
        "fill_delay": 0.02,
        "tick_interval": 0.5,
    }
    return await launch_bridge(
        settings, tmp / "fake.json", token=TOKEN, pool_size=pool_size, allow_faults=False, within=60
    )


async def run_live(args: argparse.Namespace) -> tuple[Result, dict[str, Any]]:
    arr = arrivals(args.rate, args.minutes, args.seed, args.urgent_share)
    res = Result("live", args.rate, args.minutes, offered=len(arr))
    late: list[float] = []
    outcomes: dict[str, int] = {}
    with tempfile.TemporaryDirectory(prefix="bench-openapi-") as tmpdir:
        proc, port = await start_bridge(Path(tmpdir), args.switch, args.pool_size)
        broker = KiwoomOpenApiBroker(clock=SystemClock(), switch_cost=args.switch)
        refs = {
            u: AccountRef(
                account_id=u,
                user_id=u,
                broker="kiwoom_openapi",
                env="mock",
                account_no=account_no(u),
                app_key=Secret(f"u{u:02d}"),
                app_secret=Secret(TOKEN),
                base_url=f"ws://127.0.0.1:{port}",
            )
            for u in range(1, USERS + 1)
        }
        loop = asyncio.get_running_loop()
        queue = OrderQueue(max_wait=30.0)
        t0 = 0.0
        end = 0.0

        async def send(item: QueueItem) -> None:
            now = loop.time()
            wait = now - item.enqueued_at
            if now <= end:
                res.served += 1
                res.waits[item.priority.name.lower()].append(wait)
            else:
                late.append(wait)
            request = PlaceRequest(
                client_order_id=f"b{item.order_id}",
                symbol=SYMBOLS[item.order_id % len(SYMBOLS)],
                side=Side.BUY,
                type=OrderType.MARKET,
                qty=1,
                price=None,
            )
            try:
                await broker.place(refs[item.account_id], request)
                outcome = "accepted"
            except BrokerOutcomeUnknown:
                outcome = "unknown"
            except BrokerError as e:
                outcome = e.code
            outcomes[outcome] = outcomes.get(outcome, 0) + 1

        async def ref_lookup(account_id: int) -> AccountRef | None:
            return refs.get(account_id)

        dispatcher = Dispatcher(queue, send, ref_lookup, global_rate=10.0, time_slice=30.0)
        dispatcher.add_gateway("kiwoom_openapi", broker)  # type: ignore[arg-type]
        await broker.start()
        try:
            for ref in refs.values():
                await broker.attach(ref)
            await dispatcher.start()
            t0 = loop.time()
            end = t0 + args.minutes * 60
            for i, (at, user, pr) in enumerate(arr):
                delay = t0 + at - loop.time()
                if delay > 0:
                    await asyncio.sleep(delay)
                at = loop.time()
                queue.push(place_item(i + 1, pr, at, account=user, gateway="kiwoom_openapi"))
            await asyncio.sleep(max(0.0, end - loop.time()))
            drain_until = loop.time() + args.drain
            while queue.size("kiwoom_openapi") and loop.time() < drain_until:
                await asyncio.sleep(0.2)
            gw = dispatcher.status()["gateways"]["kiwoom_openapi"]
            pool = broker.client(refs[1]).pool
            pool_now = (await broker.client(refs[1]).request("status"))["pool"]
        finally:
            await dispatcher.stop()
            await broker.stop()
            await stop_process(proc, 15)
    res.switches = int(gw["switches"])
    extra = {
        "served_after_drain": res.served + len(late),
        "aborted_switches": gw.get("aborted_switches", 0),
        "bridge_switch_seconds_p50": pool_now.get("switch_seconds_p50"),
        "bridge_switch_seconds_max": pool_now.get("switch_seconds_max"),
        "bridge_switches": pool_now.get("switches"),
        "outcomes": outcomes,
        "pool_size": pool.get("size"),
    }
    return res, extra


def virtual(args: argparse.Namespace) -> list[Result]:
    arr = arrivals(args.rate, args.minutes, args.seed, args.urgent_share)
    hoga = HogaSessionPolicy(
        OrderQueue(max_wait=30.0), "sim", time_slice=30.0, preload=args.pool_size >= 2
    )
    return [
        simulate(SeedSessionPolicy(), arr, args.minutes, args.rate),
        simulate(hoga, arr, args.minutes, args.rate),
    ]


def row(name: str, r: dict[str, Any], after_drain: int | None = None) -> str:
    served = float(r["served_share"]) * 100
    drained = f"{after_drain / r['offered'] * 100:>6.1f}%" if after_drain is not None else "      -"
    line = f"{name:<16} {r['offered']:>7} {served:>7.1f}% {drained} {r['switches_per_min']:>7}"
    for cls in ("urgent", "vip", "normal"):
        c = r[cls]
        line += f" | {c['p50']:>6} {c['p95']:>6} {c['max']:>6}"
    return line


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, default=3.0)
    ap.add_argument("--switch", type=float, default=3.0, help="login delay of the fake (s)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--pool-size", type=int, default=1)
    ap.add_argument("--rate", type=float, default=60.0, help="orders/min offered")
    ap.add_argument("--urgent-share", type=float, default=0.05)
    ap.add_argument("--drain", type=float, default=60.0, help="seconds allowed after the run")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    live, extra = asyncio.run(run_live(args))
    rows = [r.summary() for r in virtual(args)]
    summary = live.summary()
    if args.json:
        print(json.dumps({"live": {**summary, **extra}, "virtual": rows}, indent=2))
        return 0
    print(
        f"Kiwoom OpenAPI+ through hoga-bridge: {USERS} users ({len(PREMIUM)} premium), "
        f"{args.rate:g} orders/min, {args.urgent_share:.0%} urgent, pool of {args.pool_size} "
        f"login(s), switch {args.switch:g} s (fake login delay), {args.minutes:g} min wall clock, "
        f"seed {args.seed}"
    )
    hdr = f"{'run':<16} {'offered':>7} {'served':>8} {'+drain':>7} {'sw/min':>7}"
    for cls in ("urgent", "vip", "normal"):
        hdr += f" | {cls + ' p50/p95/max':>20}"
    print(hdr)
    print(row("live (processes)", summary, int(extra["served_after_drain"])))
    for r in rows:
        print(row(f"virtual {r['policy']}", r))
    p50, pmax = extra["bridge_switch_seconds_p50"], extra["bridge_switch_seconds_max"]
    if isinstance(p50, float) and isinstance(pmax, float):
        print(
            f"measured switch at the bridge: p50 {p50:.2f} s, max {pmax:.2f} s over "
            f"{extra['bridge_switches']} switches; {extra['aborted_switches']} switch(es) "
            f"abandoned for URGENT; order outcomes {extra['outcomes']}"
        )
    goals = (
        float(summary["served_share"]) >= 0.99,
        _p95(summary, "urgent") <= 5,
        _p95(summary, "vip") <= 10,
        _p95(summary, "normal") <= 40,
    )
    print("goals (served ≥ 99%, URGENT ≤ 5 s, VIP ≤ 10 s, NORMAL ≤ 40 s):", goals)
    return 0


def _p95(summary: dict[str, Any], cls: str) -> float:
    value = summary[cls]["p95"]
    return math.inf if value != value else float(value)


if __name__ == "__main__":
    sys.exit(main())
