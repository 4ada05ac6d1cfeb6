"""Admin actions on a user's order: settling by hand an order stuck ``UNKNOWN``
(``execution/settling.py``)."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Request
from pydantic import Field, StrictInt

from hoga.api.bounds import MAX_INT, Id
from hoga.api.deps import Admin, client_ip, get_hoga
from hoga.api.models import Body
from hoga.api.schemas import SIGNED_IN, WITH_BODY, OrderView, answer
from hoga.execution.settling import in_server
from hoga.execution.views import order_view

router = APIRouter(prefix="/api/admin", tags=["admin"])


class SettleBody(Body):
    """What the admin saw at the broker: ``filled`` needs ``filled_qty`` and ``avg_price``."""

    outcome: Literal["cancelled", "rejected", "filled"]
    filled_qty: StrictInt | None = Field(None, ge=1, le=MAX_INT)
    avg_price: StrictInt | None = Field(None, ge=1, le=MAX_INT)
    reason: str = Field(min_length=1, max_length=500)


@router.post("/orders/{order_id}/settle", **answer(OrderView, *SIGNED_IN, *WITH_BODY, 404, 409))
async def settle(order_id: Id, body: SettleBody, ctx: Admin, request: Request) -> dict[str, Any]:
    """Settle by hand an order stuck ``UNKNOWN`` (reconciliation cannot check it, e.g. a
    Kiwoom order left over from before midnight): 409 ``order.not_unknown`` in any other
    state; 422 ``order.invalid_settlement`` for a quantity or price that cannot be."""
    hoga = get_hoga(request)
    order = await in_server(hoga.orders.core).settle_by_hand(
        order_id,
        body.outcome,
        filled_qty=body.filled_qty,
        avg_price=body.avg_price,
        reason=body.reason,
        actor_id=ctx.user_id,
        ip=client_ip(request),
    )
    return order_view(order)
