"""Position and cash arithmetic shared by live trading, paper trading and backtests.

A position keeps its quantity and its cost basis (sum of buy amounts, fees excluded, in won).
Fees are booked straight into realised P&L, so that at any time
``equity - starting equity == realised + unrealised``.
"""

from __future__ import annotations

from dataclasses import dataclass

from hoga.domain.orders import Side


@dataclass(frozen=True, slots=True)
class Position:
    """Holding of one symbol: shares, cost basis and realised P&L to date (all integers)."""

    qty: int = 0
    cost: int = 0
    realized_pnl: int = 0

    @property
    def avg_price(self) -> int:
        """Average purchase price, rounded half up to the won (0 when flat)."""
        if self.qty == 0:
            return 0
        return (2 * self.cost + self.qty) // (2 * self.qty)

    def market_value(self, price: int) -> int:
        return self.qty * price

    def unrealized_pnl(self, price: int) -> int:
        return self.qty * price - self.cost


@dataclass(frozen=True, slots=True)
class FillEffect:
    """What one fill does: the new position, the realised P&L it adds, and the cash it moves."""

    position: Position
    realized: int
    cash: int


def apply_fill(
    pos: Position, side: Side | str, qty: int, price: int, commission: int, tax: int
) -> FillEffect:
    """Book a fill. Sells may not exceed the holding (hoga does not short)."""
    if qty <= 0 or price <= 0:
        raise ValueError("fill quantity and price must be positive")
    amount = qty * price
    if side == Side.BUY:
        new = Position(pos.qty + qty, pos.cost + amount, pos.realized_pnl - commission)
        return FillEffect(new, -commission, -(amount + commission))
    if qty > pos.qty:
        raise ValueError(f"cannot sell {qty} shares of a holding of {pos.qty}")
    # Cost leaves pro rata; the last share takes whatever integer remainder is left.
    removed = pos.cost if qty == pos.qty else pos.cost * qty // pos.qty
    realized = amount - removed - commission - tax
    new = Position(pos.qty - qty, pos.cost - removed, pos.realized_pnl + realized)
    return FillEffect(new, realized, amount - commission - tax)
