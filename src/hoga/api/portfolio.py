"""The caller's portfolio: cash, equity and positions marked to the latest prices."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query, Request

from hoga.api.bounds import MAX_ID
from hoga.api.deps import User, get_hoga
from hoga.domain import krx
from hoga.store.db import Actor
from hoga.store.repos import accounts as accounts_repo
from hoga.store.repos import ledger
from hoga.store.repos import orders as orders_repo

router = APIRouter(tags=["portfolio"])


@router.get("/api/portfolio")
async def portfolio(
    ctx: User, request: Request, account_id: int | None = Query(None, ge=1, le=MAX_ID)
) -> dict[str, Any]:
    hoga = get_hoga(request)
    uid = ctx.user_id
    async with hoga.db.tx(Actor.user(uid)) as conn:
        if account_id is not None:
            accts = [await accounts_repo.require_account(conn, uid, account_id)]
        else:
            accts = await accounts_repo.list_accounts(conn, uid)
        rows = []
        total_cash = total_value = total_reserved = 0
        per_account = []
        positions: list[dict[str, Any]] = []
        for acct in accts:
            cash = await ledger.cash(conn, uid, acct.id)
            reserved, _, _ = await orders_repo.exposure(conn, uid, acct.id)
            value = 0
            for p in await ledger.positions(conn, uid, acct.id):
                tick = hoga.quotes.last(p.symbol)
                px = tick.price if tick else p.position.avg_price
                inst = hoga.universe.get(p.symbol)
                positions.append(
                    {
                        "account_id": acct.id,
                        "symbol": p.symbol,
                        "name": inst.name if inst else p.symbol,
                        "qty": p.qty,
                        "avg_price": p.position.avg_price,
                        "market_price": px,
                        "market_value": p.qty * px,
                        "unrealized_pnl": p.position.unrealized_pnl(px),
                        "realized_pnl": p.realized_pnl,
                    }
                )
                value += p.qty * px
            per_account.append(
                {
                    "id": acct.id,
                    "label": acct.label,
                    "broker": acct.broker,
                    "cash": cash,
                    "reserved_cash": reserved,
                    "equity": cash + value,
                }
            )
            total_cash += cash
            total_value += value
            total_reserved += reserved
        trades, realized, unreal_start = await ledger.day_counters(
            conn, uid, krx.trading_date(hoga.clock.now())
        )
        rows = positions
    unrealized = sum(p["unrealized_pnl"] for p in rows)
    return {
        "cash": total_cash,
        "reserved_cash": total_reserved,
        "orderable_cash": total_cash - total_reserved,
        "equity": total_cash + total_value,
        "market_value": total_value,
        "unrealized_pnl": unrealized,
        "today": {
            "trades": trades,
            "realized_pnl": realized,
            "pnl": realized + (unrealized - unreal_start if unreal_start is not None else 0),
        },
        "positions": rows,
        "accounts": per_account,
    }
