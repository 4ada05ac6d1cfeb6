"""The signed-in user's own account: profile, password, TOTP, IP allowlist, sessions, audit."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query, Request

from hoga.api.bounds import MAX_ID
from hoga.api.deps import User, client_ip, get_hoga
from hoga.api.models import AllowlistBody, PasswordBody, TotpConfirmBody, TotpDisableBody
from hoga.api.schemas import SIGNED_IN, WITH_BODY, Ok, answer
from hoga.api.schemas.accounts import (
    Allowlist,
    AuditList,
    MeView,
    SessionList,
    TotpEnrolment,
    TotpState,
)
from hoga.api.views import audit_view, user_view
from hoga.domain.errors import NotFound

router = APIRouter(prefix="/api/me", tags=["me"])


@router.get("", **answer(MeView, *SIGNED_IN))
async def me(ctx: User, request: Request) -> dict[str, Any]:
    hoga = get_hoga(request)
    today = await hoga.queries.day_counters(ctx.user_id)
    view = user_view(ctx.user, ctx.tier)
    view["today"] = {"trades": today.trades, "realized_pnl": today.realized}
    view["recovery_codes_left"] = (
        await hoga.auth.recovery_codes_left(ctx.user_id) if ctx.user.totp_enabled else 0
    )
    return view


@router.post("/password", **answer(Ok, *SIGNED_IN, *WITH_BODY))
async def change_password(body: PasswordBody, ctx: User, request: Request) -> dict[str, Any]:
    await get_hoga(request).auth.change_password(
        ctx, body.current_password, body.new_password, ip=client_ip(request)
    )
    return {"ok": True}


@router.post("/totp/enroll", **answer(TotpEnrolment, *SIGNED_IN, 409))
async def totp_enroll(ctx: User, request: Request) -> dict[str, Any]:
    return await get_hoga(request).auth.totp_begin(ctx, ip=client_ip(request))


@router.post("/totp/confirm", **answer(TotpState, *SIGNED_IN, *WITH_BODY, 409))
async def totp_confirm(body: TotpConfirmBody, ctx: User, request: Request) -> dict[str, Any]:
    codes = await get_hoga(request).auth.totp_confirm(ctx, body.code, ip=client_ip(request))
    return {"enabled": True, "recovery_codes": codes}


@router.post("/totp/disable", **answer(TotpState, *SIGNED_IN, *WITH_BODY, 409))
async def totp_disable(body: TotpDisableBody, ctx: User, request: Request) -> dict[str, Any]:
    await get_hoga(request).auth.totp_disable(ctx, body.password, body.code, ip=client_ip(request))
    return {"enabled": False}


@router.put("/ip-allowlist", **answer(Allowlist, *SIGNED_IN, *WITH_BODY))
async def set_allowlist(body: AllowlistBody, ctx: User, request: Request) -> dict[str, Any]:
    entries = await get_hoga(request).auth.set_ip_allowlist(
        ctx, body.entries, ip=client_ip(request)
    )
    return {"entries": entries}


@router.get("/sessions", **answer(SessionList, *SIGNED_IN))
async def sessions(ctx: User, request: Request) -> dict[str, Any]:
    recs = await get_hoga(request).auth.list_sessions(ctx.user_id)
    return {
        "sessions": [
            {
                "id": r.family_id,
                "current": r.family_id == ctx.session_id,
                "created_at": r.created_at.isoformat(),
                "expires_at": r.expires_at.isoformat(),
                "ip": r.ip,
                "user_agent": r.user_agent,
            }
            for r in recs
        ]
    }


@router.delete("/sessions/{session_id}", **answer(Ok, *SIGNED_IN, 404, 422))
async def revoke_session(session_id: str, ctx: User, request: Request) -> dict[str, Any]:
    hoga = get_hoga(request)
    mine = {r.family_id for r in await hoga.auth.list_sessions(ctx.user_id)}
    if session_id not in mine:
        raise NotFound("세션을 찾을 수 없습니다 (no such session)", "session.not_found")
    await hoga.auth.revoke_session(ctx.user_id, session_id, ip=client_ip(request))
    return {"ok": True}


@router.get("/audit", **answer(AuditList, *SIGNED_IN, 422))
async def my_audit(
    ctx: User,
    request: Request,
    limit: int = Query(100, ge=1, le=500),
    before_id: int | None = Query(None, ge=1, le=MAX_ID),
) -> dict[str, Any]:
    entries = await get_hoga(request).auth.audit_entries(ctx.user_id, limit, before_id)
    return {"entries": [audit_view(e) for e in entries]}
