"""The Kiwoom pacer: however requests are delayed on the way, the broker never counts more
than ``rate`` arrivals in any window."""

from __future__ import annotations

import asyncio
import random

from hoga.brokers.kiwoom.client import Pacer


def max_in_window(times: list[float], window: float) -> int:
    times = sorted(times)
    best, j = 0, 0
    for i, t in enumerate(times):
        while times[j] <= t - window:
            j += 1
        best = max(best, i - j + 1)
    return best


async def test_arrivals_stay_inside_the_limit_whatever_the_delays() -> None:
    rng = random.Random(42)
    pacer = Pacer(3, window=0.1)
    loop = asyncio.get_running_loop()
    arrivals: list[float] = []
    sends: list[float] = []

    async def request() -> None:
        # A slow first leg and a fast second one (or the reverse) is what bunches requests up.
        latency = rng.choice([0.0, 0.002, 0.03, 0.06])
        share = rng.random()
        await pacer.acquire()
        try:
            sends.append(loop.time())
            await asyncio.sleep(latency * share)
            arrivals.append(loop.time())  # the broker counts it here
            await asyncio.sleep(latency * (1 - share))
        finally:
            pacer.release()

    await asyncio.gather(*(request() for _ in range(30)))
    assert len(arrivals) == 30
    assert max_in_window(arrivals, 0.1) <= 3
    assert max_in_window(sends, 0.1) <= 3
    assert pacer.inflight == 0


async def test_a_free_budget_does_not_wait() -> None:
    pacer = Pacer(5, window=1.0)
    loop = asyncio.get_running_loop()
    start = loop.time()
    for _ in range(5):
        await pacer.acquire()
        pacer.release()
    assert loop.time() - start < 0.5
    assert pacer.waited == 0.0
