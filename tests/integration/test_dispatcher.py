"""The dispatcher keeps every limit under bursts, and batches session-limited gateways."""

from __future__ import annotations

import asyncio
import itertools
from collections import defaultdict
from datetime import date

from hoga.brokers.base import AccountRef, BrokerLimits, PlaceAck, PlaceRequest
from hoga.brokers.paper import PaperBroker
from hoga.brokers.simsession import SessionLimitedBroker
from hoga.domain.clock import ManualClock
from hoga.domain.orders import OrderType, Side
from hoga.execution.dispatcher import Dispatcher
from hoga.execution.queue import OrderQueue, QueueItem
from hoga.marketdata.feeds.simulator import SimulatedMarket
from hoga.marketdata.universe import Universe, bundled_universe
from tests.dispatch_support import max_in_window, place_item
from tests.helpers import eventually


class RecordingBroker:
    """Counts when each request arrives, per account (a stand-in for a REST broker)."""

    name = "rec"

    def __init__(self, rate: float) -> None:
        self.rate = rate
        self.arrivals: dict[int, list[float]] = defaultdict(list)

    def limits(self, account: AccountRef) -> BrokerLimits:
        return BrokerLimits(rate=self.rate)

    async def place(self, account: AccountRef, request: PlaceRequest) -> PlaceAck:
        self.arrivals[account.account_id].append(asyncio.get_running_loop().time())
        await asyncio.sleep(0.003)  # a little network time, so requests overlap
        return PlaceAck(broker_order_id=request.client_order_id)


def _ref(account_id: int) -> AccountRef:
    return AccountRef(
        account_id=account_id,
        user_id=account_id,
        broker="x",
        env="mock",
        account_no=str(account_id),
    )


async def test_burst_never_exceeds_account_or_global_limits() -> None:
    queue = OrderQueue()
    broker = RecordingBroker(rate=30)

    async def send(item: QueueItem) -> None:
        await broker.place(
            _ref(item.account_id),
            PlaceRequest(str(item.order_id), "005930", Side.BUY, OrderType.MARKET, 1, None),
        )

    async def lookup(account_id: int) -> AccountRef:
        return _ref(account_id)

    d = Dispatcher(queue, send, lookup, global_rate=50)
    d.add_gateway("rec", broker)  # type: ignore[arg-type]
    await d.start()
    n = 0
    for account in (1, 2, 3):
        for _ in range(40):
            n += 1
            queue.push(place_item(n, account=account, gateway="rec"))

    async def all_sent() -> bool:
        return sum(len(v) for v in broker.arrivals.values()) == n

    await eventually(all_sent, within=20, what="burst sent")
    await d.stop()
    everything = [t for ts in broker.arrivals.values() for t in ts]
    assert max_in_window(everything, 1.0) <= 50
    for ts in broker.arrivals.values():
        assert max_in_window(ts, 1.0) <= 30
    # The global cap was the binding limit and was used, not wasted: 120 orders took >= 2 s.
    assert max(everything) - min(everything) >= 2.0 - 0.05


async def test_session_gateway_batches_per_switch_and_never_violates(clock: ManualClock) -> None:
    market = SimulatedMarket(Universe(bundled_universe()), seed=3, clock=clock)
    for _ in range(500):
        market.step()
    book = PaperBroker(market, clock, fsync=False)
    await book.start()
    gw = SessionLimitedBroker(book, switch_cost=0.15, rate=10)
    refs = {a: _ref(a) for a in (1, 2, 3)}
    for ref in refs.values():
        await gw.attach(ref)
    queue = OrderQueue(max_wait=30)
    sent: list[int] = []

    async def send(item: QueueItem) -> None:
        await gw.place(
            refs[item.account_id],
            PlaceRequest(f"o{item.order_id}", "005930", Side.BUY, OrderType.LIMIT, 1, 60_000),
        )
        sent.append(item.account_id)

    async def lookup(account_id: int) -> AccountRef:
        return refs[account_id]

    d = Dispatcher(queue, send, lookup, global_rate=100, time_slice=30)
    d.add_gateway("simsession", gw)  # type: ignore[arg-type]
    await d.start()
    n = 0
    # 24 orders, interleaved across three accounts - the seed policy would switch for each.
    for i in range(24):
        n += 1
        account = 1 + i % 3
        at = asyncio.get_running_loop().time()
        queue.push(place_item(n, at=at, account=account, gateway="simsession"))

    async def done() -> bool:
        return len(sent) == n

    await eventually(done, within=20, what="all orders through the session gateway")
    await d.stop()
    await book.stop()
    assert gw.violations == []
    assert gw.switches <= 4
    # Each account's orders went out as one batch.
    runs = sum(1 for a, b in itertools.pairwise(sent) if a != b) + 1
    assert runs == 3
    assert book.placements(1) == book.placements(2) == book.placements(3) == 8
    assert (await book.order_reports(refs[1], date.today()))[0].price == 60_000
