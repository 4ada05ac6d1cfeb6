"""Cash, positions and fills: the books of each account.

Cash is a running balance on the account row, with every movement also written to the
ledger; positions hold quantity, cost basis and realised P&L. Fill, position and ledger writes
for one execution happen in the caller's single transaction.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Final

from sqlalchemy import bindparam, func, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from hoga.domain.fills import Execution
from hoga.domain.portfolio import Position
from hoga.store import tables as t
from hoga.store.rows import from_row

# Built once (see repos/orders.py): these run on every order and fill.
_LEDGER_ROW = insert(t.cash_ledger)
_CASH_ADD = (
    update(t.broker_accounts)
    .where(
        t.broker_accounts.c.id == bindparam("aid"), t.broker_accounts.c.user_id == bindparam("uid")
    )
    .values(cash=t.broker_accounts.c.cash + bindparam("amount"))
)
_CASH = select(t.broker_accounts.c.cash).where(
    t.broker_accounts.c.id == bindparam("aid"), t.broker_accounts.c.user_id == bindparam("uid")
)
_POSITIONS = (
    select(t.positions)
    .where(t.positions.c.user_id == bindparam("uid"), t.positions.c.qty != 0)
    .order_by(t.positions.c.account_id, t.positions.c.symbol)
)
# One account's position in one symbol: the row a fill or a hand settlement rewrites.
_THIS_POSITION = (
    t.positions.c.user_id == bindparam("uid"),
    t.positions.c.account_id == bindparam("aid"),
    t.positions.c.symbol == bindparam("sym"),
)
_POSITION = select(t.positions).where(*_THIS_POSITION)
_POSITION_FOR_UPDATE = _POSITION.with_for_update()
_POSITION_SET = (
    update(t.positions)
    .where(*_THIS_POSITION)
    .values(
        qty=bindparam("qty"),
        cost=bindparam("cost"),
        realized_pnl=bindparam("rpnl"),
        updated_at=bindparam("now"),
    )
)
_POSITION_NEW = insert(t.positions)
_FILL_NEW = insert(t.fills).returning(t.fills.c.id)
_DAY = select(t.daily_counters).where(
    t.daily_counters.c.user_id == bindparam("uid"),
    t.daily_counters.c.trading_day == bindparam("day"),
)
_DAY_ADD = (
    update(t.daily_counters)
    .where(
        t.daily_counters.c.user_id == bindparam("uid"),
        t.daily_counters.c.trading_day == bindparam("day"),
    )
    .values(
        trades=t.daily_counters.c.trades + bindparam("trades"),
        realized_pnl=t.daily_counters.c.realized_pnl + bindparam("realized"),
        unrealized_start=func.coalesce(t.daily_counters.c.unrealized_start, bindparam("ustart")),
    )
)
_DAY_NEW = insert(t.daily_counters)


@dataclass(frozen=True, slots=True)
class FillRecord(Execution):
    """One row of the fills ledger."""

    id: int
    user_id: int
    account_id: int
    order_id: int
    strategy_id: int | None
    broker_fill_id: str
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
    return from_row(FillRecord, r)


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
        _LEDGER_ROW,
        {
            "user_id": user_id,
            "account_id": account_id,
            "ts": now,
            "amount": amount,
            "kind": kind,
            "order_id": order_id,
            "fill_id": fill_id,
            "note": note,
        },
    )
    await conn.execute(_CASH_ADD, {"aid": account_id, "uid": user_id, "amount": amount})


#: Marks a fill whose amount hoga estimated from a broker's (truncated) average price.
ESTIMATED: Final = "~avg"


async def estimated_orders(
    conn: AsyncConnection, user_id: int, account_id: int, day: date
) -> dict[int, tuple[int, str]]:
    """Order id -> (filled quantity, status), for ``day``'s orders with a fill booked at an
    estimate."""
    f, o = t.fills, t.orders
    rows = await conn.execute(
        select(o.c.id, o.c.filled_qty, o.c.status)
        .join(f, f.c.order_id == o.c.id)
        .where(
            f.c.user_id == user_id,
            f.c.account_id == account_id,
            f.c.trading_day == day,
            f.c.broker_fill_id.like(f"%{ESTIMATED}%"),
        )
        .distinct()
    )
    return {int(r.id): (int(r.filled_qty), str(r.status)) for r in rows}


async def cash(conn: AsyncConnection, user_id: int, account_id: int) -> int:
    row = (await conn.execute(_CASH, {"aid": account_id, "uid": user_id})).first()
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
    rows = await conn.execute(_POSITIONS, {"uid": user_id})
    return [
        PositionRecord(r.account_id, r.symbol, r.qty, r.cost, r.realized_pnl)
        for r in rows
        if account_id is None or r.account_id == account_id
    ]


async def position(
    conn: AsyncConnection, user_id: int, account_id: int, symbol: str, *, for_update: bool = False
) -> Position:
    """The position; ``for_update`` locks its row until the transaction ends (PostgreSQL), for
    a read-modify-write that another process may race: a hand settlement from the CLI, or an
    API call on another cluster server, books outside this server's account lock."""
    stmt = _POSITION_FOR_UPDATE if for_update else _POSITION
    row = (await conn.execute(stmt, {"uid": user_id, "aid": account_id, "sym": symbol})).first()
    return Position(row.qty, row.cost, row.realized_pnl) if row else Position()


async def save_position(
    conn: AsyncConnection, user_id: int, account_id: int, symbol: str, pos: Position, now: datetime
) -> None:
    res = await conn.execute(
        _POSITION_SET,
        {
            "uid": user_id,
            "aid": account_id,
            "sym": symbol,
            "qty": pos.qty,
            "cost": pos.cost,
            "rpnl": pos.realized_pnl,
            "now": now,
        },
    )
    if res.rowcount == 0:
        await conn.execute(
            _POSITION_NEW,
            {
                "user_id": user_id,
                "account_id": account_id,
                "symbol": symbol,
                "qty": pos.qty,
                "cost": pos.cost,
                "realized_pnl": pos.realized_pnl,
                "updated_at": now,
            },
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
    exists = (
        await conn.execute(
            select(t.fills.c.id).where(
                t.fills.c.account_id == bindparam("aid"),
                t.fills.c.broker_fill_id == bindparam("bfid"),
            ),
            {"aid": account_id, "bfid": broker_fill_id},
        )
    ).first()
    if exists is not None:
        return None
    values = {
        "user_id": user_id,
        "account_id": account_id,
        "order_id": order_id,
        "strategy_id": strategy_id,
        "broker_fill_id": broker_fill_id,
        "symbol": symbol,
        "side": side,
        "qty": qty,
        "price": price,
        "commission": commission,
        "tax": tax,
        "trading_day": trading_day,
        "ts": ts,
    }
    try:
        # The check above settles duplicates; the savepoint only guards a concurrent writer
        # (fills of one account are booked under the account's lock in this process).
        async with conn.begin_nested():
            row = (await conn.execute(_FILL_NEW, values)).one()
    except IntegrityError:
        return None
    return int(row[0])


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
    row = (await conn.execute(_DAY, {"uid": user_id, "day": day})).first()
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
    params = {
        "uid": user_id,
        "day": day,
        "trades": trades,
        "realized": realized,
        "ustart": unrealized_start,
    }
    if (await conn.execute(_DAY_ADD, params)).rowcount:
        return
    try:
        async with conn.begin_nested():
            await conn.execute(
                _DAY_NEW,
                {
                    "user_id": user_id,
                    "trading_day": day,
                    "trades": trades,
                    "realized_pnl": realized,
                    "unrealized_start": unrealized_start,
                },
            )
    except IntegrityError:
        # Another transaction created the row first; add to it instead.
        await conn.execute(_DAY_ADD, params)
