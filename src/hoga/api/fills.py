"""The caller's own fills (executions), newest first - for the dashboard's chart and overview.

Read-only and always scoped to the signed-in user (``Queries.fills`` filters by ``user_id``,
and on PostgreSQL row-level security enforces the same again).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query, Request

from hoga.api.bounds import MAX_ID
from hoga.api.deps import User, get_hoga
from hoga.api.schemas import SIGNED_IN, FillList, errors
from hoga.domain import krx
from hoga.domain.errors import InvalidInput
from hoga.domain.fills import execution_terms
from hoga.execution.queries import FillRecord

router = APIRouter(tags=["fills"])

MAX_FILLS = 500


def fill_view(f: FillRecord) -> dict[str, Any]:
    return {
        "id": f.id,
        "order_id": f.order_id,
        "strategy_id": f.strategy_id,
        "account_id": f.account_id,
        **execution_terms(f),
        "ts": f.ts.isoformat(),
    }


@router.get("/api/fills", response_model=FillList, responses=errors(*SIGNED_IN, 422))
async def list_fills(
    ctx: User,
    request: Request,
    symbol: str | None = Query(None, max_length=12),
    order_id: int | None = Query(None, ge=1, le=MAX_ID),
    strategy_id: int | None = Query(None, ge=1, le=MAX_ID),
    limit: int = Query(100, ge=1, le=MAX_FILLS),
) -> dict[str, Any]:
    if symbol is not None:
        symbol = symbol.strip().upper()
        if not krx.is_valid_symbol(symbol):
            raise InvalidInput(
                f"종목코드 형식이 올바르지 않습니다: {symbol!r}", "fills.bad_symbol", field="symbol"
            )
    rows = await get_hoga(request).queries.fills(
        ctx.user_id, symbol=symbol, order_id=order_id, strategy_id=strategy_id, limit=limit
    )
    return {"fills": [fill_view(f) for f in rows]}
