"""Backtest jobs: one row per job, scoped by user; the result is stored as JSON when done."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from hoga.store import tables as t
from hoga.store.repos import new_id
from hoga.store.rows import from_row


@dataclass(frozen=True, slots=True)
class BacktestRecord:
    id: int
    user_id: int
    kind: str
    symbol: str
    params: dict[str, Any]
    status: str
    result: dict[str, Any] | None
    error: str | None
    created_at: datetime
    finished_at: datetime | None


def _rec(r: Any) -> BacktestRecord:
    return from_row(BacktestRecord, r, params=dict(r.params or {}))


async def create(
    conn: AsyncConnection,
    *,
    user_id: int,
    kind: str,
    symbol: str,
    params: dict[str, Any],
    now: datetime,
) -> BacktestRecord:
    res = await conn.execute(
        insert(t.backtests).values(
            user_id=user_id,
            kind=kind,
            symbol=symbol,
            params=params,
            status="queued",
            created_at=now,
        )
    )
    rec = await get(conn, user_id, new_id(res))
    assert rec is not None
    return rec


async def get(conn: AsyncConnection, user_id: int, job_id: int) -> BacktestRecord | None:
    row = (
        await conn.execute(
            select(t.backtests).where(t.backtests.c.id == job_id, t.backtests.c.user_id == user_id)
        )
    ).first()
    return _rec(row) if row else None


async def list_for_user(
    conn: AsyncConnection, user_id: int, limit: int = 100
) -> list[BacktestRecord]:
    cols = [c for c in t.backtests.c if c.name != "result"]
    rows = await conn.execute(
        select(*cols)
        .where(t.backtests.c.user_id == user_id)
        .order_by(t.backtests.c.id.desc())
        .limit(limit)
    )
    return [
        BacktestRecord(
            id=r.id,
            user_id=r.user_id,
            kind=r.kind,
            symbol=r.symbol,
            params=dict(r.params or {}),
            status=r.status,
            result=None,
            error=r.error,
            created_at=r.created_at,
            finished_at=r.finished_at,
        )
        for r in rows
    ]


async def finish(
    conn: AsyncConnection,
    user_id: int,
    job_id: int,
    *,
    status: str,
    now: datetime | None,
    result: dict[str, Any] | None = None,
    error: str | None = None,
) -> None:
    await conn.execute(
        update(t.backtests)
        .where(t.backtests.c.id == job_id, t.backtests.c.user_id == user_id)
        .values(status=status, result=result, error=error, finished_at=now)
    )


async def interrupted(conn: AsyncConnection, now: datetime) -> int:
    """Jobs a restart cut short (their data lived in memory): marked as errors."""
    res = await conn.execute(
        update(t.backtests)
        .where(t.backtests.c.status.in_(["queued", "running"]))
        .values(
            status="error",
            error="서버가 재시작되어 백테스트가 중단되었습니다; 다시 실행하세요 "
            "(the server restarted before this backtest finished; run it again)",
            finished_at=now,
        )
    )
    return int(res.rowcount or 0)
