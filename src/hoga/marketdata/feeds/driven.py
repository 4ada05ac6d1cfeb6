"""The one task an in-process feed drives itself with (the replay and the simulator)."""

from __future__ import annotations

import asyncio
import contextlib


class Driven:
    """A feed whose ticks come from its own ``_run`` task: ``start`` starts it once,
    ``stop_driving`` cancels it and waits for it to end."""

    task_name = "feed"
    _task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        raise NotImplementedError

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name=self.task_name)

    async def stop_driving(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
