"""A running strategy's log: its lines published to the owner's event stream, rate-limited,
and the last few kept for a page opened after they were sent (the event stream is live only).

Contract: every line also goes to the server log; at most 20 lines per 10 s per strategy are
published (the rest are counted and the next published line says how many were suppressed);
``recent`` answers only the strategy's owner.
"""

from __future__ import annotations

import logging
from collections import deque
from datetime import datetime
from typing import Any

from hoga.domain.clock import KST, Clock
from hoga.execution.events import EventBus
from hoga.strategies.live_run import LiveRun

log = logging.getLogger(__name__)

# Log lines kept per strategy for a page opened later (GET /api/strategies/{id}/log).
_RECENT_LOG = 200


class StrategyLogs:
    """Publishes running strategies' log lines and keeps the recent ones; see the module."""

    def __init__(self, bus: EventBus, clock: Clock) -> None:
        self._bus = bus
        self._clock = clock
        # strategy id -> (user id, lines)
        self._recent: dict[int, tuple[int, deque[dict[str, Any]]]] = {}

    def publish(self, run: LiveRun) -> None:
        """Publish the lines the strategy (or the driver on its behalf) wrote since last time."""
        lines = run.ctx.log.lines
        if not lines:
            return
        batch = list(lines)
        lines.clear()
        now = self._clock.monotonic()
        for line in batch:
            log.log(
                logging.WARNING if line.level in ("warning", "error") else logging.INFO,
                "strategy %s (%s): %s",
                run.id,
                run.rec.kind,
                line.message,
            )
            if not run.log_window.try_acquire(now):
                run.log_dropped += 1
                continue
            message = line.message
            if run.log_dropped:
                message = f"{message} (+{run.log_dropped} lines suppressed)"
                run.log_dropped = 0
            event = {
                "type": "strategy_log",
                "strategy_id": run.id,
                "level": line.level,
                "message": message,
                "ts": datetime.fromtimestamp(line.ts, KST).isoformat(),
            }
            recent = self._recent.get(run.id)
            if recent is None or recent[0] != run.rec.user_id:
                recent = self._recent[run.id] = (run.rec.user_id, deque(maxlen=_RECENT_LOG))
            recent[1].append(event)
            self._bus.publish(run.rec.user_id, event)

    def recent(self, user_id: int, strategy_id: int) -> list[dict[str, Any]]:
        """The strategy's last published log lines, oldest first (its owner's only)."""
        recent = self._recent.get(strategy_id)
        if recent is None or recent[0] != user_id:
            return []
        return list(recent[1])
