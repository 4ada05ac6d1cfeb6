"""The order's JSON shape: one view for the API and the ``/ws/events`` stream alike.

It lives beside the services rather than in them, and outside ``api/`` because the event bus
publishes the same shape (``api`` may import ``execution``, not the other way round).
"""

from __future__ import annotations

from typing import Any

from hoga.domain.orders import Order, OrderStatus


def order_view(o: Order, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """The order as clients see it (``extra`` adds fields such as ``waiting``)."""
    view: dict[str, Any] = {
        "id": o.id,
        "client_order_id": o.client_order_id,
        "account_id": o.account_id,
        "strategy_id": o.strategy_id,
        "symbol": o.symbol,
        "side": o.side.value,
        "type": o.type.value,
        "tif": o.tif.value,
        "venue": o.venue.value,
        "qty": o.qty,
        "price": o.price,
        "status": o.status.value,
        "priority": o.priority.label,
        "urgent": o.urgent,
        "source": o.source,
        "filled_qty": o.filled_qty,
        "avg_fill_price": o.avg_fill_price,
        "commission": o.commission,
        "tax": o.tax,
        "reserved_cash": o.reserved_cash,
        "broker_order_id": o.broker_order_id,
        "reason_code": o.reason_code,
        "reason": o.reason,
        "trading_day": o.trading_day.isoformat(),
        "created_at": o.created_at.isoformat(),
        "updated_at": o.updated_at.isoformat(),
        # A modify (정정) asked of the broker and not yet answered (state MODIFY_PENDING).
        "modify_pending": o.status == OrderStatus.MODIFY_PENDING,
    }
    if extra:
        view.update(extra)
    return view
