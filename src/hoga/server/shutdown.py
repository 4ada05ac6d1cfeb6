"""Shutdown: the start-up sequence in reverse, bounded in time."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from hoga.server import ops
from hoga.tasks import cancel_and_wait

if TYPE_CHECKING:
    from hoga.app import HogaApp

# The records keep the composition root's logger name (operators filter on it).
log = logging.getLogger("hoga.app")

# HogaApp.stop() returns within this many seconds (plus 0.5 s for each part left once it has
# passed), so a service manager's stop timeout can be set from it: deploy/hoga.service uses
# 30 s for this, uvicorn's 3 s connection drain and a margin (tests/unit/test_deploy_files.py).
STOP_DEADLINE = 12.0


async def stop(app: HogaApp) -> None:
    """Shut down in reverse order within ``STOP_DEADLINE`` seconds in all: each step gets at
    most 3 s and what is left of the deadline (a step cut short is logged and skipped)."""
    steps: list[tuple[str, Callable[[], Awaitable[None]]]] = [
        ("operations", lambda: ops.stop(app)),
        ("auth changes", app.auth_watch.stop),
        ("strategies", app.live_strategies.stop),
        ("backtests", app.backtests.stop),
        ("reconciler", app.reconciler.stop),
        ("queue resync", app.resync.stop),
        ("dispatcher", lambda: app.dispatcher.stop(grace=3.0)),
        ("held events", app.orders.stop),
        # Quota shares go back to the cluster while the NATS connection is still open.
        *([("cluster limits", app.cluster_limits.stop)] if app.cluster_limits else []),
        *([("cluster", app.cluster.stop)] if app.cluster is not None else []),
        ("hub", app.hub.stop),
        ("feed", app.feed.close),
        ("background", lambda: stop_background(app)),
        ("bars", app._flush_bars),
    ]
    steps += [(f"broker {n}", b.stop) for n, b in app.brokers.items()]
    steps.append(("database", app.db.close))
    if app._guarded:
        steps.append(("server lock", lambda: release_guard(app)))
    deadline = time.monotonic() + STOP_DEADLINE
    for name, step in steps:
        # Later steps (the database, the server lock) always get a moment: a slow early step
        # must not leave the lock held until the process dies.
        budget = min(3.0, max(0.5, deadline - time.monotonic()))
        try:
            await asyncio.wait_for(step(), budget)
        except Exception as e:
            log.warning("shutdown step %s: %s", name, type(e).__name__)
    app._started = False


async def release_guard(app: HogaApp) -> None:
    """Give up the one-server lock (the last step)."""
    app._guarded = False
    await app.guard.release()


async def stop_background(app: HogaApp) -> None:
    """Cancel the background tasks and wait for each to end."""
    await cancel_and_wait(app._background)
    app._background = []
