"""What the strategies page shows besides the strategy itself: its recent log lines (the live
stream only carries lines sent while a page listens) and its P&L after each fill."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from hoga.api.bounds import Id
from hoga.api.deps import User, get_hoga
from hoga.api.schemas import SIGNED_IN, answer
from hoga.api.schemas.strategies import StrategyLog, StrategyPnlSeries

router = APIRouter(tags=["strategies"])


@router.get("/api/strategies/{strategy_id}/log", **answer(StrategyLog, *SIGNED_IN, 404, 422))
async def strategy_log(strategy_id: Id, ctx: User, request: Request) -> dict[str, Any]:
    hoga = get_hoga(request)
    await hoga.strategies.get(ctx.user_id, strategy_id)  # 404 unless it is the caller's
    return {"lines": hoga.live_strategies.recent_log(ctx.user_id, strategy_id)}


@router.get("/api/strategies/{strategy_id}/pnl", **answer(StrategyPnlSeries, *SIGNED_IN, 404, 422))
async def strategy_pnl(strategy_id: Id, ctx: User, request: Request) -> dict[str, Any]:
    hoga = get_hoga(request)
    await hoga.strategies.get(ctx.user_id, strategy_id)
    return {"points": await hoga.history.strategy_pnl(ctx.user_id, strategy_id)}
