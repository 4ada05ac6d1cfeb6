"""Persisted 1-minute bars (``bars``): market data, not a tenant table (system actor)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from hoga.domain.market import Bar
from hoga.store import tables as t

MINUTE = 60


def _bar(r: Any) -> Bar:
    return Bar(r.symbol, float(r.start), r.interval, r.open, r.high, r.low, r.close, r.volume)


async def minute_bars(conn: AsyncConnection, symbol: str, start: float, end: float) -> list[Bar]:
    """One symbol's minute bars starting in ``[start, end)``, oldest first."""
    rows = await conn.execute(
        select(t.bars)
        .where(
            t.bars.c.symbol == symbol,
            t.bars.c.interval == MINUTE,
            t.bars.c.start >= int(start),
            t.bars.c.start < int(end),
        )
        .order_by(t.bars.c.start)
    )
    return [_bar(r) for r in rows]


async def minute_bars_since(conn: AsyncConnection, since: float) -> list[Bar]:
    """Every symbol's minute bars from ``since`` on, oldest first (to seed the bar builder)."""
    rows = await conn.execute(
        t.bars.select()
        .where(t.bars.c.interval == MINUTE, t.bars.c.start >= int(since))
        .order_by(t.bars.c.start)
    )
    return [_bar(r) for r in rows]


async def insert(conn: AsyncConnection, bars: Iterable[Bar]) -> None:
    """Store finished bars; a bar already stored is left as it is."""
    values = [
        {
            "symbol": b.symbol,
            "interval": b.interval,
            "start": int(b.start),
            "open": b.open,
            "high": b.high,
            "low": b.low,
            "close": b.close,
            "volume": b.volume,
        }
        for b in bars
    ]
    if not values:
        return
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    await conn.execute(dialect.insert(t.bars).values(values).on_conflict_do_nothing())
