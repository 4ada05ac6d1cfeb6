"""Admin pages' API: users, tiers, the kill switch, system status, the audit log."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query, Request

from hoga.api.bounds import MAX_ID, Id
from hoga.api.deps import Admin, client_ip, get_hoga
from hoga.api.models import (
    KillSwitchBody,
    PauseBody,
    TierUpdateBody,
    UserCreateBody,
    UserUpdateBody,
)
from hoga.api.schemas import SIGNED_IN, WITH_BODY, answer
from hoga.api.schemas.accounts import AuditList, TierList, TierView, UserList, UserView
from hoga.api.schemas.ops import PauseView, ServerState, SystemStatus
from hoga.api.views import audit_view, tier_view, user_view

router = APIRouter(prefix="/api/admin", tags=["admin"])


@router.get("/users", **answer(UserList, *SIGNED_IN))
async def list_users(ctx: Admin, request: Request) -> dict[str, Any]:
    hoga = get_hoga(request)
    users = await hoga.auth.list_users()
    return {"users": [user_view(u) for u in users], "max_users": hoga.auth.max_users}


@router.post("/users", status_code=201, **answer(UserView, *SIGNED_IN, *WITH_BODY, 409))
async def create_user(body: UserCreateBody, ctx: Admin, request: Request) -> dict[str, Any]:
    hoga = get_hoga(request)
    user = await hoga.auth.create_user(
        body.username,
        body.password,
        body.tier,
        is_admin=body.is_admin,
        actor_id=ctx.user_id,
        ip=client_ip(request),
    )
    return user_view(user)


@router.patch("/users/{user_id}", **answer(UserView, *SIGNED_IN, *WITH_BODY, 404, 409))
async def update_user(
    user_id: Id, body: UserUpdateBody, ctx: Admin, request: Request
) -> dict[str, Any]:
    hoga = get_hoga(request)
    changes = body.model_dump(exclude_none=True)
    user = await hoga.auth.admin_update(
        user_id, actor_id=ctx.user_id, ip=client_ip(request), **changes
    )
    return user_view(user)


@router.get("/tiers", **answer(TierList, *SIGNED_IN))
async def list_tiers(ctx: Admin, request: Request) -> dict[str, Any]:
    return {"tiers": [tier_view(t) for t in await get_hoga(request).auth.list_tiers()]}


@router.patch("/tiers/{name}", **answer(TierView, *SIGNED_IN, *WITH_BODY, 404))
async def update_tier(
    name: str, body: TierUpdateBody, ctx: Admin, request: Request
) -> dict[str, Any]:
    hoga = get_hoga(request)
    tier = await hoga.auth.update_tier(
        name, actor_id=ctx.user_id, ip=client_ip(request), **body.model_dump(exclude_none=True)
    )
    return tier_view(tier)


@router.put("/kill-switch", **answer(ServerState, *SIGNED_IN, *WITH_BODY))
async def kill_switch(body: KillSwitchBody, ctx: Admin, request: Request) -> dict[str, Any]:
    hoga = get_hoga(request)
    await hoga.orders.set_server_state(body.state, actor_id=ctx.user_id, ip=client_ip(request))
    return {"state": hoga.orders.server_state}


@router.post("/pause", **answer(PauseView, *SIGNED_IN, *WITH_BODY))
async def pause(body: PauseBody, ctx: Admin, request: Request) -> dict[str, Any]:
    """Stop sending orders and running strategies until resumed (orders are still accepted)."""
    hoga = get_hoga(request)
    state = await hoga.control.set(
        True,
        reason=body.reason or "paused by an admin",
        by=f"admin:{ctx.user_id}",
        actor_id=ctx.user_id,
        ip=client_ip(request),
    )
    return state.view()


@router.post("/resume", **answer(PauseView, *SIGNED_IN))
async def resume(ctx: Admin, request: Request) -> dict[str, Any]:
    """Send queued orders again and restart the strategies whose status says running."""
    hoga = get_hoga(request)
    state = await hoga.control.set(
        False, reason="", by=f"admin:{ctx.user_id}", actor_id=ctx.user_id, ip=client_ip(request)
    )
    return state.view()


@router.get("/status", **answer(SystemStatus, *SIGNED_IN))
async def status(ctx: Admin, request: Request) -> dict[str, Any]:
    hoga = get_hoga(request)
    out = hoga_status(hoga)
    ready = await hoga.readiness()
    out["ready"] = ready["status"]
    out["parts"] = ready["parts"]
    out["brokers"] = [h.view() for h in hoga.health.accounts()]
    if hoga.cluster is not None:  # cluster mode: who this server is and whom it owns
        out["cluster"] = hoga.cluster.status()
    return out


def hoga_status(hoga: Any) -> dict[str, Any]:
    return {
        "version": hoga.version,
        "trading_state": hoga.orders.server_state,
        "paused": hoga.control.state.view(),
        "market": {
            "mode": hoga.market_mode,
            "configured_mode": hoga.settings.market_mode,
            "open": hoga.market_open(),
            "krx_session_open": hoga.hours.calendar_open(),
        },
        "feed": hoga.hub.health(),
        "queue": {"size": hoga.queue.size()},
        "dispatcher": hoga.dispatcher.status(),
        "reconciliation": hoga.reconciler.status(),
        "orders": hoga.orders.stats,
        "strategies": hoga.live_strategies.status()
        if getattr(hoga, "live_strategies", None)
        else {},
    }


@router.get("/audit", **answer(AuditList, *SIGNED_IN, 422))
async def audit(
    ctx: Admin,
    request: Request,
    limit: int = Query(200, ge=1, le=1000),
    before_id: int | None = Query(None, ge=1, le=MAX_ID),
    action: str | None = Query(None, max_length=64),
    user_id: int | None = Query(None, ge=1, le=MAX_ID),
) -> dict[str, Any]:
    entries = await get_hoga(request).auth.all_audit_entries(limit, before_id, action, user_id)
    return {"entries": [audit_view(e) for e in entries]}
