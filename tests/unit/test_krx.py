"""KRX rules: exact answers at the band edges, and properties over the whole price range."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hoga.domain import krx
from hoga.domain.krx import KST, Phase

STOCK_EDGES = [
    (1, 1),
    (1_999, 1),
    (2_000, 5),
    (4_995, 5),
    (5_000, 10),
    (19_990, 10),
    (20_000, 50),
    (49_950, 50),
    (50_000, 100),
    (199_900, 100),
    (200_000, 500),
    (499_500, 500),
    (500_000, 1_000),
    (3_000_000, 1_000),
]


@pytest.mark.parametrize(("price", "tick"), STOCK_EDGES)
def test_stock_tick_at_every_band_edge(price: int, tick: int) -> None:
    assert krx.tick_size(price) == tick


@pytest.mark.parametrize(("price", "tick"), [(1, 1), (1_999, 1), (2_000, 5), (150_000, 5)])
def test_etf_tick(price: int, tick: int) -> None:
    assert krx.tick_size(price, "etf") == tick
    assert krx.tick_size(price, "ETN") == tick


def test_tick_refuses_nonsense() -> None:
    with pytest.raises(ValueError, match="positive"):
        krx.tick_size(0)
    with pytest.raises(ValueError, match="kind"):
        krx.tick_size(1000, "bond")


@pytest.mark.parametrize(
    ("base", "limits"),
    [
        (9_980, (6_990, 12_970)),  # KRX's own worked example
        (19_990, (14_000, 25_950)),
        (9_940, (6_960, 12_920)),  # the old KOSDAQ example under today's ticks
        (50_000, (35_000, 65_000)),
        (1_000, (700, 1_300)),
        (1, (1, 1)),
    ],
)
def test_price_limits_follow_krx_rounding(base: int, limits: tuple[int, int]) -> None:
    assert krx.price_limits(base) == limits


on_tick_prices = st.integers(min_value=1, max_value=3_000_000).map(
    lambda p: p - p % krx.tick_size(p)
)


@given(on_tick_prices)
def test_limits_are_on_grid_and_within_thirty_percent(base: int) -> None:
    lower, upper = krx.price_limits(base)
    assert lower % krx.tick_size(lower) == 0
    assert upper % krx.tick_size(upper) == 0
    assert lower <= base <= upper
    assert upper <= base * 13 / 10
    assert lower >= base * 7 / 10
    assert krx.is_valid_price(base, base)
    assert krx.is_valid_price(upper, base)
    assert krx.is_valid_price(lower, base)
    assert not krx.is_valid_price(upper + krx.tick_size(upper), base)
    if lower > 1:
        assert not krx.is_valid_price(krx.step_price(lower, -1), base)


@given(st.integers(min_value=1, max_value=3_000_000))
def test_tick_divides_all_larger_ticks_and_rounding_lands_on_grid(price: int) -> None:
    down = krx.round_to_tick(price)
    up = krx.round_to_tick(price, up=True)
    assert down <= price <= up
    assert down % krx.tick_size(down) == 0
    assert up % krx.tick_size(up) == 0
    assert up - down <= krx.tick_size(up)


@given(on_tick_prices, st.integers(min_value=-50, max_value=50))
def test_step_price_stays_on_grid_and_round_trips(price: int, steps: int) -> None:
    moved = krx.step_price(price, steps)
    assert moved % krx.tick_size(moved) == 0
    if moved > 1:
        assert krx.step_price(moved, -steps) == price


@given(st.integers(min_value=1, max_value=3_000_000), on_tick_prices)
def test_is_valid_price_matches_its_definition(price: int, base: int) -> None:
    lower, upper = krx.price_limits(base)
    expected = price % krx.tick_size(price) == 0 and lower <= price <= upper
    assert krx.is_valid_price(price, base) is expected


# --- symbols ---


@pytest.mark.parametrize("code", ["005930", "0013V0", "28513K", "Q500001", "069500"])
def test_valid_symbols(code: str) -> None:
    assert krx.is_valid_symbol(code)


@pytest.mark.parametrize(
    "code", ["5930", "0059300", "00593o", "A005930", "", "Q5000012", "q500001", 5930]
)
def test_invalid_symbols(code: object) -> None:
    assert not krx.is_valid_symbol(code)  # type: ignore[arg-type]


@given(st.text(alphabet="0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ", min_size=6, max_size=6))
def test_any_six_char_code_is_valid(code: str) -> None:
    assert krx.is_valid_symbol(code)
    assert krx.normalize_symbol("A" + code) == code


# --- calendar ---


@pytest.mark.parametrize(
    ("d", "open_"),
    [
        (date(2026, 6, 3), None),  # local elections, missed by exchange-calendars 4.13.2
        (date(2026, 7, 17), None),  # Constitution Day
        (date(2026, 12, 31), None),  # year-end closure
        (date(2026, 5, 1), None),
        (date(2026, 11, 28), None),  # Saturday
        (date(2026, 1, 2), "10:00"),  # first trading day opens late
        (date(2026, 11, 19), "10:00"),  # CSAT day
        (date(2026, 11, 26), "09:00"),
    ],
)
def test_trading_days_and_opens(d: date, open_: str | None) -> None:
    st_ = krx.session_times(d)
    assert krx.is_trading_day(d) is (open_ is not None)
    if open_ is None:
        assert st_ is None
    else:
        assert st_ is not None
        assert st_.open.strftime("%H:%M") == open_


def test_csat_day_closes_an_hour_late() -> None:
    st_ = krx.session_times(date(2025, 11, 13))
    assert st_ is not None
    assert st_.close.strftime("%H:%M") == "16:30"


@pytest.mark.parametrize(
    ("hhmm", "phase"),
    [
        ("08:29", Phase.CLOSED),
        ("08:30", Phase.PRE_OPEN_AUCTION),
        ("08:59", Phase.PRE_OPEN_AUCTION),
        ("09:00", Phase.CONTINUOUS),
        ("15:19", Phase.CONTINUOUS),
        ("15:20", Phase.CLOSING_AUCTION),
        ("15:30", Phase.AFTER_HOURS),
        ("17:59", Phase.AFTER_HOURS),
        ("18:00", Phase.CLOSED),
    ],
)
def test_session_phases_on_a_normal_day(hhmm: str, phase: Phase) -> None:
    h, m = map(int, hhmm.split(":"))
    assert krx.session_phase(datetime(2026, 11, 26, h, m, tzinfo=KST)) == phase


def test_session_phase_on_first_day_and_holiday_and_other_timezones() -> None:
    assert krx.session_phase(datetime(2026, 1, 2, 9, 30, tzinfo=KST)) == Phase.PRE_OPEN_AUCTION
    assert krx.session_phase(datetime(2026, 1, 2, 10, 0, tzinfo=KST)) == Phase.CONTINUOUS
    assert krx.session_phase(datetime(2026, 6, 3, 10, 0, tzinfo=KST)) == Phase.CLOSED
    # 01:00 UTC is 10:00 KST.
    utc = datetime.fromisoformat("2026-11-26T01:00:00+00:00")
    assert krx.session_phase(utc) == Phase.CONTINUOUS
    with pytest.raises(ValueError, match="naive"):
        krx.session_phase(datetime(2026, 11, 26, 10, 0))


@given(st.datetimes(min_value=datetime(2020, 1, 1), max_value=datetime(2027, 12, 31)))
def test_phase_is_closed_exactly_on_non_trading_days(naive: datetime) -> None:
    t = naive.replace(tzinfo=KST)
    phase = krx.session_phase(t)
    assert phase in set(Phase)
    if not krx.is_trading_day(t.date()):
        assert phase == Phase.CLOSED
    if phase == Phase.CONTINUOUS:
        st_ = krx.session_times(t.date())
        assert st_ is not None
        assert st_.open <= t < st_.close


# --- costs ---


@pytest.mark.parametrize(
    ("trade_date", "market", "rate"),
    [
        (date(2023, 6, 1), "KOSPI", "0.0020"),
        (date(2024, 6, 3), "KOSDAQ", "0.0018"),
        (date(2025, 6, 2), "KOSPI", "0.0015"),
        (date(2026, 6, 2), "KOSDAQ", "0.0020"),
        (date(2024, 12, 27), "KOSPI", "0.0015"),  # settles 2025-01-02: the 2025 rate
        (date(2025, 12, 29), "KOSPI", "0.0020"),  # settles 2026-01-02: the 2026 rate
        (date(2025, 12, 26), "KOSPI", "0.0015"),  # settles 2025-12-30
        (date(2026, 6, 2), "ETF", "0"),
    ],
)
def test_sell_tax_follows_settlement_date(trade_date: date, market: str, rate: str) -> None:
    assert krx.sell_tax_rate(trade_date, market) == Decimal(rate)


def test_settlement_skips_closures() -> None:
    assert krx.settlement_date(date(2025, 12, 29)) == date(2026, 1, 2)
    assert krx.settlement_date(date(2026, 6, 2)) == date(2026, 6, 5)  # 06-03 closed


@pytest.mark.parametrize(
    ("amount", "fee"), [(0, 0), (6_666, 0), (6_667, 1), (1_000_000, 150), (73_456_789, 11_018)]
)
def test_commission_floors_to_the_won(amount: int, fee: int) -> None:
    assert krx.commission(amount) == fee


@given(st.integers(min_value=0, max_value=10**12), st.decimals("0", "0.01", places=6))
def test_commission_is_floor_of_exact_product(amount: int, rate: Decimal) -> None:
    fee = krx.commission(amount, rate)
    assert fee <= amount * rate < fee + 1


@given(st.integers(min_value=1, max_value=10_000), on_tick_prices)
def test_fill_costs_tax_only_on_sells(qty: int, price: int) -> None:
    d = date(2026, 3, 3)
    buy_fee, buy_tax = krx.fill_costs("buy", qty, price, d, "KOSPI")
    sell_fee, sell_tax = krx.fill_costs("sell", qty, price, d, "KOSPI")
    assert buy_tax == 0
    assert buy_fee == sell_fee == krx.commission(qty * price)
    assert sell_tax == qty * price * 20 // 10_000


@given(
    st.lists(
        st.tuples(st.integers(min_value=1, max_value=5_000), on_tick_prices),
        min_size=1,
        max_size=12,
    ),
    st.sampled_from(["buy", "sell"]),
    st.decimals("0", "0.005", places=7),
)
def test_an_orders_costs_do_not_depend_on_how_its_executions_are_split(
    executions: list[tuple[int, int]], side: str, rate: Decimal
) -> None:
    """Costs are rounded on the order's cumulative amount, so booking the executions one by
    one, all at once, or regrouped (a live notice vs a report's cumulative catch-up) charges
    the same commission and tax to the won - what keeps hoga's cash equal to the broker's."""
    d = date(2026, 3, 3)
    total = sum(q * p for q, p in executions)
    whole = krx.fill_costs(side, 1, total, d, "KOSPI", rate)
    fee = tax = prior = 0
    for qty, price in executions:
        f, t = krx.fill_costs(side, qty, price, d, "KOSPI", rate, prior_amount=prior)
        assert f >= 0 and t >= 0
        fee, tax, prior = fee + f, tax + t, prior + qty * price
    assert (
        (fee, tax) == whole == (krx.commission(total, rate), krx.order_tax(side, total, d, "KOSPI"))
    )
