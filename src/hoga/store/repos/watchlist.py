"""Each user's watchlist (관심종목): symbols in the user's order, replaced whole."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete, insert, select
from sqlalchemy.ext.asyncio import AsyncConnection

from hoga.store import tables as t


async def symbols(conn: AsyncConnection, user_id: int) -> list[str]:
    rows = await conn.execute(
        select(t.watchlist.c.symbol)
        .where(t.watchlist.c.user_id == user_id)
        .order_by(t.watchlist.c.position, t.watchlist.c.symbol)
    )
    return [str(r[0]) for r in rows]


async def replace(conn: AsyncConnection, user_id: int, new: list[str], now: datetime) -> None:
    """The list becomes ``new`` (already validated and de-duplicated), in that order."""
    await conn.execute(delete(t.watchlist).where(t.watchlist.c.user_id == user_id))
    if new:
        await conn.execute(
            insert(t.watchlist),
            [
                {"user_id": user_id, "symbol": s, "position": i, "added_at": now}
                for i, s in enumerate(new)
            ],
        )
