"""The risk gate, one rule at a time (pure function over a snapshot)."""

from __future__ import annotations

from dataclasses import replace

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hoga.domain import krx
from hoga.domain.market import Instrument
from hoga.domain.orders import OrderIntent, OrderType, Priority, Side
from hoga.domain.tiers import SEED_TIERS
from hoga.execution import risk

FREE, BASIC, PREMIUM = SEED_TIERS
SAMSUNG = Instrument("005930", "삼성전자", "KOSPI", "stock", 71_500)


def inputs(**over: object) -> risk.RiskInputs:
    base = risk.RiskInputs(
        intent=OrderIntent("005930", Side.BUY, OrderType.LIMIT, 10, 71_500),
        instrument=SAMSUNG,
        last_price=71_500,
        tier=BASIC,
        user_state="ACTIVE",
        server_state="ACTIVE",
        market_open=True,
        trades_today=0,
        max_order_value=50_000_000,
        daily_loss_limit=0,
        daily_pnl=0,
        cash=10_000_000,
        reserved_cash=0,
        held_qty=0,
        open_sell_qty=0,
        held_symbols=frozenset(),
        pending_buy_symbols=frozenset(),
    )
    return replace(base, **over)  # type: ignore[arg-type]


def sell(qty: int = 5, price: int | None = 71_500) -> OrderIntent:
    return OrderIntent(
        "005930", Side.SELL, OrderType.LIMIT if price else OrderType.MARKET, qty, price
    )


def test_a_sound_buy_is_accepted_with_its_reservation() -> None:
    d = risk.check(inputs())
    assert d.ok
    assert d.reserved_cash == 715_000 + krx.commission(715_000)
    assert d.priority == Priority.NORMAL


def test_market_buy_reserves_at_the_upper_limit_and_premium_is_vip() -> None:
    d = risk.check(
        inputs(intent=OrderIntent("005930", Side.BUY, OrderType.MARKET, 10), tier=PREMIUM)
    )
    upper = krx.price_limits(71_500)[1]
    assert d.reserved_cash == 10 * upper + krx.commission(10 * upper)
    assert d.priority == Priority.VIP
    urgent = risk.check(
        inputs(intent=OrderIntent("005930", Side.BUY, OrderType.MARKET, 1, urgent=True))
    )
    assert urgent.priority == Priority.URGENT


@pytest.mark.parametrize(
    ("over", "code"),
    [
        ({"server_state": "HALTED"}, "risk.halted"),
        ({"user_state": "HALTED"}, "risk.user_halted"),
        ({"user_state": "REDUCING"}, "risk.reducing_only"),
        ({"server_state": "REDUCING"}, "risk.reducing_only"),
        ({"market_open": False}, "risk.market_closed"),
        ({"intent": OrderIntent("005930", Side.BUY, OrderType.LIMIT, 1, 71_550)}, "risk.off_tick"),
        (
            {"intent": OrderIntent("005930", Side.BUY, OrderType.LIMIT, 1, 93_000)},
            "risk.outside_limits",
        ),
        ({"trades_today": 50}, "risk.daily_trade_limit"),
        ({"max_order_value": 700_000}, "risk.order_value"),
        ({"duplicate": True}, "risk.duplicate"),
        ({"held_symbols": frozenset(str(i).zfill(6) for i in range(10))}, "risk.max_positions"),
        ({"cash": 700_000}, "risk.insufficient_cash"),
        ({"cash": 1_000_000, "reserved_cash": 300_000}, "risk.insufficient_cash"),
        ({"intent": sell(5)}, "risk.insufficient_shares"),
        ({"intent": sell(5), "held_qty": 5, "open_sell_qty": 1}, "risk.insufficient_shares"),
        ({"daily_loss_limit": 100_000, "daily_pnl": -100_000}, "risk.daily_loss"),
    ],
)
def test_each_rule_denies_with_its_code(over: dict[str, object], code: str) -> None:
    d = risk.check(inputs(**over))
    assert not d.ok
    assert d.code == code
    assert d.message


def test_reducing_orders_pass_the_kill_switch_and_the_loss_limit() -> None:
    reducing = {"intent": sell(5), "held_qty": 10, "held_symbols": frozenset({"005930"})}
    assert risk.check(inputs(user_state="REDUCING", **reducing)).ok
    d = risk.check(inputs(daily_loss_limit=100_000, daily_pnl=-150_000, **reducing))
    assert d.ok and d.breach
    assert not risk.check(inputs(server_state="HALTED", **reducing)).ok


def test_an_existing_position_or_pending_buy_does_not_count_as_a_new_position() -> None:
    full = frozenset(str(i).zfill(6) for i in range(9)) | {"005930"}
    assert risk.check(inputs(held_symbols=full)).ok
    assert risk.check(
        inputs(held_symbols=full - {"005930"}, pending_buy_symbols=frozenset({"005930"}))
    ).ok


def test_without_todays_reference_price_nothing_passes() -> None:
    """A broker feed that has not delivered the symbol yet: no limits or cost can be known."""
    unknown = replace(SAMSUNG, base_price=0)
    for intent in (
        OrderIntent("005930", Side.BUY, OrderType.LIMIT, 1, 71_500),
        OrderIntent("005930", Side.BUY, OrderType.MARKET, 1),
    ):
        d = risk.check(inputs(intent=intent, instrument=unknown, last_price=None))
        assert not d.ok and d.code == "risk.no_quote"


MARKET_BUY = OrderIntent("005930", Side.BUY, OrderType.MARKET, 10)


def test_a_market_order_on_a_stale_quote_is_refused_during_trading() -> None:
    d = risk.check(inputs(intent=MARKET_BUY, quote_age=61.0, max_quote_age=60.0))
    assert not d.ok and d.code == "risk.stale_quote"
    assert "61" in d.message and "limit order" in d.message
    # No quote at all is as bad as an old one.
    d = risk.check(inputs(intent=MARKET_BUY, quote_age=None, max_quote_age=60.0))
    assert d.code == "risk.stale_quote"
    # A limit order states its own price: allowed on the same stale quote.
    assert risk.check(inputs(quote_age=600.0, max_quote_age=60.0)).ok
    # A fresh quote, or the check switched off: allowed.
    assert risk.check(inputs(intent=MARKET_BUY, quote_age=59.0, max_quote_age=60.0)).ok
    assert risk.check(inputs(intent=MARKET_BUY, quote_age=None, max_quote_age=0.0)).ok
    # Outside trading the market is simply closed.
    d = risk.check(
        inputs(intent=MARKET_BUY, quote_age=9_999.0, max_quote_age=60.0, market_open=False)
    )
    assert d.code == "risk.market_closed"


@given(
    age=st.one_of(st.none(), st.floats(min_value=0, max_value=1e6)),
    limit=st.floats(min_value=0, max_value=1e5),
)
def test_stale_quote_rule_is_exactly_age_over_limit(age: float | None, limit: float) -> None:
    d = risk.check(inputs(intent=MARKET_BUY, quote_age=age, max_quote_age=limit))
    stale = limit > 0 and (age is None or age > limit)
    assert (d.code == "risk.stale_quote") == stale
    assert d.ok == (not stale)
