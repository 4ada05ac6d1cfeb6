"""LeaseKeeper against the real NATS JetStream server: exclusivity, expiry, self-fence, CAS loss.

Leases here live 2 s so expiry and fencing happen within a test's patience; the margins are
the same fractions of the TTL as in production (fence at 2/3, renew every 1/4).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest

from hoga.cluster.bus import ClusterBus
from hoga.cluster.leases import LeaseKeeper
from tests.cluster_support import TcpProxy, delete_buckets, unique_prefix
from tests.helpers import eventually, scaled

TTL = 2.0


@pytest.fixture
async def prefix(nats_available: str) -> AsyncIterator[str]:
    p = unique_prefix()
    yield p
    await delete_buckets(p, nats_available)


async def _keeper(url: str, prefix: str, name: str) -> LeaseKeeper:
    bus = ClusterBus(url, name, prefix=prefix)
    await bus.start()
    keeper = LeaseKeeper(bus, TTL)
    await keeper.start()
    return keeper


async def _close(*keepers: LeaseKeeper) -> None:
    for k in keepers:
        await k.stop()
        await k.bus.stop()


async def test_a_lease_has_one_holder_and_is_free_after_release(
    nats_available: str, prefix: str
) -> None:
    a = await _keeper(nats_available, prefix, "a")
    b = await _keeper(nats_available, prefix, "b")
    try:
        assert await a.try_acquire("user-1")
        assert not await b.try_acquire("user-1")
        assert await a.try_acquire("user-1")  # idempotent for the holder
        assert a.holds("user-1") and not b.holds("user-1")
        assert a.held() == {"user-1"}
        # Renewals keep it (several renewal periods pass).
        await asyncio.sleep(TTL * 1.5)
        assert a.holds("user-1")
        assert not await b.try_acquire("user-1")
        await a.release("user-1")
        assert not a.holds("user-1")
        assert await b.try_acquire("user-1")
    finally:
        await _close(a, b)


async def test_a_lease_expires_after_its_holder_stops_renewing(
    nats_available: str, prefix: str
) -> None:
    a = await _keeper(nats_available, prefix, "a")
    b = await _keeper(nats_available, prefix, "b")
    try:
        assert await a.try_acquire("user-2")
        # The holder dies: its connection goes without a word (no release).
        assert a._task is not None
        a._task.cancel()
        await a.bus.stop()
        died = time.monotonic()

        async def taken() -> bool:
            return await b.try_acquire("user-2")

        await eventually(taken, within=TTL * 4, what="lease expired and taken")
        waited = time.monotonic() - died
        print(f"lease taken over {waited:.2f} s after its holder died (ttl {TTL} s)")
        assert waited >= TTL * 2 / 3  # never before the holder would have fenced itself
    finally:
        a._held.clear()
        await _close(b)


async def test_a_holder_cut_off_from_nats_fences_itself_before_anyone_takes_over(
    nats_available: str, prefix: str
) -> None:
    host, port = nats_available.removeprefix("nats://").split(":")
    proxy = TcpProxy(host, int(port))
    await proxy.start()
    a = await _keeper(proxy.url, prefix, "a")
    b = await _keeper(nats_available, prefix, "b")
    fenced: list[tuple[str, float]] = []

    async def lost(name: str) -> None:
        fenced.append((name, time.monotonic()))

    a.on_lost(lost)
    try:
        assert await a.try_acquire("user-3")
        proxy.block()
        cut = time.monotonic()

        async def taken() -> bool:
            return await b.try_acquire("user-3")

        await eventually(taken, within=TTL * 4, what="lease taken by the other server")
        taken_at = time.monotonic()
        assert [n for n, _ in fenced] == ["user-3"]
        fenced_at = fenced[0][1]
        print(
            f"cut-off holder fenced {fenced_at - cut:.2f} s after the cut; "
            f"other server took over {taken_at - cut:.2f} s after it"
        )
        assert fenced_at < taken_at
        assert not a.holds("user-3")
        # The fence is due 2/3 TTL after the last renewal (at most 1/4 TTL before the cut);
        # its callback runs on the keeper's next tick, which a loaded machine delays: the slack
        # is load-scaled (it measured 1.84 s at load 4.5 on two cores, against 1.83 s allowed
        # unscaled). What guards the money is the assertion above and holds(), which is
        # clock-based and turns False at 2/3 TTL whatever the loop is doing.
        assert fenced_at - cut <= TTL * 2 / 3 + scaled(0.5)
    finally:
        proxy.unblock()
        await _close(b)
        a._held.clear()
        await _close(a)
        await proxy.stop()


async def test_a_renewal_that_loses_the_compare_and_set_loses_the_lease(
    nats_available: str, prefix: str
) -> None:
    a = await _keeper(nats_available, prefix, "a")
    b = await _keeper(nats_available, prefix, "b")
    lost: list[str] = []

    async def on_lost(name: str) -> None:
        lost.append(name)

    a.on_lost(on_lost)
    try:
        assert await a.try_acquire("broker-abc")
        # Someone else writes the key (as after an expiry a slow holder never saw).
        await b.kv.put("broker-abc", b"b")

        async def gone() -> bool:
            return lost == ["broker-abc"]

        await eventually(gone, within=TTL * 2, what="lease lost on a failed CAS")
        assert not a.holds("broker-abc")
        assert a.held() == set()
        # Its release must not delete the other writer's key.
        await a.release("broker-abc")
        assert (await b.kv.get("broker-abc")).value == b"b"
    finally:
        await _close(a, b)


async def test_stop_deletes_the_keys_it_holds(nats_available: str, prefix: str) -> None:
    a = await _keeper(nats_available, prefix, "a")
    b = await _keeper(nats_available, prefix, "b")
    try:
        assert await a.try_acquire("feed-simulator")
        await _close(a)
        assert await b.try_acquire("feed-simulator")
    finally:
        await _close(b)
