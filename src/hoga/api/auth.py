"""Sign-in: ``/api/auth/login``, ``/refresh``, ``/logout``."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from hoga.api.deps import User, client_ip, get_hoga
from hoga.api.models import LoginBody, LogoutBody, RefreshBody
from hoga.api.schemas import SIGNED_IN, WITH_BODY, Ok, answer
from hoga.api.schemas.accounts import TokenPairView

router = APIRouter(prefix="/api/auth", tags=["auth"])


@router.post("/login", **answer(TokenPairView, 401, 403, 429, 503, *WITH_BODY))
async def login(body: LoginBody, request: Request) -> dict[str, Any]:
    hoga = get_hoga(request)
    pair = await hoga.auth.login(
        body.username,
        body.password,
        body.otp,
        ip=client_ip(request),
        user_agent=request.headers.get("user-agent"),
    )
    return pair.as_dict()


@router.post("/refresh", **answer(TokenPairView, 401, 403, 429, 503, *WITH_BODY))
async def refresh(body: RefreshBody, request: Request) -> dict[str, Any]:
    hoga = get_hoga(request)
    pair = await hoga.auth.refresh(
        body.refresh_token, ip=client_ip(request), user_agent=request.headers.get("user-agent")
    )
    return pair.as_dict()


@router.post("/logout", **answer(Ok, *SIGNED_IN, *WITH_BODY))
async def logout(ctx: User, request: Request, body: LogoutBody | None = None) -> dict[str, Any]:
    hoga = get_hoga(request)
    await hoga.auth.logout(ctx, ip=client_ip(request))
    return {"ok": True}
