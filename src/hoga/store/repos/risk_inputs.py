"""What the risk gate reads from the database for one order, in one statement.

The day's counters, the account's cash, what the account's open orders hold back and the
user's positions used to be four statements; each costs far more in SQLAlchemy's execution
path (and, on PostgreSQL, a round trip) than in the database, so they are read as one
``UNION ALL`` of tagged rows inside the caller's transaction. Reading them there, rather than
caching them in memory, keeps the gate exactly as current as the database: every committed
fill, order and cash movement - whichever process or path wrote it - is seen.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from typing import Any

from sqlalchemy import BigInteger, String, bindparam, cast, func, literal_column, null, select
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.types import TypeEngine

from hoga.domain.orders import OPEN, Side
from hoga.store import tables as t
from hoga.store.repos.ledger import PositionRecord

_INT: TypeEngine[Any] = BigInteger()
_STR: TypeEngine[Any] = String()


def _branch(tag: str, *cols: Any) -> Any:
    """A tagged row: (kind, account_id, symbol, side, a, b, c); missing columns are typed NULLs
    (PostgreSQL needs every branch of a UNION to agree on types)."""
    names = ("account_id", "symbol", "side", "a", "b", "c")
    types: tuple[TypeEngine[Any], ...] = (_INT, _STR, _STR, _INT, _INT, _INT)
    padded = list(cols) + [None] * (len(names) - len(cols))
    out = [literal_column(f"'{tag}'", _STR).label("kind")]
    for name, typ, col in zip(names, types, padded, strict=True):
        out.append((cast(null(), typ) if col is None else cast(col, typ)).label(name))
    return out


_o = t.orders.c
_READ = (
    select(
        *_branch(
            "d",
            None,
            None,
            None,
            t.daily_counters.c.trades,
            t.daily_counters.c.realized_pnl,
            t.daily_counters.c.unrealized_start,
        )
    )
    .where(
        t.daily_counters.c.user_id == bindparam("uid"),
        t.daily_counters.c.trading_day
        == bindparam("day", type_=t.daily_counters.c.trading_day.type),
    )
    .union_all(
        select(*_branch("c", None, None, None, t.broker_accounts.c.cash)).where(
            t.broker_accounts.c.id == bindparam("aid"),
            t.broker_accounts.c.user_id == bindparam("uid"),
        ),
        select(
            *_branch(
                "o",
                None,
                _o.symbol,
                _o.side,
                func.sum(_o.qty - _o.filled_qty),
                func.sum(_o.reserved_cash),
            )
        )
        .where(
            _o.user_id == bindparam("uid"),
            _o.account_id == bindparam("aid"),
            _o.status.in_([s.value for s in OPEN]),
        )
        .group_by(_o.side, _o.symbol),
        select(
            *_branch(
                "p",
                t.positions.c.account_id,
                t.positions.c.symbol,
                None,
                t.positions.c.qty,
                t.positions.c.cost,
                t.positions.c.realized_pnl,
            )
        ).where(t.positions.c.user_id == bindparam("uid"), t.positions.c.qty != 0),
    )
)


@dataclass(slots=True)
class RiskRows:
    """The rows behind ``RiskInputs``: the same values ``ledger.day_counters``, ``ledger.cash``,
    ``orders.exposure`` and ``ledger.positions`` return."""

    trades: int = 0
    realized: int = 0
    unrealized_start: int | None = None
    cash: int = 0
    reserved: int = 0
    open_sells: dict[str, int] = field(default_factory=dict)
    open_buys: dict[str, int] = field(default_factory=dict)
    positions: list[PositionRecord] = field(default_factory=list)


async def read(conn: AsyncConnection, user_id: int, account_id: int, day: date) -> RiskRows:
    """The day's counters, the account's cash and open-order exposure, and every position of
    the user (all accounts: the day's P&L counts them all)."""
    out = RiskRows()
    rows = await conn.execute(_READ, {"uid": user_id, "aid": account_id, "day": day})
    for kind, aid, symbol, side, a, b, c in rows:
        if kind == "p":
            out.positions.append(PositionRecord(int(aid), symbol, int(a), int(b), int(c)))
        elif kind == "o":
            out.reserved += int(b or 0)
            (out.open_sells if side == Side.SELL else out.open_buys)[symbol] = int(a or 0)
        elif kind == "c":
            out.cash = int(a)
        else:
            out.trades, out.realized = int(a), int(b)
            out.unrealized_start = None if c is None else int(c)
    return out
