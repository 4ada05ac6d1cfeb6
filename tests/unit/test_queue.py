"""Queue ordering: URGENT first, VIP before NORMAL, FIFO within a class, aging bounds waits."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from hoga.domain.orders import Priority
from hoga.execution.queue import OrderQueue
from tests.dispatch_support import place_item

P = Priority


def drain(q: OrderQueue, account: int = 1) -> list[int]:
    out = []
    while (it := q.pop("g", account)) is not None:
        out.append(it.order_id)
    return out


def test_classes_then_fifo() -> None:
    q = OrderQueue(max_wait=30)
    for oid, pr, at in [
        (1, P.NORMAL, 0),
        (2, P.VIP, 1),
        (3, P.NORMAL, 2),
        (4, P.URGENT, 3),
        (5, P.VIP, 4),
    ]:
        q.push(place_item(oid, pr, at))
    assert drain(q) == [4, 2, 5, 1, 3]


def test_an_old_normal_order_overtakes_newer_vip_orders() -> None:
    q = OrderQueue(max_wait=30)
    q.push(place_item(1, P.NORMAL, 0))
    q.push(place_item(2, P.VIP, 29))
    q.push(place_item(3, P.VIP, 31))
    assert drain(q) == [2, 1, 3]


def test_remove_and_requeue_keep_places() -> None:
    q = OrderQueue()
    for oid in range(1, 6):
        q.push(place_item(oid, P.NORMAL, oid))
    assert q.remove(3) is not None
    assert q.remove(3) is None
    head = q.pop("g", 1)
    assert head is not None and head.order_id == 1
    q.requeue(head)
    assert drain(q) == [1, 2, 4, 5]
    assert q.size() == 0


def test_places_across_accounts_and_users() -> None:
    q = OrderQueue()
    q.push(place_item(1, P.NORMAL, 0, account=1))
    q.push(place_item(2, P.NORMAL, 1, account=2))
    q.push(place_item(3, P.VIP, 2, account=2))
    q.push(place_item(4, P.NORMAL, 3, account=1))
    places = {it.order_id: (place, acct_place) for it, place, acct_place in q.places(1)}
    assert places == {1: (2, 1), 4: (4, 2)}
    assert q.best_account("g") == 2


def test_pushing_the_same_request_twice_is_one_item() -> None:
    q = OrderQueue()
    q.push(place_item(7, P.NORMAL, 0))
    q.push(place_item(7, P.NORMAL, 5))
    assert q.size() == 1


@given(
    st.lists(st.tuples(st.sampled_from(list(Priority)), st.floats(0, 20)), min_size=1, max_size=60)
)
def test_service_order_is_the_sort_key_order(entries: list[tuple[Priority, float]]) -> None:
    q = OrderQueue(max_wait=30)
    # Requests are pushed as they arrive: arrival times never go backwards.
    now, items = 0.0, []
    for i, (pr, gap) in enumerate(entries):
        now += gap
        items.append(q.push(place_item(i + 1, pr, now)))
    expected = [it.order_id for it in sorted(items, key=lambda it: it.key)]
    assert drain(q) == expected
    # Within a class, earlier arrivals always go first.
    served = {oid: n for n, oid in enumerate(expected)}
    for a in items:
        for b in items:
            if a.priority == b.priority and (a.enqueued_at, a.seq) < (b.enqueued_at, b.seq):
                assert served[a.order_id] < served[b.order_id]


async def test_a_deferred_item_stays_visible_and_comes_back_when_due() -> None:
    import asyncio

    q = OrderQueue(max_wait=30)
    pushed = asyncio.Event()
    q.on_push(lambda gateway: pushed.set())
    first = q.push(place_item(1, P.NORMAL, 0))
    q.push(place_item(2, P.NORMAL, 1))
    assert q.pop("g", 1) is first
    pushed.clear()
    q.defer(first, 0.01)
    # Still queued as far as anyone asking can tell, but not handed out yet.
    assert q.contains(1) and q.size() == 2 and q.size("g") == 2 and q.deferred("g") == 1
    assert [i.order_id for i, _, _ in q.places(1)] == [1, 2]
    assert q.pop("g", 1) is not first
    await asyncio.wait_for(pushed.wait(), 10)
    assert q.deferred() == 0 and q.size("g") == 1
    assert q.pop("g", 1) is first  # back, in its old place


async def test_a_deferred_item_removed_meanwhile_never_comes_back() -> None:
    import asyncio

    q = OrderQueue(max_wait=30)
    q.push(place_item(1, P.NORMAL, 0))
    taken = q.pop("g", 1)
    assert taken is not None
    q.defer(taken, 0.01)
    assert q.remove(1) is taken
    assert q.size("g") == 0 and q.deferred() == 0 and not q.contains(1)
    later = asyncio.Event()
    asyncio.get_running_loop().call_later(0.05, later.set)
    await asyncio.wait_for(later.wait(), 10)
    assert q.pop("g", 1) is None and q.size() == 0
