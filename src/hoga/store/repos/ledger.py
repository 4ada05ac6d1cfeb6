"""Cash, positions and fills: the books of each account.

Cash is a running balance on the account row, with every movement also written to the
ledger; positions hold quantity, cost basis and realised P&L. Fill, position and ledger writes
for one execution happen in the caller's single transaction.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import func, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from hoga.domain.portfolio import Position
from hoga.store import tables as t
from hoga.store.repos import new_id


@dataclass(frozen=True, slots=True)
class FillRecord:
    id: int
    user_id: int
    account_id: int
    order_id: int
    strategy_id: int | None
    broker_fill_id: str
    symbol: str
    side: str
    qty: int
    price: int
    commission: int
    tax: int
    ts: datetime


@dataclass(frozen=True, slots=True)
class PositionRecord:
    account_id: int
    symbol: str
    qty: int
    cost: int
    realized_pnl: int

    @property
    def position(self) -> Position:
        return Position(self.qty, self.cost, self.realized_pnl)


def _fill(r: Any) -> FillRecord:
    return FillRecord(
        id=r.id,
        user_id=r.user_id,
        account_id=r.account_id,
        order_id=r.order_id,
        strategy_id=r.strategy_id,
        broker_fill_id=r.broker_fill_id,
        symbol=r.symbol,
        side=r.side,
        qty=r.qty,
        price=r.price,
        commission=r.commission,
        tax=r.tax,
        ts=r.ts,
    )


async def post_cash(
    conn: AsyncConnection,
    user_id: int,
    account_id: int,
    amount: int,
    kind: str,
    now: datetime,
    *,
    order_id: int | None = None,
    fill_id: int | None = None,
    note: str | None = None,
) -> None:
    """Move cash: one ledger row and the running balance, together."""
    if amount == 0:
        return
    await conn.execute(
        insert(t.cash_ledger).values(
            user_id=user_id,
            account_id=account_id,
            ts=now,
            amount=amount,
            kind=kind,
            order_id=order_id,
            fill_id=fill_id,
            note=note,
        )
    )
    await conn.execute(
        update(t.broker_accounts)
        .where(t.broker_accounts.c.id == account_id, t.broker_accounts.c.user_id == user_id)
        .values(cash=t.broker_accounts.c.cash + amount)
    )


async def cash(conn: AsyncConnection, user_id: int, account_id: int) -> int:
    row = (
        await conn.execute(
            select(t.broker_accounts.c.cash).where(
                t.broker_accounts.c.id == account_id, t.broker_accounts.c.user_id == user_id
            )
        )
    ).first()
    return int(row[0]) if row else 0


async def ledger_sum(conn: AsyncConnection, user_id: int, account_id: int) -> int:
    """The sum of the ledger (equals ``cash`` unless something is wrong)."""
    n = await conn.execute(
        select(func.coalesce(func.sum(t.cash_ledger.c.amount), 0)).where(
            t.cash_ledger.c.user_id == user_id, t.cash_ledger.c.account_id == account_id
        )
    )
    return int(n.scalar_one())


async def positions(
    conn: AsyncConnection, user_id: int, account_id: int | None = None
) -> list[PositionRecord]:
    q = select(t.positions).where(t.positions.c.user_id == user_id, t.positions.c.qty != 0)
    if account_id is not None:
        q = q.where(t.positions.c.account_id == account_id)
    rows = await conn.execute(q.order_by(t.positions.c.account_id, t.positions.c.symbol))
    return [PositionRecord(r.account_id, r.symbol, r.qty, r.cost, r.realized_pnl) for r in rows]


async def position(conn: AsyncConnection, user_id: int, account_id: int, symbol: str) -> Position:
    row = (
        await conn.execute(
            select(t.positions).where(
                t.positions.c.user_id == user_id,
                t.positions.c.account_id == account_id,
                t.positions.c.symbol == symbol,
            )
        )
    ).first()
    return Position(row.qty, row.cost, row.realized_pnl) if row else Position()


async def save_position(
    conn: AsyncConnection, user_id: int, account_id: int, symbol: str, pos: Position, now: datetime
) -> None:
    res = await conn.execute(
        update(t.positions)
        .where(
            t.positions.c.user_id == user_id,
            t.positions.c.account_id == account_id,
            t.positions.c.symbol == symbol,
        )
        .values(qty=pos.qty, cost=pos.cost, realized_pnl=pos.realized_pnl, updated_at=now)
    )
    if res.rowcount == 0:
        await conn.execute(
            insert(t.positions).values(
                user_id=user_id,
                account_id=account_id,
                symbol=symbol,
                qty=pos.qty,
                cost=pos.cost,
                realized_pnl=pos.realized_pnl,
                updated_at=now,
            )
        )


async def insert_fill(
    conn: AsyncConnection,
    *,
    user_id: int,
    account_id: int,
    order_id: int,
    strategy_id: int | None,
    broker_fill_id: str,
    symbol: str,
    side: str,
    qty: int,
    price: int,
    commission: int,
    tax: int,
    trading_day: date,
    ts: datetime,
) -> int | None:
    """Insert a fill; None when this broker fill id was already booked (a duplicate report)."""
    try:
        async with conn.begin_nested():
            res = await conn.execute(
                insert(t.fills).values(
                    user_id=user_id,
                    account_id=account_id,
                    order_id=order_id,
                    strategy_id=strategy_id,
                    broker_fill_id=broker_fill_id,
                    symbol=symbol,
                    side=side,
                    qty=qty,
                    price=price,
                    commission=commission,
                    tax=tax,
                    trading_day=trading_day,
                    ts=ts,
                )
            )
    except IntegrityError:
        return None
    return new_id(res)


async def fills(
    conn: AsyncConnection,
    user_id: int,
    *,
    order_id: int | None = None,
    strategy_id: int | None = None,
    symbol: str | None = None,
    limit: int = 200,
) -> list[FillRecord]:
    q = select(t.fills).where(t.fills.c.user_id == user_id)
    if order_id is not None:
        q = q.where(t.fills.c.order_id == order_id)
    if strategy_id is not None:
        q = q.where(t.fills.c.strategy_id == strategy_id)
    if symbol is not None:
        q = q.where(t.fills.c.symbol == symbol)
    rows = await conn.execute(q.order_by(t.fills.c.id.desc()).limit(limit))
    return [_fill(r) for r in rows]


async def day_counters(
    conn: AsyncConnection, user_id: int, day: date
) -> tuple[int, int, int | None]:
    """(trades, realised P&L, unrealised-at-start) for a user's trading day."""
    row = (
        await conn.execute(
            select(t.daily_counters).where(
                t.daily_counters.c.user_id == user_id, t.daily_counters.c.trading_day == day
            )
        )
    ).first()
    if row is None:
        return 0, 0, None
    return int(row.trades), int(row.realized_pnl), row.unrealized_start


async def bump_day(
    conn: AsyncConnection,
    user_id: int,
    day: date,
    *,
    trades: int = 0,
    realized: int = 0,
    unrealized_start: int | None = None,
) -> None:
    """Add to a day's counters, creating the row on first use."""
    stmt = (
        update(t.daily_counters)
        .where(t.daily_counters.c.user_id == user_id, t.daily_counters.c.trading_day == day)
        .values(
            trades=t.daily_counters.c.trades + trades,
            realized_pnl=t.daily_counters.c.realized_pnl + realized,
            unrealized_start=func.coalesce(t.daily_counters.c.unrealized_start, unrealized_start),
        )
    )
    if (await conn.execute(stmt)).rowcount:
        return
    try:
        async with conn.begin_nested():
            await conn.execute(
                insert(t.daily_counters).values(
                    user_id=user_id,
                    trading_day=day,
                    trades=trades,
                    realized_pnl=realized,
                    unrealized_start=unrealized_start,
                )
            )
    except IntegrityError:
        # Another transaction created the row first; add to it instead.
        await conn.execute(stmt)
