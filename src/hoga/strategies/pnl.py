"""A strategy's view: its record, the positions its own fills built, and its P&L.

A strategy's P&L is attributed from the fills that carry its ``strategy_id``: they are replayed
through the same position arithmetic the live context and backtests use (``book_fill``), and
open positions are marked at the last tick (the recorded average price when nothing traded).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from hoga.domain.portfolio import Position
from hoga.store.repos import strategies as repo
from hoga.strategies.base import Fill, book_fill


def fill_of(f: repo.StrategyFill) -> Fill:
    """A stored fill as the strategy API's ``Fill``."""
    return Fill(
        symbol=f.symbol,
        side=f.side,
        qty=f.qty,
        price=f.price,
        commission=f.commission,
        tax=f.tax,
        client_order_id=f.client_order_id,
        order_id=f.order_id,
        ts=f.ts.timestamp(),
    )


def strategy_view(
    rec: repo.StrategyRecord,
    fills: list[repo.StrategyFill],
    orders: int,
    price_of: Callable[[str], int | None],
) -> dict[str, Any]:
    """The strategy as the API and ``/ws/events`` show it; ``price_of`` gives the last price."""
    positions: dict[str, Position] = {}
    for f in fills:
        positions[f.symbol] = book_fill(positions.get(f.symbol, Position()), fill_of(f))
    realized = sum(p.realized_pnl for p in positions.values())
    unrealized = 0
    held = []
    for symbol, p in positions.items():
        if not p.qty:
            continue
        last = price_of(symbol)
        price = last if last is not None else p.avg_price
        unrealized += p.unrealized_pnl(price)
        held.append(
            {
                "symbol": symbol,
                "qty": p.qty,
                "avg_price": p.avg_price,
                "market_price": price,
                "unrealized_pnl": p.unrealized_pnl(price),
            }
        )
    return {
        "id": rec.id,
        "name": rec.name,
        "kind": rec.kind,
        "symbols": list(rec.symbols),
        "params": rec.params,
        "account_id": rec.account_id,
        "status": rec.status,
        "last_error": {"message": rec.last_error, "at": rec.error_at.isoformat()}
        if rec.last_error and rec.error_at
        else None,
        "pnl": {
            "realized": realized,
            "unrealized": unrealized,
            "fills": len(fills),
            "orders": orders,
        },
        "positions": held,
        "state": rec.state,
        "created_at": rec.created_at.isoformat(),
        "updated_at": rec.updated_at.isoformat(),
    }
