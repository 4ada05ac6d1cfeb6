"""KRX execution arithmetic: the call-auction price and how each order type arrives.

Properties (hypothesis) check the auction against a brute-force reading of its definition
(krx.md §3 call auctions: one price for every trade of the auction).
"""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hoga.domain.market import Tick
from hoga.domain.matching import (
    AuctionOrder,
    arrival_price,
    auction_price,
    crosses,
    immediate_qty,
    quote_against,
    split_fills,
    trade_bounds,
)
from hoga.domain.orders import OrderType, Side, TimeInForce

B, SL = Side.BUY, Side.SELL


def test_auction_maximises_volume() -> None:
    orders = [
        AuctionOrder(B, 10, 10_100),
        AuctionOrder(B, 5, 10_000),
        AuctionOrder(SL, 8, 9_900),
        AuctionOrder(SL, 10, 10_050),
    ]
    r = auction_price(orders, reference=10_000)
    assert r is not None
    # At 10,050: buys 10 (10,100) vs sells 18 -> 10; at 10,000 buys 15 vs sells 8 -> 8.
    assert (r.price, r.volume) == (10_050, 10)


def test_market_orders_meet_at_the_reference() -> None:
    r = auction_price([AuctionOrder(B, 3, None), AuctionOrder(SL, 5, None)], reference=7_000)
    assert r is not None and (r.price, r.volume) == (7_000, 3)
    assert r.fills == {0: 3, 1: 3}


def test_nothing_crosses() -> None:
    assert auction_price([AuctionOrder(B, 1, 100), AuctionOrder(SL, 1, 101)], 100) is None
    assert auction_price([AuctionOrder(B, 1, 100)], 100) is None


def test_long_side_fills_by_price_then_arrival() -> None:
    orders = [
        AuctionOrder(B, 4, 10_000, key="late-low"),
        AuctionOrder(B, 4, 10_100, key="high"),
        AuctionOrder(B, 4, None, key="market"),
        AuctionOrder(B, 4, 10_000, key="later-low"),
        AuctionOrder(SL, 10, 10_000, key="seller"),
    ]
    r = auction_price(orders, reference=10_000)
    assert r is not None and r.price == 10_000 and r.volume == 10
    assert r.fills == {"market": 4, "high": 4, "late-low": 2, "seller": 10}


orders_st = st.lists(
    st.builds(
        AuctionOrder,
        side=st.sampled_from([B, SL]),
        qty=st.integers(min_value=1, max_value=50),
        price=st.one_of(st.none(), st.integers(min_value=95, max_value=105)),
    ),
    max_size=12,
)


def _volume(orders: list[AuctionOrder], p: int) -> int:
    buy = sum(o.qty for o in orders if o.side == B and (o.price is None or o.price >= p))
    sell = sum(o.qty for o in orders if o.side == SL and (o.price is None or o.price <= p))
    return min(buy, sell)


@given(orders=orders_st, reference=st.integers(min_value=95, max_value=105))
def test_auction_price_is_the_volume_maximum(orders: list[AuctionOrder], reference: int) -> None:
    r = auction_price(orders, reference)
    best = max((_volume(orders, p) for p in range(90, 111)), default=0)
    if best == 0:
        assert r is None
        return
    assert r is not None
    assert r.volume == best == _volume(orders, r.price)
    # Every trade is at the one price, both sides fill exactly the volume, nobody over-fills,
    # and only orders willing to trade at that price take part.
    by_side = {B: 0, SL: 0}
    for key, qty in r.fills.items():
        assert isinstance(key, int)
        o = orders[key]
        assert 0 < qty <= o.qty
        assert crosses(o.side, o.price, r.price)
        by_side[o.side] += qty
    assert by_side[B] == by_side[SL] == r.volume


@given(
    total=st.integers(min_value=0, max_value=500),
    sizes=st.lists(st.integers(min_value=0, max_value=100), max_size=10),
)
def test_split_fills_conserves_shares(total: int, sizes: list[int]) -> None:
    out = split_fills(total, sizes)
    assert sum(out) == min(total, sum(sizes))
    assert all(0 <= o <= s for o, s in zip(out, sizes, strict=True))
    # Time priority: a later order gets nothing while an earlier one is short.
    for i, (o, s) in enumerate(zip(out, sizes, strict=True)):
        if o < s:
            assert all(x == 0 for x in out[i + 1 :])


@given(
    tif=st.sampled_from(list(TimeInForce)),
    wanted=st.integers(min_value=1, max_value=100),
    available=st.integers(min_value=0, max_value=100),
)
def test_immediate_quantity_by_time_in_force(tif: TimeInForce, wanted: int, available: int) -> None:
    q = immediate_qty(tif, wanted, available)
    assert 0 <= q <= min(wanted, available)
    if tif == TimeInForce.FOK:
        # Fill or kill: all of it, or nothing.
        assert q == (wanted if available >= wanted else 0)
    else:
        assert q == min(wanted, available)


@pytest.mark.parametrize(
    ("kind", "side", "expected"),
    [
        (OrderType.BEST, B, 10_100),  # 최유리: the opposite side's best
        (OrderType.BEST, SL, 10_000),
        (OrderType.PRIORITY, B, 10_000),  # 최우선: the same side's best
        (OrderType.PRIORITY, SL, 10_100),
        (OrderType.MARKET, B, None),
        (OrderType.LIMIT, B, 9_990),
        (OrderType.CONDITIONAL, SL, 9_990),
    ],
)
def test_arrival_price_by_type(kind: OrderType, side: Side, expected: int | None) -> None:
    assert arrival_price(kind, side, 9_990, bid=10_000, ask=10_100) == expected


def test_best_and_priority_need_a_side_to_price_from() -> None:
    assert arrival_price(OrderType.BEST, B, None, bid=10_000, ask=0) is None
    assert arrival_price(OrderType.PRIORITY, SL, None, bid=10_000, ask=0) is None


_near = st.integers(min_value=-3, max_value=3)


@given(
    side=st.sampled_from([B, SL]),
    price=st.integers(min_value=10, max_value=2_000),
    offsets=st.tuples(_near, _near, _near),
    no_quote=st.tuples(st.booleans(), st.booleans()),
    volume=st.integers(min_value=0, max_value=5),
    sizes=st.tuples(st.integers(0, 5), st.integers(0, 5)),
)
def test_trade_bounds_never_skip_a_resting_order_that_trades(
    side: Side,
    price: int,
    offsets: tuple[int, int, int],
    no_quote: tuple[bool, bool],
    volume: int,
    sizes: tuple[int, int],
) -> None:
    """The paper broker skips resting orders outside ``trade_bounds`` without asking
    ``quote_against``: every priced order that would trade lies inside them (limits, bid and
    ask drawn around the traded price, where the edges are)."""
    limit, bid, ask = (price + d for d in offsets)
    bid, ask = (0 if none else q for none, q in zip(no_quote, (bid, ask), strict=True))
    tick = Tick("X", price, volume, 0.0, bid=bid, ask=ask, bid_size=sizes[0], ask_size=sizes[1])
    low_buy, high_sell = trade_bounds(tick)
    if limit < low_buy if side == B else limit > high_sell:
        assert quote_against(side, limit, tick, resting=True) == (0, 0)
