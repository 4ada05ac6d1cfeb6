"""The dispatcher's session switches: an URGENT request of another account abandons a switch
under way, and a login that keeps failing does not starve the other accounts."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from hoga.brokers.base import AccountRef, BrokerLimits, BrokerNotProcessed
from hoga.domain.orders import Priority
from hoga.execution.dispatcher import Dispatcher
from hoga.execution.queue import OrderQueue, QueueItem
from tests.dispatch_support import place_item
from tests.helpers import eventually


class Gateway:
    """A capacity-1 gateway whose switches take ``cost`` seconds (or fail for ``failing``)."""

    name = "gw"

    def __init__(self, cost: float, failing: frozenset[int] = frozenset()) -> None:
        self.cost = cost
        self.failing = failing
        self.started: list[int] = []
        self.switched: list[int] = []
        self.cancelled: list[int] = []

    def limits(self, account: AccountRef) -> BrokerLimits:
        return BrokerLimits(rate=50, capacity=1, switch_cost=self.cost, can_preload=False)

    async def switch_session(self, account: AccountRef) -> None:
        self.started.append(account.account_id)
        if account.account_id in self.failing:
            raise BrokerNotProcessed("login failed", "test.login", retry_after=30.0)
        try:
            await asyncio.sleep(self.cost)
        except asyncio.CancelledError:
            self.cancelled.append(account.account_id)
            raise
        self.switched.append(account.account_id)


def ref(account: int) -> AccountRef:
    return AccountRef(account, account, "gw", "mock", f"50{account:06d}11")


def item(n: int, account: int, priority: Priority) -> QueueItem:
    """Order ``n`` of ``account`` on this gateway, queued now."""
    return place_item(n, priority, asyncio.get_running_loop().time(), account=account, gateway="gw")


@contextlib.asynccontextmanager
async def dispatching(
    gw: Gateway,
) -> AsyncIterator[tuple[Dispatcher, OrderQueue, list[tuple[int, Priority]]]]:
    """A started dispatcher over ``gw``: (it, its queue, the (account, priority) sent so far)."""
    queue = OrderQueue(max_wait=30)
    sent: list[tuple[int, Priority]] = []

    async def send(it: QueueItem) -> None:
        sent.append((it.account_id, it.priority))

    async def lookup(account_id: int) -> AccountRef:
        return ref(account_id)

    d = Dispatcher(queue, send, lookup, global_rate=100, time_slice=30)
    d.add_gateway("gw", gw)  # type: ignore[arg-type]
    await d.start()
    try:
        yield d, queue, sent
    finally:
        await d.stop()


async def urgent_during_a_switch(
    gw: Gateway, queue: OrderQueue, sent: list[tuple[int, Priority]], first: Priority
) -> None:
    """Account 1's ``first`` order starts a switch; account 2's URGENT one arrives during it."""
    queue.push(item(1, 1, first))

    async def switching() -> bool:
        return gw.started == [1]

    await eventually(switching, 5.0, "the switch to account 1 under way")
    queue.push(item(2, 2, Priority.URGENT))

    async def both() -> bool:
        return len(sent) == 2

    await eventually(both, 10.0, "both orders sent")


async def test_an_urgent_order_abandons_a_switch_to_another_account() -> None:
    gw = Gateway(cost=1.0)
    async with dispatching(gw) as (d, queue, sent):
        await urgent_during_a_switch(gw, queue, sent, Priority.NORMAL)
        # The switch to 1 was abandoned; 2's URGENT order went first, then 1 was switched to.
        assert sent == [(2, Priority.URGENT), (1, Priority.NORMAL)]
        assert gw.cancelled == [1] and gw.switched == [2, 1]
        assert d.status()["gateways"]["gw"]["aborted_switches"] == 1


async def test_a_switch_to_an_account_whose_head_is_urgent_is_not_abandoned() -> None:
    gw = Gateway(cost=0.5)
    async with dispatching(gw) as (_, queue, sent):
        await urgent_during_a_switch(gw, queue, sent, Priority.URGENT)
        assert [a for a, _ in sent] == [1, 2] and gw.cancelled == []


async def test_a_failing_login_does_not_starve_the_other_accounts() -> None:
    gw = Gateway(cost=0.05, failing=frozenset({1}))
    async with dispatching(gw) as (_, queue, sent):
        queue.push(item(1, 1, Priority.VIP))  # sorts first: its login is tried first
        for n in range(2, 6):
            queue.push(item(n, 2, Priority.NORMAL))

        async def others() -> bool:
            return len(sent) == 4

        await eventually(others, 10.0, "account 2's orders sent despite account 1's login")
        assert {a for a, _ in sent} == {2}
        assert queue.size("gw") == 1  # account 1's order is held back, still queued
