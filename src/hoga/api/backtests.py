"""Backtests as background jobs: submit (202), read one with its report, list."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from hoga.api.bounds import Id
from hoga.api.deps import User, get_hoga
from hoga.api.models import BacktestBody
from hoga.api.schemas import SIGNED_IN, WITH_BODY, answer
from hoga.api.schemas.strategies import BacktestList, BacktestView
from hoga.backtest.service import BacktestRequest, BacktestService

router = APIRouter(tags=["backtests"])


def _service(request: Request) -> BacktestService:
    service: BacktestService = get_hoga(request).backtests
    return service


@router.post("/api/backtests", status_code=202, **answer(BacktestView, *SIGNED_IN, *WITH_BODY, 409))
async def submit(body: BacktestBody, ctx: User, request: Request) -> JSONResponse:
    view = await _service(request).submit(
        ctx.user_id,
        BacktestRequest(
            kind=body.kind,
            symbol=body.symbol,
            params=body.params,
            cash=body.cash,
            source=body.source,
            csv=body.csv,
            start=body.start,
            end=body.end,
            interval=body.interval,
        ),
    )
    return JSONResponse(view, status_code=202)


@router.get("/api/backtests", **answer(BacktestList, *SIGNED_IN))
async def list_backtests(ctx: User, request: Request) -> dict[str, Any]:
    return {"backtests": await _service(request).list_jobs(ctx.user_id)}


@router.get("/api/backtests/{job_id}", **answer(BacktestView, *SIGNED_IN, 404, 422))
async def get_backtest(job_id: Id, ctx: User, request: Request) -> dict[str, Any]:
    return await _service(request).get(ctx.user_id, job_id)
