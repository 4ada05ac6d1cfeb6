"""Orders as the queue and the dispatcher see them, for the queue, dispatcher and pacing
tests and the scheduler benchmarks: ``place_item`` (a new order's queue item) and
``max_in_window`` (arrivals counted against a broker's rate limit)."""

from __future__ import annotations

from collections import deque

from hoga.domain.orders import Priority
from hoga.execution.queue import Kind, QueueItem
from hoga.fakes.kiwoom.server import KeyStats


def place_item(
    order_id: int,
    priority: Priority = Priority.NORMAL,
    at: float = 0.0,
    *,
    account: int = 1,
    gateway: str = "g",
) -> QueueItem:
    """The queue item that places order ``order_id`` of ``account`` on ``gateway``, queued at
    ``at``; the account is its user's only one (user id = account id)."""
    return QueueItem(
        order_id=order_id,
        user_id=account,
        account_id=account,
        gateway=gateway,
        kind=Kind.PLACE,
        priority=priority,
        enqueued_at=at,
    )


def max_in_window(times: list[float], window: float) -> int:
    """The most of ``times`` (in any order) within any ``window`` seconds, counted as the
    Kiwoom fake counts a key's requests against its rate limit."""
    return KeyStats(times=deque(sorted(times))).max_in_window(window)
