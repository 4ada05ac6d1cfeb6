"""Strategies: the catalog, and each user's strategies (create, list, start, stop, pause, delete)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from hoga.api.bounds import Id
from hoga.api.deps import User, client_ip, get_hoga
from hoga.api.models import StrategyCreateBody
from hoga.api.schemas import SIGNED_IN, WITH_BODY, Ok, answer
from hoga.api.schemas.strategies import StrategyCatalog, StrategyList, StrategyView
from hoga.strategies.service import StrategyService

router = APIRouter(tags=["strategies"])


def _runner(request: Request) -> StrategyService:
    runner: StrategyService = get_hoga(request).strategies
    return runner


@router.get("/api/strategy-catalog", **answer(StrategyCatalog, *SIGNED_IN))
async def catalog(ctx: User, request: Request) -> dict[str, Any]:
    return {"strategies": _runner(request).catalog.describe()}


@router.post(
    "/api/strategies", status_code=201, **answer(StrategyView, *SIGNED_IN, *WITH_BODY, 404, 409)
)
async def create(body: StrategyCreateBody, ctx: User, request: Request) -> dict[str, Any]:
    return await _runner(request).create(
        ctx.user_id,
        name=body.name,
        kind=body.kind,
        symbols=body.symbols,
        params=body.params,
        account_id=body.account_id,
        ip=client_ip(request),
    )


@router.get("/api/strategies", **answer(StrategyList, *SIGNED_IN))
async def list_strategies(ctx: User, request: Request) -> dict[str, Any]:
    return {"strategies": await _runner(request).list_strategies(ctx.user_id)}


@router.get("/api/strategies/{strategy_id}", **answer(StrategyView, *SIGNED_IN, 404, 422))
async def get_strategy(strategy_id: Id, ctx: User, request: Request) -> dict[str, Any]:
    return await _runner(request).get(ctx.user_id, strategy_id)


@router.post(
    "/api/strategies/{strategy_id}/start", **answer(StrategyView, *SIGNED_IN, 404, 409, 422)
)
async def start(strategy_id: Id, ctx: User, request: Request) -> dict[str, Any]:
    return await _runner(request).start_strategy(ctx.user_id, strategy_id, ip=client_ip(request))


@router.post(
    "/api/strategies/{strategy_id}/stop", **answer(StrategyView, *SIGNED_IN, 404, 409, 422)
)
async def stop(strategy_id: Id, ctx: User, request: Request) -> dict[str, Any]:
    return await _runner(request).stop_strategy(ctx.user_id, strategy_id, ip=client_ip(request))


@router.post(
    "/api/strategies/{strategy_id}/pause", **answer(StrategyView, *SIGNED_IN, 404, 409, 422)
)
async def pause(strategy_id: Id, ctx: User, request: Request) -> dict[str, Any]:
    return await _runner(request).pause(ctx.user_id, strategy_id, ip=client_ip(request))


@router.delete("/api/strategies/{strategy_id}", **answer(Ok, *SIGNED_IN, 404, 409, 422))
async def delete(strategy_id: Id, ctx: User, request: Request) -> dict[str, Any]:
    await _runner(request).delete(ctx.user_id, strategy_id, ip=client_ip(request))
    return {"ok": True}
