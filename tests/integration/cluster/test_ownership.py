"""Members, ownership rounds, hand-off and cluster events against the real NATS server.

Three in-process "servers" (each its own ClusterBus, LeaseKeeper, Members, Ownership) with a
recording ``UserWork``; leases live 2 s so expiry happens within a test's patience.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest

from hoga.cluster.bus import ClusterBus
from hoga.cluster.events import ClusterEventBus
from hoga.cluster.handoff import Handoff
from hoga.cluster.leases import LeaseKeeper
from hoga.cluster.members import DuplicateInstance, Members, rendezvous
from hoga.cluster.ownership import Ownership
from hoga.cluster.remote import RemoteModify
from hoga.domain.errors import Conflict, ServiceUnavailable
from tests.cluster_support import delete_buckets, unique_prefix
from tests.helpers import eventually

TTL = 2.0
USERS = {u: [] for u in range(1, 13)}


@dataclass
class Work:
    """Records starts and stops; ``users`` is a fixed set."""

    users_: dict[int, list[str]]
    running: set[int] = field(default_factory=set)
    starts: list[int] = field(default_factory=list)

    async def users(self) -> dict[int, list[str]]:
        return self.users_

    async def start_user(self, user_id: int) -> None:
        self.running.add(user_id)
        self.starts.append(user_id)

    async def stop_user(self, user_id: int) -> None:
        self.running.discard(user_id)


@dataclass
class Node:
    bus: ClusterBus
    members: Members
    leases: LeaseKeeper
    work: Work
    own: Ownership

    async def stop(self, *, graceful: bool = True) -> None:
        if graceful:
            await self.own.stop()
            await self.leases.stop()
            await self.members.stop()
        else:
            for part in (self.own, self.leases, self.members):
                task = part._task
                if task is not None:
                    task.cancel()
        await self.bus.stop()


@pytest.fixture
async def prefix(nats_available: str) -> AsyncIterator[str]:
    p = unique_prefix()
    yield p
    await delete_buckets(p, nats_available)


async def _node(url: str, prefix: str, name: str, users: dict[int, list[str]] = USERS) -> Node:
    bus = ClusterBus(url, name, prefix=prefix)
    await bus.start()
    members = Members(bus, TTL)
    await members.start()
    leases = LeaseKeeper(bus, TTL)
    await leases.start()
    work = Work(users)
    own = Ownership(leases, members, work, interval=0.2, min_hold=0.5, settle=0.3)
    await members.ready()
    await own.start()
    return Node(bus, members, leases, work, own)


@contextlib.asynccontextmanager
async def _buses(url: str, prefix: str, *names: str) -> AsyncIterator[list[ClusterBus]]:
    """Started buses, one a name (several servers' connections in one process); stopped on
    exit."""
    buses = [ClusterBus(url, name, prefix=prefix) for name in names]
    for b in buses:
        await b.start()
    try:
        yield buses
    finally:
        for b in buses:
            await b.stop()


def _owners(nodes: list[Node]) -> dict[int, list[str]]:
    out: dict[int, list[str]] = {}
    for n in nodes:
        for u in n.work.running:
            out.setdefault(u, []).append(n.bus.instance_id)
    return out


def test_rendezvous_moves_only_the_names_of_a_leaving_member() -> None:
    names = [f"user-{i}" for i in range(300)]
    before = {n: rendezvous(["a", "b", "c"], n) for n in names}
    after = {n: rendezvous(["a", "c"], n) for n in names}
    moved = [n for n in names if before[n] != after[n]]
    assert all(before[n] == "b" for n in moved)
    assert 60 < len(moved) < 140  # about a third


async def test_users_spread_over_members_and_move_when_one_dies(
    nats_available: str, prefix: str
) -> None:
    nodes = [await _node(nats_available, prefix, f"n{i}") for i in range(3)]
    try:
        names = ["n0", "n1", "n2"]

        async def spread() -> bool:
            owners = _owners(nodes)
            return set(owners) == set(USERS) and all(
                v == [rendezvous(names, f"user-{u}")] for u, v in owners.items()
            )

        await eventually(spread, within=20, what="every user owned by its rendezvous member")
        assert all(n.work.running for n in nodes), "rendezvous left a member idle"
        dead = nodes[1]
        theirs = set(dead.work.running)
        await dead.stop(graceful=False)  # kill -9: no release
        alive = [nodes[0], nodes[2]]

        async def moved() -> bool:
            owners = _owners(alive)
            return set(owners) == set(USERS) and all(len(v) == 1 for v in owners.values())

        await eventually(moved, within=TTL * 5, what="the dead member's users taken over")
        assert theirs <= set(_owners(alive))
    finally:
        for n in (nodes[0], nodes[2]):
            await n.stop()


async def test_a_joining_member_gets_users_gradually_and_nobody_owns_twice(
    nats_available: str, prefix: str
) -> None:
    first = await _node(nats_available, prefix, "n0")
    try:

        async def all_first() -> bool:
            return first.work.running == set(USERS)

        await eventually(all_first, within=10, what="the only member owns everyone")
        second = await _node(nats_available, prefix, "n1")
        try:
            seen_double = False

            async def balanced() -> bool:
                nonlocal seen_double
                owners = _owners([first, second])
                seen_double |= any(len(v) > 1 for v in owners.values())
                return (
                    bool(second.work.running)
                    and set(owners) == set(USERS)
                    and all(
                        rendezvous(["n0", "n1"], f"user-{u}") == v[0] for u, v in owners.items()
                    )
                )

            await eventually(balanced, within=20, what="users moved to their rendezvous owner")
            assert not seen_double
            # Handed back without flapping: each moved user started once on the newcomer.
            assert len(second.work.starts) == len(set(second.work.starts))
        finally:
            await second.stop()
    finally:
        await first.stop()


async def test_a_second_live_server_with_the_same_id_is_refused(
    nats_available: str, prefix: str
) -> None:
    a = ClusterBus(nats_available, "same", prefix=prefix)
    b = ClusterBus(nats_available, "same", prefix=prefix)
    await a.start()
    await b.start()
    ma = Members(a, TTL)
    await ma.start()
    try:
        with pytest.raises(DuplicateInstance):
            await Members(b, TTL).start()
    finally:
        await ma.stop()
        await a.stop()
        await b.stop()


async def test_handoff_reaches_only_the_owner_and_coalesces_a_burst(
    nats_available: str, prefix: str
) -> None:
    async with _buses(nats_available, prefix, "h0", "h1") as buses:
        picked: list[tuple[str, int]] = []
        gate = asyncio.Event()

        def pickup_for(name: str):  # type: ignore[no-untyped-def]
            async def pickup(user_id: int) -> None:
                picked.append((name, user_id))
                await gate.wait()

            return pickup

        owner = Handoff(buses[0], pickup_for("h0"), owns=lambda u: u == 7)
        other = Handoff(buses[1], pickup_for("h1"), owns=lambda u: False)
        await owner.start()
        await other.start()
        try:
            for _ in range(20):
                other.notify(7)
            await buses[1].flush()

            async def got() -> bool:
                return owner.received == 20

            await eventually(got, within=5, what="20 hand-offs received")
            gate.set()

            async def done() -> bool:
                return not owner._running

            await eventually(done, within=5, what="pickups finished")
            assert set(picked) == {("h0", 7)}
            assert 1 <= len(picked) <= 2  # one running, at most one more for what came meanwhile
        finally:
            await owner.stop()
            await other.stop()


async def test_events_reach_the_users_sockets_on_every_server_once(
    nats_available: str, prefix: str
) -> None:
    async with _buses(nats_available, prefix, "e0", "e1") as buses:
        events = [ClusterEventBus(), ClusterEventBus()]
        hooked: list[int] = []
        events[1].add_hook(lambda user_id, event: hooked.append(user_id))
        for b, e in zip(buses, events, strict=True):
            await e.attach(b)
        here = events[0].subscribe(5)
        there = events[1].subscribe(5)
        stranger = events[1].subscribe(6)
        events[0].publish(5, {"type": "order", "id": 1, "status": "FILLED"})

        async def arrived() -> bool:
            return there._queue.qsize() == 1

        await eventually(arrived, within=5, what="the event on the other server")
        await asyncio.sleep(0.2)  # a duplicate would arrive by now (same connection order)
        assert here._queue.qsize() == 1  # no echo from its own publication
        assert there.get_nowait() == {"type": "order", "id": 1, "status": "FILLED"}
        assert stranger.get_nowait() is None
        assert hooked == []  # hooks run where the event happened only


async def test_a_modify_is_forwarded_to_the_owner_with_its_answer_or_error(
    nats_available: str, prefix: str
) -> None:
    async with _buses(nats_available, prefix, "m0", "m1") as buses:
        ran: list[tuple[int, int, int | None, int | None]] = []

        async def modify(
            user_id: int, order_id: int, price: int | None, qty: int | None, ip: str | None
        ) -> int:
            ran.append((user_id, order_id, price, qty))
            if order_id == 13:
                raise Conflict("order is not working", "order.not_modifiable")
            return order_id

        async def never(*args: object) -> int:
            raise AssertionError("a non-owner ran a modify")

        owner = RemoteModify(buses[0], modify, owns=lambda u: u == 3)
        other = RemoteModify(buses[1], never, owns=lambda u: False)
        await owner.start()
        await other.start()
        await buses[0].flush()
        assert await other.forward(3, 12, 70_000, None, "10.0.0.1") == 12
        with pytest.raises(Conflict) as refused:
            await other.forward(3, 13, None, 2, None)
        assert refused.value.code == "order.not_modifiable"
        with pytest.raises(ServiceUnavailable) as nobody:
            await other.forward(4, 1, 1, None, None)  # no server owns user 4
        assert nobody.value.code == "cluster.no_owner"
        assert ran == [(3, 12, 70_000, None), (3, 13, None, 2)]
