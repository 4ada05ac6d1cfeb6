"""The risk gate's session and order-type rules (krx.md §3, §5)."""

from __future__ import annotations

from datetime import datetime

import pytest

from hoga.domain import krx
from hoga.domain.clock import KST
from hoga.domain.orders import OrderIntent, OrderType, Side, TimeInForce, Venue
from hoga.execution import risk
from tests.unit.test_risk import inputs

T = OrderType


def intent(
    kind: OrderType,
    price: int | None = None,
    tif: TimeInForce = TimeInForce.DAY,
    venue: Venue = Venue.KRX,
    side: Side = Side.BUY,
) -> OrderIntent:
    return OrderIntent("005930", side, kind, 10, price, tif=tif, venue=venue)


def at(hhmm: str) -> datetime:
    h, m = (int(x) for x in hhmm.split(":"))
    return datetime(2026, 12, 4, h, m, tzinfo=KST)


@pytest.mark.parametrize(
    ("kind", "price", "reserve_at"),
    [
        (T.BEST, None, "upper"),  # market-like: at the upper limit, like market orders
        (T.PRIORITY, None, "upper"),
        (T.CONDITIONAL, 70_000, 70_000),
        (T.PRE_CLOSE, None, 71_500),  # the previous close = the base price
        (T.AFTER_CLOSE, None, 72_000),  # today's close
    ],
)
def test_reservations_by_type(kind: OrderType, price: int | None, reserve_at: object) -> None:
    d = risk.check(inputs(intent=intent(kind, price), close_price=72_000))
    assert d.ok, d.message
    unit = krx.price_limits(71_500)[1] if reserve_at == "upper" else reserve_at
    assert isinstance(unit, int)
    assert d.reserved_cash == 10 * unit + krx.commission(10 * unit)


def test_an_order_no_session_takes_is_denied() -> None:
    d = risk.check(inputs(intent=intent(T.SINGLE_PRICE, 71_500), session=None))
    assert (d.ok, d.code) == (False, "risk.not_in_session")


def test_ioc_only_on_limit_market_and_best() -> None:
    d = risk.check(inputs(intent=intent(T.PRIORITY, None, TimeInForce.IOC)))
    assert (d.ok, d.code) == (False, "order.bad_tif")
    assert risk.check(inputs(intent=intent(T.BEST, None, TimeInForce.FOK))).ok


def test_single_price_band_is_checked() -> None:
    ok = inputs(intent=intent(T.SINGLE_PRICE, 75_000), close_price=72_000, session="single_price")
    assert risk.check(ok).ok
    far = inputs(intent=intent(T.SINGLE_PRICE, 80_000), close_price=72_000, session="single_price")
    d = risk.check(far)
    assert (d.ok, d.code) == (False, "risk.outside_single_price_band")


def test_market_like_types_need_a_fresh_quote() -> None:
    stale = inputs(intent=intent(T.BEST), max_quote_age=5.0, quote_age=60.0)
    assert risk.check(stale).code == "risk.stale_quote"


@pytest.mark.parametrize(
    ("hhmm", "order", "calendar", "session"),
    [
        ("08:45", intent(T.LIMIT, 71_500), True, "opening_auction"),
        ("08:45", intent(T.LIMIT, 71_500, TimeInForce.IOC), True, None),
        ("16:30", intent(T.SINGLE_PRICE, 71_500), True, "single_price"),
        ("19:00", intent(T.LIMIT, 71_500, venue=Venue.NXT), True, "nxt_after"),
        ("19:00", intent(T.LIMIT, 71_500), True, None),
        # Demo mode trades around the clock as the continuous session.
        ("19:00", intent(T.LIMIT, 71_500), False, "continuous"),
        ("19:00", intent(T.PRE_CLOSE), False, None),
    ],
)
def test_order_session(hhmm: str, order: OrderIntent, calendar: bool, session: str | None) -> None:
    assert risk.order_session(order, at(hhmm), calendar=calendar) == session
