"""Trade history reads for the dashboard: pages of orders and fills under filters, and the
per-day figures the profit views are built from. Every query filters by the acting user.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import ColumnElement, Row, Table, func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from hoga.domain.orders import Order
from hoga.store import tables as t

# The row mappers of the owning repositories (one definition of each record).
from hoga.store.repos.ledger import FillRecord
from hoga.store.repos.ledger import _fill as fill_record
from hoga.store.repos.orders import _order as order_record


@dataclass(frozen=True, slots=True)
class HistoryFilter:
    """What a history page shows: trading days ``first``..``last`` (inclusive), and optionally
    one symbol, one strategy, and (orders only) some states."""

    first: date | None = None
    last: date | None = None
    symbol: str | None = None
    strategy_id: int | None = None
    statuses: tuple[str, ...] = ()


def _where(table: Table, user_id: int, f: HistoryFilter) -> list[ColumnElement[bool]]:
    """The filter on ``orders`` or ``fills`` (both carry the same columns for it); the states
    apply to orders only."""
    c = table.c
    where: list[ColumnElement[bool]] = [c.user_id == user_id]
    if f.first is not None:
        where.append(c.trading_day >= f.first)
    if f.last is not None:
        where.append(c.trading_day <= f.last)
    if f.symbol:
        where.append(c.symbol == f.symbol)
    if f.strategy_id is not None:
        where.append(c.strategy_id == f.strategy_id)
    if f.statuses and table is t.orders:
        where.append(c.status.in_(f.statuses))
    return where


async def _page(
    conn: AsyncConnection,
    table: Table,
    where: list[ColumnElement[bool]],
    newest_first: tuple[ColumnElement[Any], ...],
    offset: int,
    limit: int,
) -> tuple[Sequence[Row[Any]], int]:
    total = (await conn.execute(select(func.count()).select_from(table).where(*where))).scalar()
    rows = await conn.execute(
        select(table).where(*where).order_by(*newest_first).offset(offset).limit(limit)
    )
    return rows.all(), int(total or 0)


async def orders_page(
    conn: AsyncConnection, user_id: int, f: HistoryFilter, offset: int, limit: int
) -> tuple[list[Order], int]:
    """Newest first: (``limit`` orders from ``offset``, how many match in all)."""
    c = t.orders.c
    rows, total = await _page(
        conn, t.orders, _where(t.orders, user_id, f), (c.id.desc(),), offset, limit
    )
    return [order_record(r) for r in rows], total


async def fills_page(
    conn: AsyncConnection, user_id: int, f: HistoryFilter, offset: int, limit: int
) -> tuple[list[FillRecord], int]:
    """Newest first: (``limit`` fills from ``offset``, how many match in all)."""
    c = t.fills.c
    rows, total = await _page(
        conn, t.fills, _where(t.fills, user_id, f), (c.ts.desc(), c.id.desc()), offset, limit
    )
    return [fill_record(r) for r in rows], total


async def fills_through(conn: AsyncConnection, user_id: int, last: date) -> list[FillRecord]:
    """Every fill of the user up to trading day ``last``, oldest first (for replaying books)."""
    rows = await conn.execute(
        select(t.fills)
        .where(t.fills.c.user_id == user_id, t.fills.c.trading_day <= last)
        .order_by(t.fills.c.ts, t.fills.c.id)
    )
    return [fill_record(r) for r in rows]


async def strategy_fills(conn: AsyncConnection, user_id: int, strategy_id: int) -> list[FillRecord]:
    """Every fill of one strategy, oldest first."""
    rows = await conn.execute(
        select(t.fills)
        .where(t.fills.c.user_id == user_id, t.fills.c.strategy_id == strategy_id)
        .order_by(t.fills.c.ts, t.fills.c.id)
    )
    return [fill_record(r) for r in rows]


async def cash_movements(
    conn: AsyncConnection, user_id: int, until: datetime
) -> list[tuple[datetime, int]]:
    """(time, amount) of every cash movement before ``until``, oldest first."""
    c = t.cash_ledger.c
    rows = await conn.execute(
        select(c.ts, c.amount).where(c.user_id == user_id, c.ts < until).order_by(c.ts, c.id)
    )
    return [(r.ts, int(r.amount)) for r in rows]


async def unrealized_starts(
    conn: AsyncConnection, user_id: int, first: date, last: date
) -> dict[date, int]:
    """The unrealised P&L recorded at the start of each trading day in the range (when known)."""
    c = t.daily_counters.c
    rows = await conn.execute(
        select(c.trading_day, c.unrealized_start).where(
            c.user_id == user_id,
            c.trading_day >= first,
            c.trading_day <= last,
            c.unrealized_start.is_not(None),
        )
    )
    out: dict[date, Any] = {r.trading_day: int(r.unrealized_start) for r in rows}
    return out
