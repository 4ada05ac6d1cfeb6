"""The brokers' pacer (KIS and Kiwoom alike): however requests are delayed on the way, the broker never counts more
than ``rate`` arrivals in any window."""

from __future__ import annotations

import asyncio
import random

import pytest

from hoga.brokers.pacing import Pacer
from tests.dispatch_support import max_in_window


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


@pytest.mark.parametrize("seed", [1, 2, 3])
async def test_the_pacer_bounds_arrivals_whatever_the_latency(seed: int) -> None:
    """Requests arrive at the broker at any moment between leaving and being answered; no
    window of the broker's length may ever see more than the limit."""
    rng = random.Random(seed)
    window, limit = 0.05, 3
    pacer = Pacer(limit, window, margin=0.0)
    loop = asyncio.get_running_loop()
    arrivals: list[float] = []

    async def call() -> None:
        async with pacer.slot():
            left = loop.time()
            latency = rng.uniform(0.0, 0.03)
            await asyncio.sleep(latency)
            arrivals.append(left + rng.uniform(0.0, latency))

    await asyncio.gather(*(call() for _ in range(24)))
    arrivals.sort()
    for i, start in enumerate(arrivals):
        inside = [a for a in arrivals[i:] if a < start + window]
        assert len(inside) <= limit
    assert pacer.calls == 24
