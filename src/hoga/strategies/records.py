"""The stored side of strategies, shared by the strategy service and the live driver.

Contract: every status change is written with ``update`` (optionally audited) and announced to
the owner's event stream as ``{"type": "strategy", "strategy": view}``; ``set_error`` records why
a strategy stopped (and counts it for the admin's status). One lock per user serialises changes
to that user's strategies - their records and their running instances alike.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from typing import Any

from hoga.domain.clock import Clock
from hoga.domain.errors import NotFound
from hoga.domain.market import QuoteSource
from hoga.execution.events import EventBus
from hoga.marketdata.hub import Hub
from hoga.store.db import Actor, Database
from hoga.store.repos import audit
from hoga.store.repos import strategies as repo
from hoga.strategies.pnl import strategy_view

STATUSES = ("created", "running", "paused", "stopped", "error")


class StrategyRecords:
    """Reads, writes and announces strategy records; see the module docstring."""

    def __init__(
        self, db: Database, clock: Clock, bus: EventBus, hub: Hub, quotes: QuoteSource
    ) -> None:
        self.db = db
        self.clock = clock
        self.bus = bus
        self._hub = hub
        self._quotes = quotes
        self._locks: dict[int, asyncio.Lock] = defaultdict(asyncio.Lock)
        #: Strategies stopped by an error since the server started.
        self.errors = 0

    def lock(self, user_id: int) -> asyncio.Lock:
        """The lock that serialises changes to one user's strategies."""
        return self._locks[user_id]

    async def get(self, user_id: int, strategy_id: int) -> repo.StrategyRecord:
        """The user's strategy, or ``NotFound`` (another user's strategy is not found)."""
        async with self.db.tx(Actor.user(user_id)) as conn:
            rec = await repo.get(conn, user_id, strategy_id)
        if rec is None:
            raise NotFound("전략을 찾을 수 없습니다 (no such strategy)", "strategy.not_found")
        return rec

    def price_of(self, symbol: str) -> int | None:
        """The last traded price the hub (or, before any tick, the quote source) knows."""
        tick = self._hub.last(symbol) or self._quotes.last(symbol)
        return tick.price if tick else None

    async def view(self, rec: repo.StrategyRecord) -> dict[str, Any]:
        async with self.db.tx(Actor.user(rec.user_id)) as conn:
            fills = await repo.fills(conn, rec.user_id, rec.id)
            counts = await repo.order_counts(conn, rec.user_id)
        return strategy_view(rec, fills, counts.get(rec.id, 0), self.price_of)

    async def announce(self, rec: repo.StrategyRecord) -> dict[str, Any]:
        """Publish the strategy's view to its owner and return it."""
        view = await self.view(rec)
        self.bus.publish(rec.user_id, {"type": "strategy", "strategy": view})
        return view

    async def update(
        self,
        rec: repo.StrategyRecord,
        *,
        audit_action: str | None = None,
        ip: str | None = None,
        **values: Any,
    ) -> repo.StrategyRecord:
        now = self.clock.now()
        async with self.db.tx(Actor.user(rec.user_id)) as conn:
            fresh = await repo.update_row(conn, rec.user_id, rec.id, now, **values)
            if audit_action:
                await audit.record(
                    conn,
                    action=audit_action,
                    now=now,
                    user_id=rec.user_id,
                    ip=ip,
                    target=f"strategy:{rec.id}",
                    detail={"status": values.get("status")},
                )
        if fresh is None:
            raise NotFound("전략을 찾을 수 없습니다 (no such strategy)", "strategy.not_found")
        return fresh

    async def set_error(self, rec: repo.StrategyRecord, message: str) -> repo.StrategyRecord:
        """Record that the strategy stopped with an error, and announce it."""
        self.errors += 1
        fresh = await self.update(
            rec, status="error", last_error=message[:2000], error_at=self.clock.now()
        )
        await self.announce(fresh)
        return fresh
