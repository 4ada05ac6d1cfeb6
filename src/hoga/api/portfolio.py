"""The caller's portfolio: cash, equity and positions marked to the latest prices."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query, Request

from hoga.api.bounds import MAX_ID
from hoga.api.deps import User, get_hoga
from hoga.api.schemas import SIGNED_IN, PortfolioView, errors

router = APIRouter(tags=["portfolio"])


@router.get("/api/portfolio", response_model=PortfolioView, responses=errors(*SIGNED_IN, 404, 422))
async def portfolio(
    ctx: User, request: Request, account_id: int | None = Query(None, ge=1, le=MAX_ID)
) -> dict[str, Any]:
    p = await get_hoga(request).queries.portfolio(ctx.user_id, account_id)
    rows = [
        {
            "account_id": h.account_id,
            "symbol": h.symbol,
            "name": h.name,
            "qty": h.qty,
            "avg_price": h.avg_price,
            "market_price": h.market_price,
            "market_value": h.qty * h.market_price,
            "unrealized_pnl": h.unrealized_pnl,
            "realized_pnl": h.realized_pnl,
        }
        for h in p.holdings
    ]
    unrealized = sum(h.unrealized_pnl for h in p.holdings)
    today = p.today
    return {
        "cash": p.cash,
        "reserved_cash": p.reserved_cash,
        "orderable_cash": p.cash - p.reserved_cash,
        "equity": p.cash + p.market_value,
        "market_value": p.market_value,
        "unrealized_pnl": unrealized,
        "today": {
            "trades": today.trades,
            "realized_pnl": today.realized,
            "pnl": today.realized
            + (unrealized - today.unrealized_start if today.unrealized_start is not None else 0),
        },
        "positions": rows,
        "accounts": [
            {
                "id": a.id,
                "label": a.label,
                "broker": a.broker,
                "cash": a.cash,
                "reserved_cash": a.reserved_cash,
                "equity": a.equity,
            }
            for a in p.accounts
        ],
    }
