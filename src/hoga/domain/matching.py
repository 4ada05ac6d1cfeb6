"""How KRX executes orders, as pure arithmetic: the call-auction price, and the price and
quantity an order of each type gets on arrival.

The paper broker and both fakes execute through these functions, so the three agree with each
other and with the rules in ``reference/krx.md`` (§3 sessions and auctions, §5 order types).
Times and sessions are ``domain.krx``'s business; this module knows prices and quantities.
Money is integer won, quantities integer shares.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from hoga.domain.market import Tick
from hoga.domain.orders import OrderType, Side, TimeInForce


@dataclass(frozen=True, slots=True)
class AuctionOrder:
    """One order in a call auction. ``price`` None is a market order (highest priority)."""

    side: Side
    qty: int
    price: int | None
    key: object = None


@dataclass(frozen=True, slots=True)
class AuctionResult:
    """The single price and the executed volume; ``fills`` maps order key -> shares."""

    price: int
    volume: int
    fills: dict[object, int]


def _executable(orders: Sequence[AuctionOrder], p: int) -> tuple[int, int]:
    buy = sum(o.qty for o in orders if o.side == Side.BUY and (o.price is None or o.price >= p))
    sell = sum(o.qty for o in orders if o.side == Side.SELL and (o.price is None or o.price <= p))
    return buy, sell


def auction_price(orders: Sequence[AuctionOrder], reference: int) -> AuctionResult | None:
    """The single price of a call auction (단일가매매), or None when nothing crosses.

    KRX picks the price that executes the most shares; among those, the one leaving the
    smallest imbalance; then the one closest to ``reference`` (the previous price); then the
    lower. Candidates are the orders' own limit prices (and ``reference`` when only market
    orders meet). Every buy priced at or above, and every sell at or below, the price is
    eligible; the long side is filled by price, then arrival (the order given).
    """
    prices = {o.price for o in orders if o.price is not None} | {reference}
    best: tuple[int, int, int, int] | None = None
    for p in sorted(prices):
        if p <= 0:
            continue
        buy, sell = _executable(orders, p)
        volume = min(buy, sell)
        if volume <= 0:
            continue
        rank = (-volume, abs(buy - sell), abs(p - reference), p)
        if best is None or rank < best:
            best = rank
    if best is None:
        return None
    price, volume = best[3], -best[0]
    return AuctionResult(price, volume, _allocate(orders, price, volume))


def auction_with_market(
    orders: Sequence[AuctionOrder], tick: Tick | None, reference: int
) -> AuctionResult | None:
    """``auction_price`` with the simulated market taking part as liquidity at ``reference``:
    on both sides, the largest size its last tick shows - or, before the day's first trade
    when it shows none, enough to take the other side of every order (it is then the only
    counterparty). How the paper broker and the fakes run their auctions."""
    depth = max(tick.bid_size, tick.ask_size, tick.volume) if tick is not None else 0
    if depth <= 0:
        depth = sum(o.qty for o in orders)
    book = list(orders)
    if depth > 0:
        book += [
            AuctionOrder(Side.BUY, depth, reference, key="market-bid"),
            AuctionOrder(Side.SELL, depth, reference, key="market-ask"),
        ]
    return auction_price(book, reference)


def _allocate(orders: Sequence[AuctionOrder], price: int, volume: int) -> dict[object, int]:
    fills: dict[object, int] = {}
    for side in (Side.BUY, Side.SELL):
        eligible = [
            (i, o)
            for i, o in enumerate(orders)
            if o.side == side
            and (o.price is None or (o.price >= price if side == Side.BUY else o.price <= price))
        ]

        def priority(item: tuple[int, AuctionOrder], side: Side = side) -> tuple[int, int, int]:
            i, o = item
            if o.price is None:
                return (0, 0, i)
            return (1, -o.price if side == Side.BUY else o.price, i)

        left = volume
        for i, o in sorted(eligible, key=priority):
            take = min(o.qty, left)
            if take <= 0:
                break
            key = o.key if o.key is not None else i
            fills[key] = fills.get(key, 0) + take
            left -= take
    return fills


def arrival_price(
    order_type: OrderType, side: Side, price: int | None, bid: int, ask: int
) -> int | None:
    """The limit an order works at once it reaches the book (krx.md §5).

    limit/conditional/single-price: its own price. best (최유리): the opposite side's best -
    a buy at the best ask, a sell at the best bid. priority (최우선): the same side's best - a
    buy at the best bid, a sell at the best ask. market: None (no limit). None also when the
    side it prices from is empty.
    """
    if order_type == OrderType.MARKET:
        return None
    if order_type == OrderType.BEST:
        p = ask if side == Side.BUY else bid
        return p if p > 0 else None
    if order_type == OrderType.PRIORITY:
        p = bid if side == Side.BUY else ask
        return p if p > 0 else None
    return price


def crosses(side: Side, limit: int | None, price: int) -> bool:
    """Whether an order with ``limit`` (None = market) may trade at ``price``."""
    if limit is None:
        return True
    return limit >= price if side == Side.BUY else limit <= price


def quote_against(side: Side, limit: int | None, tick: Tick, *, resting: bool) -> tuple[int, int]:
    """(price, shares available) for an order with ``limit`` (None = market) against ``tick``;
    (0, 0) for no trade. The opposite side's best when the order crosses it; for a *resting*
    order also its own limit, up to the traded volume, when the market traded through that
    limit (it would have been filled first)."""
    buy = side == Side.BUY
    best, size = (tick.ask, tick.ask_size) if buy else (tick.bid, tick.bid_size)
    if best and crosses(side, limit, best):
        return best, size
    if (
        resting
        and limit is not None
        and tick.volume
        and (tick.price < limit if buy else tick.price > limit)
    ):
        return limit, tick.volume
    return 0, 0


def trade_bounds(tick: Tick) -> tuple[float, float]:
    """(lowest buy limit, highest sell limit) a *resting* priced order may trade at against
    ``tick``: outside them ``quote_against(..., resting=True)`` answers (0, 0). A cheap first
    look for scans of many resting orders; the bounds may admit orders that still do not
    trade (``quote_against`` decides)."""
    buy = min(tick.ask or math.inf, tick.price + 1 if tick.volume else math.inf)
    sell = max(tick.bid or -math.inf, tick.price - 1 if tick.volume else -math.inf)
    return buy, sell


def immediate_qty(tif: TimeInForce, wanted: int, available: int) -> int:
    """Shares an arriving order takes now: IOC what there is, FOK all or nothing, DAY what
    there is (the rest rests)."""
    if wanted <= 0 or available <= 0:
        return 0
    if tif == TimeInForce.FOK:
        return wanted if available >= wanted else 0
    return min(wanted, available)


def split_fills(total: int, sizes: Iterable[int]) -> list[int]:
    """Share ``total`` over orders of ``sizes`` in order (time priority): each takes what it
    can until nothing is left."""
    out = []
    left = total
    for size in sizes:
        take = max(0, min(size, left))
        out.append(take)
        left -= take
    return out
