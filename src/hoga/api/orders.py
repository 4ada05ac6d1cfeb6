"""Orders: place (202), list, read, modify, cancel, preview; the queue status of the caller."""

from __future__ import annotations

from datetime import date
from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse

from hoga.api.bounds import MAX_ID, Id
from hoga.api.deps import User, client_ip, get_hoga
from hoga.api.language import localize, preferred_language
from hoga.api.models import ModifyBody, OrderBody
from hoga.api.schemas import (
    SIGNED_IN,
    WITH_BODY,
    DeniedOrder,
    OrderDetail,
    OrderList,
    OrderView,
    QueueStatus,
    answer,
    errors,
)
from hoga.api.schemas.history import OrderPreview
from hoga.domain import krx
from hoga.domain.errors import InvalidInput
from hoga.domain.orders import (
    OPEN,
    Order,
    OrderIntent,
    OrderStatus,
    OrderType,
    Side,
    TimeInForce,
    Venue,
)
from hoga.execution.queue import Kind
from hoga.execution.views import order_view

if TYPE_CHECKING:
    from hoga.app import HogaApp

router = APIRouter(tags=["orders"])

_WAITING = {OrderStatus.QUEUED: Kind.PLACE, OrderStatus.CANCEL_PENDING: Kind.CANCEL}


async def _waiting(hoga: HogaApp, account_id: Id, kind: Kind) -> dict[str, Any] | None:
    """Why an account's queued request is not going out now (paused, market closed, broker
    down), or None when nothing holds it."""
    ref = await hoga.orders.account_ref(account_id)
    hold = hoga.gate.hold_for(ref, kind) if ref is not None else None
    return hold.view() if hold is not None else None


async def _with_waiting(hoga: HogaApp, orders: list[Order]) -> list[dict[str, Any]]:
    holds: dict[tuple[int, Kind], dict[str, Any] | None] = {}
    out = []
    for o in orders:
        extra = None
        kind = _WAITING.get(o.status)
        if kind is not None:
            key = (o.account_id, kind)
            if key not in holds:
                holds[key] = await _waiting(hoga, o.account_id, kind)
            extra = {"waiting": holds[key]}
        out.append(order_view(o, extra))
    return out


def _intent(body: OrderBody, source: str = "api") -> OrderIntent:
    return OrderIntent(
        symbol=body.symbol,
        side=Side(body.side),
        type=OrderType(body.type),
        qty=body.qty,
        price=body.price,
        account_id=body.account_id,
        client_order_id=body.client_order_id,
        urgent=body.urgent,
        source=source,
        tif=TimeInForce(body.tif),
        venue=Venue(body.venue),
    )


@router.post(
    "/api/orders",
    status_code=202,
    response_model=OrderView,
    responses={
        **errors(*SIGNED_IN, 400, 404, 409, 413),
        422: {"model": DeniedOrder, "description": "invalid, or refused by the risk gate"},
    },
)
async def place(body: OrderBody, ctx: User, request: Request) -> JSONResponse:
    hoga = get_hoga(request)
    source = "dashboard" if request.headers.get("x-hoga-client") == "dashboard" else "api"
    order = await hoga.orders.submit(ctx.user_id, _intent(body, source), ip=client_ip(request))
    view = order_view(order)
    if order.status == OrderStatus.DENIED:
        # The stored reason is bilingual; the answer is in the caller's language.
        lang = preferred_language(request.headers.get("accept-language"))
        return JSONResponse(
            {
                "error": {"code": order.reason_code, "message": localize(order.reason or "", lang)},
                "order": view,
            },
            status_code=422,
        )
    return JSONResponse(view, status_code=202)


@router.post("/api/orders/preview", **answer(OrderPreview, *SIGNED_IN, *WITH_BODY, 404, 409))
async def preview(body: OrderBody, ctx: User, request: Request) -> dict[str, Any]:
    return await get_hoga(request).orders.preview(ctx.user_id, _intent(body))


_STATUS_GROUPS = {"open": [s.value for s in OPEN]}


@router.get("/api/orders", response_model=OrderList, responses=errors(*SIGNED_IN, 422))
async def list_orders(
    ctx: User,
    request: Request,
    status: str | None = Query(
        None, max_length=200, description="comma-separated states, or 'open'"
    ),
    symbol: str | None = Query(None, max_length=12),
    day: date | None = Query(None, alias="date"),
    strategy_id: int | None = Query(None, ge=1, le=MAX_ID),
    account_id: int | None = Query(None, ge=1, le=MAX_ID),
    limit: int = Query(100, ge=1, le=500),
    before_id: int | None = Query(None, ge=1, le=MAX_ID),
) -> dict[str, Any]:
    statuses: list[str] | None = None
    if status:
        statuses = []
        for part in (p.strip() for p in status.split(",") if p.strip()):
            if part.lower() in _STATUS_GROUPS:
                statuses += _STATUS_GROUPS[part.lower()]
            elif part.upper() in OrderStatus.__members__:
                statuses.append(part.upper())
            else:
                raise InvalidInput(
                    f"unknown order status {part!r}", "order.bad_status_filter", field="status"
                )
    if symbol and not krx.is_valid_symbol(symbol):
        raise InvalidInput(
            f"종목코드 형식이 올바르지 않습니다: {symbol!r}", "order.bad_symbol", field="symbol"
        )
    orders = await get_hoga(request).orders.list_orders(
        ctx.user_id,
        statuses=statuses,
        symbol=symbol,
        day=day,
        strategy_id=strategy_id,
        account_id=account_id,
        limit=limit,
        before_id=before_id,
    )
    return {"orders": await _with_waiting(get_hoga(request), orders)}


@router.get(
    "/api/orders/{order_id}", response_model=OrderDetail, responses=errors(*SIGNED_IN, 404, 422)
)
async def get_order(order_id: Id, ctx: User, request: Request) -> dict[str, Any]:
    hoga = get_hoga(request)
    order = await hoga.orders.get(ctx.user_id, order_id)
    history = await hoga.orders.history(ctx.user_id, order_id)
    fills = await hoga.queries.fills(ctx.user_id, order_id=order_id)
    place = next(
        ((p, ap) for item, p, ap in hoga.queue.places(ctx.user_id) if item.order_id == order_id),
        None,
    )
    return order_view(
        order,
        {
            "history": [
                {"ts": h["ts"].isoformat(), "status": h["status"], "detail": h["detail"]}
                for h in history
            ],
            "fills": [
                {
                    "qty": f.qty,
                    "price": f.price,
                    "commission": f.commission,
                    "tax": f.tax,
                    "ts": f.ts.isoformat(),
                }
                for f in fills
            ],
            "queue_place": place[0] if place else None,
            "waiting": await _waiting(hoga, order.account_id, _WAITING[order.status])
            if order.status in _WAITING
            else None,
        },
    )


@router.patch(
    "/api/orders/{order_id}",
    status_code=202,
    response_model=OrderView,
    responses=errors(*SIGNED_IN, *WITH_BODY, 404, 409),
)
async def modify(order_id: Id, body: ModifyBody, ctx: User, request: Request) -> dict[str, Any]:
    """Modify (정정) a working order: 202 with the order ``MODIFY_PENDING``; 409
    ``order.not_modifiable`` in another state, 422 ``order.invalid_modify`` for a change that
    is not one (or that the risk gate refuses: its code in ``details.reason_code``)."""
    order = await get_hoga(request).orders.modify(
        ctx.user_id, order_id, price=body.price, quantity=body.quantity, ip=client_ip(request)
    )
    return order_view(order)


@router.delete(
    "/api/orders/{order_id}",
    status_code=202,
    response_model=OrderView,
    responses=errors(*SIGNED_IN, 404, 409, 422),
)
async def cancel(order_id: Id, ctx: User, request: Request) -> dict[str, Any]:
    order = await get_hoga(request).orders.cancel(ctx.user_id, order_id, ip=client_ip(request))
    return order_view(order)


@router.get("/api/queue-status", response_model=QueueStatus, responses=errors(*SIGNED_IN))
async def queue_status(ctx: User, request: Request) -> dict[str, Any]:
    hoga = get_hoga(request)
    trades = (await hoga.queries.day_counters(ctx.user_id)).trades
    limit = ctx.tier.daily_trades
    queued = []
    global_rate = hoga.settings.global_order_rate
    for item, place, account_place in hoga.queue.places(ctx.user_id):
        rates = hoga.dispatcher.rates_for(item.account_id)
        rate, counts_global = rates if rates else (global_rate, True)
        wait = account_place / rate
        if counts_global:
            wait = max(wait, place / global_rate)
        queued.append(
            {
                "order_id": item.order_id,
                "account_id": item.account_id,
                "waiting": await _waiting(hoga, item.account_id, item.kind),
                "kind": item.kind.value,
                "priority": item.priority.label,
                "place": place,
                "account_place": account_place,
                "estimated_wait_s": round(wait, 2),
                "waited_s": round(hoga.clock.monotonic() - item.enqueued_at, 2),
            }
        )
    state = ctx.user.trading_state
    return {
        "daily_trades": trades,
        "daily_limit": limit,
        "remaining": max(0, limit - trades),
        "queue_size": hoga.queue.size(),
        "is_active": ctx.user.is_active
        and state != "HALTED"
        and hoga.orders.server_state != "HALTED",
        "trading_state": state,
        "server_state": hoga.orders.server_state,
        "paused": hoga.control.paused,
        "tier": ctx.tier.name,
        "priority": "vip" if ctx.tier.priority == "vip" else "normal",
        "queued": queued,
    }
