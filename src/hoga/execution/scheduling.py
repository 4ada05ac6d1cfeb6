"""Scheduling for session-limited gateways (capacity 1, a cost to switch accounts).

The legacy Kiwoom OpenAPI+ control holds one logged-in account at a time and switching costs
seconds. The seed design switched whenever the next order belonged to someone else, which tops
out near one order per switch. hoga serves one account's queued orders as a batch per switch,
rotates when the batch runs dry or a time slice ends, lets URGENT orders of another account cut
a slice short, and - where the gateway allows - prepares the next session while the current
one works, so a switch costs nothing when the batch lasted longer than the preparation.

The policies here are pure: they look at the queue and a small state record and return one
decision. The live dispatcher and the benchmark's discrete-event simulation drive the same
policy objects, so the benchmark measures the code that runs.
"""

from __future__ import annotations

import heapq
import math
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

from hoga.domain.orders import Priority
from hoga.execution.queue import OrderQueue, QueueItem


class Act(StrEnum):
    SEND = "send"  # send the active account's next request
    SWITCH = "switch"  # log the session into another account (blocking, costs switch_cost)
    PREPARE = "prepare"  # start preparing a standby session in the background
    ACTIVATE = "activate"  # make the prepared standby session the active one (instant)
    WAIT = "wait"  # nothing to do before ``until`` (or a new arrival)


@dataclass(frozen=True, slots=True)
class Decision:
    act: Act
    account: int | None = None
    until: float = math.inf


@dataclass
class SessionState:
    """What the driver knows about its one session (and the standby being prepared)."""

    active: int | None = None
    active_since: float = 0.0
    next_send_at: float = 0.0
    standby: int | None = None
    standby_ready_at: float | None = None


class SessionPolicy(Protocol):
    """Chooses what a session-limited gateway does next."""

    name: str
    preload: bool

    def push(self, item: QueueItem) -> None: ...

    def take(self, account: int) -> QueueItem | None: ...

    def pending(self) -> int: ...

    def decide(self, now: float, s: SessionState) -> Decision: ...


class HogaSessionPolicy:
    """Batch per switch, time-sliced rotation, URGENT preemption, optional preloading.

    The next account is the one whose head request sorts first in the shared queue ordering
    (URGENT, then earliest deadline), so aging applies across accounts too.
    """

    name = "hoga"

    def __init__(
        self,
        queue: OrderQueue,
        gateway: str,
        *,
        time_slice: float = 30.0,
        preload: bool = True,
        switch_cost: float = 3.0,
        urgent_target: float = 4.8,
    ) -> None:
        self.queue = queue
        self.gateway = gateway
        self.time_slice = time_slice
        self.preload = preload
        self.switch_cost = switch_cost
        self.urgent_target = urgent_target

    def push(self, item: QueueItem) -> None:
        self.queue.push(item)

    def take(self, account: int) -> QueueItem | None:
        return self.queue.pop(self.gateway, account)

    def pending(self) -> int:
        return self.queue.size(self.gateway)

    def decide(self, now: float, s: SessionState) -> Decision:
        q, g = self.queue, self.gateway
        head = q.peek(g, s.active) if s.active is not None else None
        other = q.best_account(g, exclude=s.active)
        other_head = q.peek(g, other) if other is not None else None

        if self.preload and other is not None:
            if s.standby is None:
                return Decision(Act.PREPARE, other)
            if self._retarget(now, s, other, other_head):
                return Decision(Act.PREPARE, other)

        leave = head is None
        if head is not None and other_head is not None:
            slice_over = now - s.active_since >= self.time_slice
            preempt = other_head.priority == Priority.URGENT and head.priority != Priority.URGENT
            # A request that has waited past its deadline elsewhere also ends the slice.
            overdue = other_head.key[0] == 1 and other_head.key[1] < now < head.key[1]
            leave = slice_over or preempt or overdue
        if leave and (other is not None or s.standby is not None):
            if self.preload:
                if (
                    s.standby is not None
                    and s.standby_ready_at is not None
                    and s.standby_ready_at <= now
                ):
                    return Decision(Act.ACTIVATE, s.standby)
            elif other is not None:
                return Decision(Act.SWITCH, other)
        if head is not None:
            if now >= s.next_send_at:
                return Decision(Act.SEND, s.active)
            return Decision(Act.WAIT, until=s.next_send_at)
        if s.standby is not None and s.standby_ready_at is not None:
            return Decision(Act.WAIT, until=s.standby_ready_at)
        return Decision(Act.WAIT)

    def _retarget(
        self, now: float, s: SessionState, other: int, other_head: QueueItem | None
    ) -> bool:
        """Abandon the standby being prepared when URGENT requests wait elsewhere and finishing
        the current preparation first would make them wait past ``urgent_target``."""
        if other == s.standby or other_head is None or other_head.priority != Priority.URGENT:
            return False
        assert s.standby is not None
        q, g = self.queue, self.gateway
        standby_head = q.peek(g, s.standby)
        if standby_head is not None and standby_head.priority == Priority.URGENT:
            return False
        waiting = 0
        for account in q.accounts(g):
            head = q.peek(g, account)
            if (
                account not in (s.active, s.standby)
                and head is not None
                and head.priority == Priority.URGENT
            ):
                waiting += 1
        remaining = (s.standby_ready_at or now) - now
        return remaining + self.switch_cost * waiting > self.urgent_target


class SeedSessionPolicy:
    """The seed design, kept as a baseline: one priority queue (VIP - and URGENT - first, then
    arrival time); whenever the next order belongs to another account, switch to it."""

    name = "seed"
    preload = False

    def __init__(self) -> None:
        self._heap: list[tuple[int, float, int, QueueItem]] = []
        self._n = 0

    def push(self, item: QueueItem) -> None:
        self._n += 1
        cls = 0 if item.priority in (Priority.URGENT, Priority.VIP) else 1
        heapq.heappush(self._heap, (cls, item.enqueued_at, self._n, item))

    def take(self, account: int) -> QueueItem | None:
        if self._heap and self._heap[0][3].account_id == account:
            return heapq.heappop(self._heap)[3]
        return None

    def pending(self) -> int:
        return len(self._heap)

    def decide(self, now: float, s: SessionState) -> Decision:
        if not self._heap:
            return Decision(Act.WAIT)
        head = self._heap[0][3]
        if head.account_id != s.active:
            return Decision(Act.SWITCH, head.account_id)
        if now >= s.next_send_at:
            return Decision(Act.SEND, s.active)
        return Decision(Act.WAIT, until=s.next_send_at)
