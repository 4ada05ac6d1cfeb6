"""The caller's watchlist (관심종목): ``GET``/``PUT /api/me/watchlist``."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field

from hoga.api.deps import User, get_hoga
from hoga.api.schemas import SIGNED_IN, WITH_BODY, answer
from hoga.api.schemas.accounts import Watchlist
from hoga.execution.watchlist import WatchlistService

router = APIRouter(tags=["watchlist"])


class WatchlistBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # The service refuses more than 100 with its own code; this bound only stops huge bodies.
    symbols: list[str] = Field(max_length=1000)


def _service(request: Request) -> WatchlistService:
    return get_hoga(request).watchlist


@router.get("/api/me/watchlist", **answer(Watchlist, *SIGNED_IN))
async def get_watchlist(ctx: User, request: Request) -> dict[str, Any]:
    return {"symbols": await _service(request).get(ctx.user_id)}


@router.put("/api/me/watchlist", **answer(Watchlist, *SIGNED_IN, *WITH_BODY))
async def put_watchlist(body: WatchlistBody, ctx: User, request: Request) -> dict[str, Any]:
    return {"symbols": await _service(request).replace(ctx.user_id, body.symbols)}
