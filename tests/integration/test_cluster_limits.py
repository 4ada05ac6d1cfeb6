"""Limits hold across the servers of a cluster (issue 18, "Events and limits cluster-wide").

Two servers' worth of each seam, each on its own connection to a real NATS (one process, two
``ClusterBus`` with this test's prefix): the global order cap and a user's API budget are
shared, a lock-out spreads, and a late server learns the locks already in place.
"""

from __future__ import annotations

import asyncio
import bisect
import math
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from hoga.api.deps import ApiBudget
from hoga.cluster import quotamath as qm
from hoga.cluster.limits import SharedApiBudget
from hoga.cluster.quota import QuotaLedger, SharedQuota
from hoga.cluster.throttle import ReplicatedThrottle
from hoga.domain.clock import SystemClock
from hoga.domain.errors import LimitExceeded
from hoga.security.throttle import LoginThrottle
from tests.cluster_support import Buses, buses
from tests.helpers import eventually


def worst_window(times: list[float], window: float) -> int:
    """The most events in any half-open window [t, t + window)."""
    times = sorted(times)
    return max((bisect.bisect_left(times, t + window) - i for i, t in enumerate(times)), default=0)


async def _ledgers(b: Buses, n: int, **kw: float) -> list[QuotaLedger]:
    out = []
    for i in range(n):
        ledger = QuotaLedger(await b.new(f"s{i}"), SystemClock(), **kw)
        await ledger.start()
        out.append(ledger)
    return out


async def _drive(q: SharedQuota, until: float, accepted: list[float]) -> int:
    """Send as fast as the cap lets us, as the dispatcher does; returns the refusals."""
    refused = 0
    while (now := time.monotonic()) < until:
        at = q.available_at(now)
        if at <= now:
            q.record(now)
            accepted.append(now)
            await asyncio.sleep(0)
        else:
            refused += 1
            await asyncio.sleep(min(at - now, 0.02))
    return refused


async def test_the_global_order_cap_holds_across_two_servers() -> None:
    async with buses() as b:
        ledgers = await _ledgers(b, 2)
        try:
            cap, window = 20, 0.5
            quotas = [led.quota("orders", cap, window) for led in ledgers]
            runs: list[list[float]] = [[], []]
            until = time.monotonic() + 3.0
            refused = await asyncio.gather(
                *(_drive(q, until, got) for q, got in zip(quotas, runs, strict=True))
            )
            both = runs[0] + runs[1]
            print(
                f"accepted {len(runs[0])} + {len(runs[1])}, refused {refused}, "
                f"worst window {worst_window(both, window)} (cap {cap})"
            )
            assert worst_window(both, window) <= cap
            assert runs[0] and runs[1], "both servers sent"
            # Most of the cap is used: at least half of 6 windows' worth.
            assert len(both) >= 3 * cap
        finally:
            for led in ledgers:
                await led.stop()


async def test_a_cut_off_server_stops_using_its_share_and_the_other_takes_it_over() -> None:
    async with buses() as b:
        a, c = await _ledgers(b, 2, ttl=1.5, tick=0.05)
        try:
            qa, qc = a.quota("orders", 10, 0.5), c.quota("orders", 10, 0.5)
            now = time.monotonic()
            await eventually(_grows(qa), what="a to hold the whole cap")
            assert qa.limit == 10
            await a.bus.stop()  # a loses NATS: it cannot renew
            await eventually(_zero(qa), within=3.0, what="a to fence itself")
            fenced_at = time.monotonic()
            await eventually(_grows(qc), within=5.0, what="c to take the cap over")
            # c got slots only after a's holding expired in the record, which is after a fenced.
            assert time.monotonic() >= fenced_at
            assert qc.limit == 10 and now < fenced_at
        finally:
            await c.stop()


def _grows(q: SharedQuota) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        await q.acquire(time.monotonic())
        return q.limit == q.cap

    return check


def _zero(q: SharedQuota) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        return q.limit == 0

    return check


async def test_a_users_api_budget_is_shared_by_the_servers() -> None:
    async with buses() as b:
        ledgers = await _ledgers(b, 2)
        try:
            a, c = SharedApiBudget(ledgers[0]), SharedApiBudget(ledgers[1])
            now = time.monotonic()
            for _ in range(6):
                await a.check(7, 10, now)
            for _ in range(4):
                await c.check(7, 10, now)
            with pytest.raises(LimitExceeded) as refused:
                await c.check(7, 10, now)
            assert refused.value.code == "rate_limited" and refused.value.retry_after
            with pytest.raises(LimitExceeded):
                await a.check(7, 10, now)
            # Another user's budget is their own.
            await c.check(8, 10, now)
        finally:
            for led in ledgers:
                await led.stop()


async def test_the_in_memory_budget_is_unchanged() -> None:
    budget, now = ApiBudget(), 100.0
    for _ in range(3):
        await budget.check(1, 3, now)
    with pytest.raises(LimitExceeded):
        await budget.check(1, 3, now)
    await budget.check(1, 3, now + 60.0)


async def test_a_lock_out_on_one_server_holds_on_the_others() -> None:
    clock = SystemClock()
    async with buses() as b:
        a = ReplicatedThrottle(LoginThrottle(clock, max_failures=3), await b.new("a"))
        c = ReplicatedThrottle(LoginThrottle(clock, max_failures=3), await b.new("c"))
        await a.start()
        await c.start()
        key = "u:sue|10.0.0.9"
        for _ in range(3):
            a.failure(key, backoff=("u:sue",))
        assert a.locked_for(key) > 0

        async def locked_on_c() -> bool:
            return c.locked_for(key) > 0

        await eventually(locked_on_c, within=2.0, what="the lock to reach the other server")
        assert c.locked_for("u:bob|10.0.0.9") == 0
        # A server that starts later asks a peer and starts with the lock in place.
        late = ReplicatedThrottle(LoginThrottle(clock, max_failures=3), await b.new("late"))
        await late.start()
        assert late.locked_for(key) > 0
        # Success on one server clears the key everywhere (the owner signed in elsewhere).
        c.success("u:sue|10.0.0.1")
        a.failure("u:sue|10.0.0.1")
        assert "u:sue" not in str(a.local.export()), "keys are kept and sent hashed"


async def test_a_server_cut_off_from_nats_counts_the_api_budget_alone() -> None:
    async with buses() as b:
        (ledger,) = await _ledgers(b, 1)
        budget = SharedApiBudget(ledger)
        now = time.monotonic()
        await budget.check(3, 2, now)
        await ledger.bus.stop()
        # Requests are still served, within this server's own count of the budget.
        await budget.check(3, 2, now)
        await budget.check(3, 2, now)
        with pytest.raises(LimitExceeded):
            await budget.check(3, 2, now)
        await ledger.stop()


async def test_a_server_back_from_a_stall_does_not_write_an_expired_holding_back() -> None:
    """A server that stalled past its holding's expiry (another took the slots meanwhile)
    drops the holding when it next reads the record, instead of writing it back over the
    cap - whether it next releases or renews."""
    async with buses() as b:
        a, c = await _ledgers(b, 2)
        try:
            qa = a.quota("orders", 10, 0.5)
            await eventually(_grows(qa), what="a to hold the whole cap")
            assert a._loop_task is not None
            a._loop_task.cancel()  # a stalls: its upkeep (renew, release) stops
            # While a stalled, its holding expired and c took the cap.
            _, rev = await c.read("orders")
            taken = {c.me: qm.Holding(10, time.time() + 60)}
            assert await c.write("orders", taken, rev)

            async def window_empty() -> bool:
                return qa.in_window(time.monotonic()) == 0

            await eventually(window_empty, what="a's uses to leave the window")
            # a comes back, just used a slot, and is asked to come down to 5 of its 10.
            qa.record(time.monotonic())
            qa._contended_until, qa.allowed = math.inf, 5
            await qa.release()
            await qa.renew()
            record, _ = await c.read("orders")
            assert set(record) == {c.me} and record[c.me].n == 10
            assert qa.held == 0 and qa.limit == 0
        finally:
            await a.stop()
            await c.stop()


def test_a_single_server_keeps_its_in_memory_limits_and_never_loads_nats(tmp_path: Path) -> None:
    """Without HOGA_CLUSTER_NATS_URL a started server has today's limits, and nats-py is
    never imported (a fresh process: this one has loaded it for the tests above)."""
    script = f"""
import asyncio, sys
from pathlib import Path
from tests.helpers import running

async def main():
    async with running(Path({str(tmp_path)!r}), "sqlite+aiosqlite:///{tmp_path}/h.db") as h:
        app = h.hoga
        print(type(app.dispatcher.global_limit).__name__, type(app.api.state.api_budget).__name__,
              type(app.auth.throttle).__name__, app.cluster_limits, "nats" in sys.modules)

asyncio.run(main())
"""
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=True
    )
    assert out.stdout.split() == ["SlidingWindow", "ApiBudget", "LoginThrottle", "None", "False"]


async def test_a_release_whose_answer_is_lost_counts_as_done() -> None:
    """Under load a write can land while its answer times out. A server lowering its holding
    must then act as if it landed: others may already be using the slots it gave back."""
    async with buses() as b:
        (a,) = await _ledgers(b, 1)
        try:
            qa = a.quota("orders", 10, 0.5)
            await eventually(_grows(qa), what="a to hold the whole cap")
            assert a._loop_task is not None
            a._loop_task.cancel()  # only this test's calls touch the holding

            async def window_empty() -> bool:
                return qa.in_window(time.monotonic()) == 0

            await eventually(window_empty, what="a's uses to leave the window")
            qa.record(time.monotonic())
            qa._contended_until, qa.allowed = math.inf, 5
            real_write = a.write

            async def landed_but_lost(name: str, record: qm.Record, revision: int) -> bool:
                await real_write(name, record, revision)
                raise TimeoutError

            a.write = landed_but_lost  # type: ignore[method-assign]
            with pytest.raises(TimeoutError):
                await qa.release()
            a.write = real_write  # type: ignore[method-assign]
            record, _ = await a.read("orders")
            assert record[a.me].n == 5
            qa._contended_until = -math.inf  # contention over: a uses all it holds again
            await qa.release()
            assert qa.allowed <= 5 and qa.held <= 5
        finally:
            await a.stop()


async def test_a_release_queued_behind_a_grow_decides_after_it() -> None:
    """A release that waits for the lock behind a grow must not write down a target worked
    out before the grow: that undercut what the grow let the server use (the overshoot
    bench_cluster_orders measured)."""
    async with buses() as b:
        (a,) = await _ledgers(b, 1)
        try:
            assert a._loop_task is not None
            a._loop_task.cancel()  # only this test's calls touch the holding
            q = a.quota("orders", 10, 5.0)
            await q.grow()
            await q.grow()
            assert q.held == 6
            for _ in range(3):
                q.record(time.monotonic())
            q._contended_until, q.allowed = math.inf, 3  # asked to come down to 3
            await q._lock.acquire()
            growing = asyncio.get_running_loop().create_task(q.grow())
            await asyncio.sleep(0)  # the grow now waits for the lock
            q._lock.release()
            await q.release()  # queued behind the grow
            await growing
            record, _ = await a.read("orders")
            assert q.allowed <= q.held <= record[a.me].n, (q.allowed, q.held, record)
        finally:
            await a.stop()
