"""Position and cash arithmetic: exact, and equity change always equals realised + unrealised."""

from __future__ import annotations

from datetime import date

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hoga.domain import krx
from hoga.domain.orders import Side
from hoga.domain.portfolio import Position, apply_fill

prices = st.integers(1, 3_000_000).map(lambda p: p - p % krx.tick_size(p))


@given(st.lists(st.tuples(st.booleans(), st.integers(1, 500), prices), max_size=40), prices)
def test_equity_change_is_realised_plus_unrealised(
    trades: list[tuple[bool, int, int]], mark: int
) -> None:
    pos, cash = Position(), 0
    day = date(2026, 3, 3)
    for buy, qty, price in trades:
        side = Side.BUY if buy or pos.qty == 0 else Side.SELL
        qty = qty if side == Side.BUY else min(qty, pos.qty)
        fee, tax = krx.fill_costs(side, qty, price, day, "KOSPI")
        eff = apply_fill(pos, side, qty, price, fee, tax)
        pos, cash = eff.position, cash + eff.cash
        assert pos.qty >= 0
        assert pos.cost >= 0
        if pos.qty == 0:
            assert pos.cost == 0
    assert cash + pos.market_value(mark) == pos.realized_pnl + pos.unrealized_pnl(mark)


def test_round_trip_by_hand() -> None:
    buy = apply_fill(Position(), Side.BUY, 10, 70_000, 105, 0)
    assert buy.position == Position(10, 700_000, -105)
    assert buy.cash == -700_105
    sell = apply_fill(buy.position, Side.SELL, 4, 71_000, 42, 568)
    # 4/10 of the cost leaves: 280,000; realised = 284,000 - 280,000 - 42 - 568.
    assert sell.position == Position(6, 420_000, -105 + 3_390)
    assert sell.cash == 284_000 - 42 - 568
    assert sell.position.avg_price == 70_000


def test_cannot_sell_more_than_held() -> None:
    with pytest.raises(ValueError, match="cannot sell"):
        apply_fill(Position(1, 100, 0), Side.SELL, 2, 100, 0, 0)
