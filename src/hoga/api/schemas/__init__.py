"""Response models: what the endpoints answer, declared for the OpenAPI document.

Request bodies are in ``models.py`` (strict, unknown fields refused). Response models describe
every field the views write; they admit extra fields (``extra="allow"``) so a field another
change adds to a view is passed through rather than silently dropped. Routes declare them with
``answer(Model, *error_statuses)``, which also answers only the fields the view wrote (a field
a view leaves out, such as an order's ``waiting`` outside the queue, is not added as null).

This module holds the shared parts and the order/portfolio answers; the other areas have their
own modules beside it (``accounts``, ``market``, ``strategies``, ``history``, ``ops``).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict


class Answer(BaseModel):
    model_config = ConfigDict(extra="allow")


class ErrorInfo(Answer):
    code: str
    message: str
    field: str | None = None
    details: dict[str, Any] | None = None


class ErrorBody(Answer):
    """Every refusal: ``{"error": {"code", "message", ...}}`` (``api/errors.py``)."""

    error: ErrorInfo


class Waiting(Answer):
    """Why a queued request is held (paused, market closed, broker down)."""

    code: str
    message: str
    since: str | None = None


class OrderView(Answer):
    """An order (``execution/views.py``); the same shape as ``/ws/events`` order events."""

    id: int
    client_order_id: str
    account_id: int
    strategy_id: int | None
    symbol: str
    side: Literal["buy", "sell"]
    #: limit, market, conditional, best, priority, pre_close, after_close, single_price.
    type: str
    #: Time in force and venue (sessions and order types, issue 14).
    tif: Literal["day", "ioc", "fok"]
    venue: Literal["KRX", "NXT", "SOR"]
    qty: int
    price: int | None
    status: str
    priority: str
    urgent: bool
    source: str
    filled_qty: int
    avg_fill_price: int
    commission: int
    tax: int
    reserved_cash: int
    broker_order_id: str | None
    reason_code: str | None
    reason: str | None
    trading_day: str
    created_at: str
    updated_at: str
    modify_pending: bool
    waiting: Waiting | None = None


class OrderEvent(Answer):
    ts: str
    status: str
    detail: str | None


class OrderFill(Answer):
    qty: int
    price: int
    commission: int
    tax: int
    ts: str


class OrderDetail(OrderView):
    """One order with its history, fills and place in the queue."""

    history: list[OrderEvent]
    fills: list[OrderFill]
    queue_place: int | None


class OrderList(Answer):
    orders: list[OrderView]


class DeniedOrder(ErrorBody):
    """A refused submit: invalid values (``error`` only), or a risk-gate refusal, which also
    carries the order recorded ``DENIED``."""

    order: OrderView | None = None


class Ok(Answer):
    """An action that has nothing else to say: ``{"ok": true}``."""

    ok: bool


#: Statuses any signed-in call may answer: no or expired token (401), an IP outside the
#: allowlist or a disabled account (403), the per-user API rate limit (429), a storage fault
#: (503). Admin calls add nothing: a non-admin gets 403.
SIGNED_IN = (401, 403, 429, 503)
#: Statuses of a call with a JSON body: malformed JSON (400), over the body cap (413), invalid
#: values (422).
WITH_BODY = (400, 413, 422)


def answer(model: type[BaseModel], *codes: int, also: str | None = None) -> dict[str, Any]:
    """The route decorator's keywords for an answer of ``model`` and these error statuses:
    ``@router.get("/x", **answer(Model, *SIGNED_IN, 404))``; ``also`` a second media type the
    success may come in (CSV by ``Accept``). Only the fields the view wrote are answered
    (``response_model_exclude_unset``): the model documents and checks them, it does not add
    defaults."""
    responses = errors(*codes)
    if also is not None:
        responses[200] = {"content": {also: {}}}
    return {
        "response_model": model,
        "response_model_exclude_unset": True,
        "responses": responses,
    }


def media(content_type: str, description: str, *codes: int) -> dict[int | str, dict[str, Any]]:
    """``responses=`` for a non-JSON success (CSV, HTML, text) and these error statuses."""
    return {
        200: {"description": description, "content": {content_type: {}}},
        **errors(*codes),
    }


def errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    """``responses=`` for these error statuses, all answered with ``ErrorBody``."""
    what = {
        400: "malformed JSON",
        401: "not signed in",
        403: "not allowed",
        404: "no such object (or someone else's)",
        409: "conflicts with the object's state",
        422: "invalid values",
        413: "request body too large",
        429: "rate limited",
        502: "the upstream's answer was refused",
        503: "storage or broker fault",
    }
    return {c: {"model": ErrorBody, "description": what.get(c, "error")} for c in codes}


class QueuedRequest(Answer):
    order_id: int
    account_id: int
    waiting: Waiting | None
    kind: str
    priority: str
    place: int
    account_place: int
    estimated_wait_s: float
    waited_s: float


class QueueStatus(Answer):
    daily_trades: int
    daily_limit: int
    remaining: int
    queue_size: int
    is_active: bool
    trading_state: str
    server_state: str
    paused: bool
    tier: str
    priority: str
    queued: list[QueuedRequest]


class PositionLine(Answer):
    account_id: int
    symbol: str
    name: str
    qty: int
    avg_price: int
    market_price: int
    market_value: int
    unrealized_pnl: int
    realized_pnl: int


class AccountLine(Answer):
    id: int
    label: str | None
    broker: str
    cash: int
    reserved_cash: int
    equity: int


class Today(Answer):
    trades: int
    realized_pnl: int
    pnl: int


class PortfolioView(Answer):
    cash: int
    reserved_cash: int
    orderable_cash: int
    equity: int
    market_value: int
    unrealized_pnl: int
    today: Today
    positions: list[PositionLine]
    accounts: list[AccountLine]


class FillView(Answer):
    id: int
    order_id: int
    strategy_id: int | None
    account_id: int
    symbol: str
    side: str
    qty: int
    price: int
    commission: int
    tax: int
    ts: str


class FillList(Answer):
    fills: list[FillView]
