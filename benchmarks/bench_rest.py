"""REST gateways under a burst: does the dispatcher use the global cap and stay inside limits?

10 accounts behind a broker stand-in that REJECTS any request over 18 per second per account
(a strict one-second sliding window, checked at arrival), a global cap of 10 orders/s, and a
burst of 5,000 orders pushed at once. Prints achieved orders/s (against the cap) and the number
of rate-limit rejections.

By default it runs on a virtual clock (the burst takes 500 simulated seconds); ``--clock real``
runs a smaller burst in real time, with real scheduling jitter, through the same code.

    .venv/bin/python -m benchmarks.bench_rest [--orders 5000] [--clock virtual|real]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from collections import deque

from tests.dispatch_support import place_item

from benchmarks.vclock import run_virtual
from hoga.brokers.base import AccountRef, BrokerLimits, BrokerNotProcessed, PlaceAck, PlaceRequest
from hoga.domain.orders import OrderType, Side
from hoga.execution.dispatcher import Dispatcher
from hoga.execution.queue import OrderQueue, QueueItem

ACCOUNTS = 10
ACCOUNT_RATE = 18
GLOBAL_RATE = 10.0


class StandIn:
    """Accepts requests, and refuses (not processed) any that would be the 19th in a second."""

    name = "standin"

    def __init__(self) -> None:
        self.windows: dict[int, deque[float]] = {}
        self.accepted = 0
        self.rejected = 0
        self.first: float | None = None
        self.last = 0.0

    def limits(self, account: AccountRef) -> BrokerLimits:
        return BrokerLimits(rate=ACCOUNT_RATE)

    async def place(self, account: AccountRef, request: PlaceRequest) -> PlaceAck:
        now = asyncio.get_running_loop().time()
        w = self.windows.setdefault(account.account_id, deque())
        while w and w[0] <= now - 1.0:
            w.popleft()
        if len(w) >= ACCOUNT_RATE:
            self.rejected += 1
            raise BrokerNotProcessed("EGW00201 초당 거래건수를 초과하였습니다.", "EGW00201")
        w.append(now)
        self.accepted += 1
        self.first = now if self.first is None else self.first
        self.last = now
        await asyncio.sleep(0.02)  # the broker's answer takes a little while
        return PlaceAck(broker_order_id=request.client_order_id)


async def burst(n: int) -> dict[str, float]:
    queue = OrderQueue()
    broker = StandIn()
    refs = {a: AccountRef(a, a, "standin", "real", str(a)) for a in range(1, ACCOUNTS + 1)}

    async def send(item: QueueItem) -> None:
        req = PlaceRequest(str(item.order_id), "005930", Side.BUY, OrderType.MARKET, 1, None)
        try:
            await broker.place(refs[item.account_id], req)
        except BrokerNotProcessed:
            queue.requeue(item)

    async def lookup(account_id: int) -> AccountRef:
        return refs[account_id]

    d = Dispatcher(queue, send, lookup, global_rate=GLOBAL_RATE)
    d.add_gateway("standin", broker)  # type: ignore[arg-type]
    await d.start()
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    for i in range(n):
        account = 1 + i % ACCOUNTS
        queue.push(place_item(i + 1, at=t0, account=account, gateway="standin"))
    while broker.accepted < n:
        await asyncio.sleep(0.25)
    await d.stop()
    span = (broker.last - (broker.first or t0)) or 1.0
    # n orders over the span between the first and last arrival: n - 1 intervals.
    rate = (n - 1) / span
    return {
        "orders": n,
        "seconds": round(broker.last - t0, 2),
        "orders_per_s": round(rate, 3),
        "share_of_cap": round(rate / GLOBAL_RATE, 4),
        "rate_limit_rejections": broker.rejected,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--orders", type=int, default=None)
    ap.add_argument("--clock", choices=["virtual", "real"], default="virtual")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    n = args.orders or (5000 if args.clock == "virtual" else 300)
    wall = time.perf_counter()
    result = run_virtual(burst(n)) if args.clock == "virtual" else asyncio.run(burst(n))
    result["clock"] = args.clock  # type: ignore[assignment]
    result["wall_seconds"] = round(time.perf_counter() - wall, 2)
    if args.json:
        print(json.dumps(result))
        return 0
    print(
        f"REST gateways: {ACCOUNTS} accounts, stand-in refuses >{ACCOUNT_RATE}/s per account, "
        f"global cap {GLOBAL_RATE:g}/s, burst of {n} ({args.clock} clock)"
    )
    print(
        f"  achieved {result['orders_per_s']} orders/s = {result['share_of_cap']:.1%} of the cap; "
        f"rate-limit rejections: {result['rate_limit_rejections']}; "
        f"burst drained in {result['seconds']} s (wall {result['wall_seconds']} s)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
