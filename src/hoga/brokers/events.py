"""The queue between a broker adapter and the order service's execution-event sink."""

from __future__ import annotations

import asyncio
import contextlib
import logging

from hoga.brokers.base import EventSink, ExecutionEvent

log = logging.getLogger(__name__)


class EventPump:
    """Delivers one broker's execution events to the sink in the order they were emitted, one
    at a time and off the emitter's stack, so a slow sink never blocks a socket reader.

    Contract: ``emit`` never blocks or raises; events emitted before ``start`` or after ``stop``
    are dropped (nothing is listening, and reconciliation recovers what they said); a sink that
    raises is logged and the next event is still delivered; ``drain`` waits until everything
    emitted so far has been handled.
    """

    def __init__(self, name: str) -> None:
        self.name = name
        self.sink: EventSink | None = None
        self._queue: asyncio.Queue[tuple[int, ExecutionEvent]] | None = None
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        if self._queue is None:
            self._queue = asyncio.Queue()
            self._task = asyncio.get_running_loop().create_task(
                self._deliver(self._queue), name=f"{self.name}-events"
            )

    async def stop(self) -> None:
        task, self._task, self._queue = self._task, None, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def drain(self) -> None:
        if self._queue is not None:
            await self._queue.join()

    def emit(self, account_id: int, event: ExecutionEvent) -> None:
        if self._queue is not None:
            self._queue.put_nowait((account_id, event))

    async def _deliver(self, queue: asyncio.Queue[tuple[int, ExecutionEvent]]) -> None:
        while True:
            account_id, event = await queue.get()
            try:
                if self.sink is not None:
                    await self.sink(account_id, event)
            except Exception:
                log.exception(
                    "%s execution event sink failed for account %s", self.name, account_id
                )
            finally:
                queue.task_done()


class PumpedEvents:
    """What every adapter does with its execution events: they go through one ``EventPump``
    (``_events``, made by the adapter) to the sink the pipeline sets."""

    _events: EventPump

    def set_event_sink(self, sink: EventSink) -> None:
        self._events.sink = sink

    async def drain(self) -> None:
        """Wait until every queued execution event has reached the sink (tests use this)."""
        await self._events.drain()

    def _emit_all(self, account_id: int, events: list[ExecutionEvent]) -> None:
        for event in events:
            self._events.emit(account_id, event)
