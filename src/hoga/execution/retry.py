"""Work the database could not take yet, tried again with capped back-off.

A storage fault (``StorageUnavailable``/``StorageFull``: a terminated connection, a full disk)
rolls its transaction back, so the pipeline can simply do the same step again later - as long
as nothing in memory moved on in the meantime. Two shapes of that here:

* ``persist``: run one step now, retrying a bounded number of times (recording a broker's
  answer: the order must not be resent, so the answer is worth waiting for);
* ``HeldEvents``: execution events from a broker that could not be booked; they wait, per
  account and in arrival order, and are replayed until they are booked. Later events of the
  same account queue up behind them, so a fill is never overtaken by the cancel after it.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable, Callable
from typing import TypeVar

from hoga.brokers.base import ExecutionEvent
from hoga.domain.errors import StorageUnavailable
from hoga.tasks import cancel_and_wait

log = logging.getLogger(__name__)

T = TypeVar("T")

#: Back-off of the first retry, doubling up to CAP.
BASE = 0.1
CAP = 5.0


def backoff(attempt: int, base: float = BASE, cap: float = CAP) -> float:
    """Seconds to wait before retry number ``attempt`` (0-based)."""
    return float(min(cap, base * (2 ** min(attempt, 30))))


async def persist(
    step: Callable[[], Awaitable[T]], *, what: str, attempts: int = 8, base: float = BASE
) -> T:
    """Run ``step``; after a storage fault, run it again with back-off (``attempts`` runs in
    all, about 16 s with the defaults). The last fault is raised to the caller."""
    for attempt in range(attempts):
        try:
            return await step()
        except StorageUnavailable as e:
            if attempt == attempts - 1:
                raise
            delay = backoff(attempt, base)
            log.warning("%s: storage fault (%s); retrying in %.1f s", what, e.code, delay)
            await asyncio.sleep(delay)
    raise AssertionError("unreachable")


Deliver = Callable[[int, ExecutionEvent], Awaitable[None]]


class HeldEvents:
    """Execution events waiting for the database, per account, oldest first.

    ``hold`` keeps an event and starts the account's replay task if none runs; the task
    delivers the held events in order through ``deliver`` and backs off while storage faults
    persist. ``limit`` bounds memory: beyond it the oldest event is dropped and ``on_drop`` is
    told the account (reconciliation then books from the broker's reports what it said).
    """

    def __init__(self, deliver: Deliver, on_drop: Callable[[int], None], limit: int = 10_000):
        self._deliver = deliver
        self._on_drop = on_drop
        self.limit = limit
        self._held: dict[int, deque[ExecutionEvent]] = {}
        self._tasks: dict[int, asyncio.Task[None]] = {}
        self.dropped = 0

    def holding(self, account_id: int) -> bool:
        return bool(self._held.get(account_id))

    def count(self) -> int:
        return sum(len(q) for q in self._held.values())

    def hold(self, account_id: int, event: ExecutionEvent) -> None:
        queue = self._held.setdefault(account_id, deque())
        queue.append(event)
        if self.count() > self.limit:
            queue.popleft()
            self.dropped += 1
            self._on_drop(account_id)
        task = self._tasks.get(account_id)
        if task is None or task.done():
            self._tasks[account_id] = asyncio.get_running_loop().create_task(
                self._replay(account_id), name=f"held-events-{account_id}"
            )

    async def _replay(self, account_id: int) -> None:
        queue = self._held[account_id]
        attempt = 0
        while queue:
            await asyncio.sleep(backoff(attempt))
            try:
                await self._deliver(account_id, queue[0])
            except StorageUnavailable as e:
                attempt += 1
                if attempt in (1, 10) or attempt % 50 == 0:
                    log.warning(
                        "account %s: %d execution event(s) wait for the database (%s)",
                        account_id,
                        len(queue),
                        e.code,
                    )
                continue
            except Exception:
                log.exception("account %s: a held execution event failed; dropped", account_id)
                self._on_drop(account_id)
            if queue:
                queue.popleft()
            attempt = 0
        self._held.pop(account_id, None)
        self._tasks.pop(account_id, None)

    async def stop(self) -> None:
        tasks = list(self._tasks.values())
        self._tasks.clear()
        await cancel_and_wait(tasks)
