"""The priority order queue.

Ordering, one rule everywhere (queue positions, the REST dispatcher, the session scheduler):

* ``URGENT`` requests (cancels, stop-losses, ``urgent: true``) go first, oldest first;
* everything else is served earliest-deadline-first, where an item's deadline is its arrival
  plus its class's budget: ``VIP`` gets ``max_wait * vip_share`` (0 by default), ``NORMAL``
  gets ``max_wait``. Within a class that is FIFO; across classes VIP leads, but a NORMAL order
  that has waited ``max_wait`` longer than a VIP one goes first - the aging that bounds waits.

Items are kept per account (brokers limit per account) in heaps, with lazy removal so a
cancel of a queued order is O(1).

An item that must wait before it is tried again (the broker was throttled, the database could
not record the claim) is *deferred*: it stays queued - counted, listed, in its place in the
user's queue view - but is not handed out until its delay has passed.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from enum import StrEnum

from hoga.domain.orders import Order, Priority


class Kind(StrEnum):
    PLACE = "place"
    CANCEL = "cancel"
    MODIFY = "modify"


SortKey = tuple[int, float, int]


@dataclass(slots=True)
class QueueItem:
    """One request waiting for its broker: place an order, or cancel one."""

    order_id: int
    user_id: int
    account_id: int
    gateway: str
    kind: Kind
    priority: Priority
    enqueued_at: float
    seq: int = 0
    key: SortKey = (0, 0.0, 0)
    removed: bool = False
    held: bool = False
    #: Tries that failed on the database before reaching the broker (sets the back-off).
    attempts: int = 0
    #: A place request's order as it was committed when queued: the state the claim's
    #: compare-and-set expects, so the claim need not re-read the row. A hint only - if the
    #: order moved on meanwhile the compare-and-set fails and the claim re-reads; the claim
    #: clears it (an item put back re-reads).
    expected: Order | None = field(default=None, repr=False, compare=False)


@dataclass
class _AccountQueue:
    heap: list[tuple[SortKey, QueueItem]] = field(default_factory=list)
    live: int = 0


class OrderQueue:
    """Per-gateway, per-account priority queues sharing one ordering (see module docstring)."""

    def __init__(self, max_wait: float = 30.0, vip_share: float = 0.0) -> None:
        self.max_wait = max_wait
        self._budget = {
            Priority.URGENT: 0.0,
            Priority.VIP: max_wait * vip_share,
            Priority.NORMAL: max_wait,
        }
        self._seq = itertools.count(1)
        self._accounts: dict[tuple[str, int], _AccountQueue] = {}
        self._by_order: dict[tuple[int, Kind], QueueItem] = {}
        self._held: dict[str, int] = {}
        self._listeners: list[Callable[[str], None]] = []
        # Cluster mode (cluster/node.py): False for an item of a user another server owns -
        # the order is in the database already and the owner is told instead (handoff.py).
        self.admit: Callable[[QueueItem], bool] | None = None

    def sort_key(self, priority: Priority, enqueued_at: float, seq: int) -> SortKey:
        if priority == Priority.URGENT:
            return (0, enqueued_at, seq)
        return (1, enqueued_at + self._budget[priority], seq)

    def on_push(self, fn: Callable[[str], None]) -> None:
        """Called with the gateway name whenever an item arrives (the dispatcher wakes up)."""
        self._listeners.append(fn)

    # --- mutation

    def push(self, item: QueueItem) -> QueueItem:
        if (item.order_id, item.kind) in self._by_order:
            return self._by_order[(item.order_id, item.kind)]
        if self.admit is not None and not self.admit(item):
            return item
        if not item.seq:
            item.seq = next(self._seq)
        item.key = self.sort_key(item.priority, item.enqueued_at, item.seq)
        q = self._accounts.setdefault((item.gateway, item.account_id), _AccountQueue())
        heapq.heappush(q.heap, (item.key, item))
        q.live += 1
        self._by_order[(item.order_id, item.kind)] = item
        for fn in self._listeners:
            fn(item.gateway)
        return item

    def requeue(self, item: QueueItem) -> None:
        """Put back an item the broker did not process; it keeps its place."""
        if item.held:
            self._unhold(item)
        item.removed = False
        self._by_order.pop((item.order_id, item.kind), None)
        self.push(item)

    def defer(self, item: QueueItem, delay: float) -> None:
        """Keep ``item`` queued (and visible) but hand it out only after ``delay`` seconds;
        it keeps its place. Nothing happens if the order is queued again meanwhile."""
        key = (item.order_id, item.kind)
        current = self._by_order.get(key)
        if current is not None and current is not item:
            return
        if current is item and not item.held:
            return  # still in its heap: it will be served as it is
        item.removed = False
        if not item.held:
            item.held = True
            self._held[item.gateway] = self._held.get(item.gateway, 0) + 1
        self._by_order[key] = item
        asyncio.get_running_loop().call_later(max(0.0, delay), self._release, item)

    def _release(self, item: QueueItem) -> None:
        if not item.held:
            return  # removed (cancelled) while it waited
        self._unhold(item)
        key = (item.order_id, item.kind)
        if self._by_order.get(key) is item:
            del self._by_order[key]
            self.push(item)

    def _unhold(self, item: QueueItem) -> None:
        item.held = False
        self._held[item.gateway] = self._held.get(item.gateway, 1) - 1

    def remove(self, order_id: int, kind: Kind = Kind.PLACE) -> QueueItem | None:
        item = self._by_order.pop((order_id, kind), None)
        if item is None:
            return None
        item.removed = True
        if item.held:
            self._unhold(item)
            return item
        q = self._accounts.get((item.gateway, item.account_id))
        if q is not None:
            q.live -= 1
        return item

    def _clean(self, q: _AccountQueue) -> None:
        while q.heap and q.heap[0][1].removed:
            heapq.heappop(q.heap)

    def peek(self, gateway: str, account_id: int) -> QueueItem | None:
        q = self._accounts.get((gateway, account_id))
        if q is None:
            return None
        self._clean(q)
        return q.heap[0][1] if q.heap else None

    def pop(self, gateway: str, account_id: int) -> QueueItem | None:
        q = self._accounts.get((gateway, account_id))
        if q is None:
            return None
        self._clean(q)
        if not q.heap:
            return None
        _, item = heapq.heappop(q.heap)
        q.live -= 1
        self._by_order.pop((item.order_id, item.kind), None)
        return item

    # --- views

    def accounts(self, gateway: str) -> list[int]:
        """Accounts of ``gateway`` with something queued."""
        return [a for (g, a), q in self._accounts.items() if g == gateway and q.live > 0]

    def best_account(self, gateway: str, exclude: int | None = None) -> int | None:
        best: tuple[SortKey, int] | None = None
        for account in self.accounts(gateway):
            if account == exclude:
                continue
            head = self.peek(gateway, account)
            if head is not None and (best is None or head.key < best[0]):
                best = (head.key, account)
        return best[1] if best else None

    def contains(self, order_id: int, kind: Kind = Kind.PLACE) -> bool:
        return (order_id, kind) in self._by_order

    def remove_user(self, user_id: int) -> int:
        """Take every item of ``user_id`` out (its owner changed); returns how many."""
        mine = [key for key, item in self._by_order.items() if item.user_id == user_id]
        for order_id, kind in mine:
            self.remove(order_id, kind)
        return len(mine)

    def items(self, gateway: str | None = None) -> Iterator[QueueItem]:
        for item in self._by_order.values():
            if gateway is None or item.gateway == gateway:
                yield item

    def size(self, gateway: str | None = None) -> int:
        if gateway is None:
            return len(self._by_order)
        live = sum(q.live for (g, _), q in self._accounts.items() if g == gateway)
        return live + self._held.get(gateway, 0)

    def deferred(self, gateway: str | None = None) -> int:
        """Items waiting out a delay before they are tried again."""
        if gateway is None:
            return sum(self._held.values())
        return self._held.get(gateway, 0)

    def account_size(self, gateway: str, account_id: int) -> int:
        q = self._accounts.get((gateway, account_id))
        return q.live if q else 0

    def places(self, user_id: int) -> list[tuple[QueueItem, int, int]]:
        """The user's queued items with their place in their gateway's queue and in their
        account's queue (both 1-based), in service order."""
        mine = [i for i in self._by_order.values() if i.user_id == user_id]
        out = []
        for gateway in {i.gateway for i in mine}:
            ordered = sorted(
                (i for i in self._by_order.values() if i.gateway == gateway), key=lambda i: i.key
            )
            per_account: dict[int, int] = {}
            for rank, item in enumerate(ordered, 1):
                per_account[item.account_id] = per_account.get(item.account_id, 0) + 1
                if item.user_id == user_id:
                    out.append((item, rank, per_account[item.account_id]))
        out.sort(key=lambda x: x[0].key)
        return out
