"""Per-user event streams: order, fill and strategy events for ``/ws/events`` and strategies.

Publishing never blocks: each subscriber has a bounded queue, and a subscriber that falls that
far behind loses its oldest events and is told how many it missed, instead of slowing the
publisher (the order pipeline) or growing without bound.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Any

Event = dict[str, Any]


class Subscription:
    """One consumer's view of a user's events."""

    def __init__(self, bus: EventBus, user_id: int | None, maxsize: int) -> None:
        self._bus = bus
        self.user_id = user_id
        self._queue: asyncio.Queue[Event] = asyncio.Queue(maxsize)
        self.dropped = 0

    def offer(self, event: Event) -> None:
        if self._queue.full():
            with contextlib.suppress(asyncio.QueueEmpty):
                self._queue.get_nowait()
            self.dropped += 1
        self._queue.put_nowait(event)

    async def get(self) -> Event:
        event = await self._queue.get()
        if self.dropped:
            n, self.dropped = self.dropped, 0
            return {"type": "gap", "missed": n, "next": event}
        return event

    def get_nowait(self) -> Event | None:
        try:
            return self._queue.get_nowait()
        except asyncio.QueueEmpty:
            return None

    def close(self) -> None:
        self._bus._remove(self)

    async def __aiter__(self) -> AsyncIterator[Event]:
        while True:
            yield await self.get()


class EventBus:
    """Fan-out of events by user. ``user_id=None`` subscribes to everyone's (internal use)."""

    def __init__(self, maxsize: int = 1000) -> None:
        self._maxsize = maxsize
        self._subs: dict[int | None, list[Subscription]] = {}
        self._hooks: list[Callable[[int, Event], None]] = []

    def subscribe(self, user_id: int | None, maxsize: int | None = None) -> Subscription:
        sub = Subscription(self, user_id, maxsize or self._maxsize)
        self._subs.setdefault(user_id, []).append(sub)
        return sub

    def add_hook(self, fn: Callable[[int, Event], None]) -> None:
        """Synchronous callback for every event (strategies' on_fill dispatch uses this)."""
        self._hooks.append(fn)

    def _remove(self, sub: Subscription) -> None:
        subs = self._subs.get(sub.user_id)
        if subs and sub in subs:
            subs.remove(sub)

    def publish(self, user_id: int, event: Event) -> None:
        for sub in self._subs.get(user_id, ()):
            sub.offer(event)
        for sub in self._subs.get(None, ()):
            sub.offer({**event, "user_id": user_id})
        for fn in self._hooks:
            fn(user_id, event)

    def subscribers(self, user_id: int) -> int:
        return len(self._subs.get(user_id, ()))
