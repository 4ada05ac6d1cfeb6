"""The instrument master table: replaced whole on each sync, read whole at start-up."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, insert, select
from sqlalchemy.ext.asyncio import AsyncConnection

from hoga.domain.market import Listing
from hoga.store import tables as t

_CHUNK = 500


def _row(x: Listing, source: str, now: datetime) -> dict[str, Any]:
    return {
        "symbol": x.symbol,
        "name": x.name[:100],
        "market": x.market,
        "kind": x.kind,
        "security_group": x.group[:4],
        "std_code": x.std_code[:12],
        "base_price": x.base_price,
        "listed_shares": x.listed_shares,
        "nxt": x.nxt,
        "halted": x.halted,
        "admin_issue": x.admin_issue,
        "warning": x.warning,
        "liquidation": x.liquidation,
        "listed_on": x.listed_on[:8],
        "source": source,
        "updated_at": now,
    }


async def replace_all(
    conn: AsyncConnection, listings: list[Listing], source: str, now: datetime
) -> int:
    """Make the table exactly ``listings`` (delisted symbols go); one transaction."""
    await conn.execute(delete(t.instruments))
    rows = [_row(x, source, now) for x in listings]
    for i in range(0, len(rows), _CHUNK):
        await conn.execute(insert(t.instruments), rows[i : i + _CHUNK])
    return len(rows)


async def load_all(conn: AsyncConnection) -> list[Listing]:
    rows = await conn.execute(select(t.instruments).order_by(t.instruments.c.symbol))
    return [
        Listing(
            symbol=r.symbol,
            name=r.name,
            market=r.market,
            kind=r.kind,
            group=r.security_group,
            std_code=r.std_code,
            base_price=r.base_price,
            listed_shares=r.listed_shares,
            nxt=r.nxt,
            halted=r.halted,
            admin_issue=r.admin_issue,
            warning=r.warning,
            liquidation=r.liquidation,
            listed_on=r.listed_on,
        )
        for r in rows
    ]


async def summary(conn: AsyncConnection) -> tuple[int, datetime | None, str | None]:
    """How many symbols, when they were last synced and from where."""
    row = (
        await conn.execute(
            select(
                func.count(),
                func.max(t.instruments.c.updated_at),
                func.max(t.instruments.c.source),
            ).select_from(t.instruments)
        )
    ).one()
    return int(row[0]), row[1], row[2]
