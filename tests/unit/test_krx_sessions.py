"""Sessions, the order types each accepts, and their price rules, against reference/krx.md.

Each case cites the section of ``shared/reference/krx.md`` it checks. 2026-12-04 is an
ordinary Friday session (09:00-15:30); 2026-11-19 is CSAT day; 2026-01-02 the first day of
the year; 2026-12-05 a Saturday.
"""

from __future__ import annotations

from datetime import date, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hoga.domain import krx
from hoga.domain.krx import KST, Session

DAY = date(2026, 12, 4)


def at(hhmm: str, d: date = DAY, sec: int = 0) -> datetime:
    h, m = (int(x) for x in hhmm.split(":"))
    return datetime(d.year, d.month, d.day, h, m, sec, tzinfo=KST)


S = Session


@pytest.mark.parametrize(
    ("hhmm", "expected"),
    [
        # krx.md §3 KRX table.
        ("08:29", set()),
        ("08:30", {S.PRE_CLOSE, S.OPENING_AUCTION}),
        ("08:39", {S.PRE_CLOSE, S.OPENING_AUCTION}),
        ("08:40", {S.OPENING_AUCTION}),
        ("08:59", {S.OPENING_AUCTION}),
        ("09:00", {S.CONTINUOUS}),
        ("15:19", {S.CONTINUOUS}),
        ("15:20", {S.CLOSING_AUCTION}),
        ("15:29", {S.CLOSING_AUCTION}),
        ("15:30", {S.AFTER_CLOSE}),  # entry from 15:30, matching 15:40-16:00
        ("15:59", {S.AFTER_CLOSE}),
        ("16:00", {S.SINGLE_PRICE}),
        ("17:59", {S.SINGLE_PRICE}),
        ("18:00", set()),
    ],
)
def test_krx_sessions_through_an_ordinary_day(hhmm: str, expected: set[Session]) -> None:
    assert krx.sessions_at(at(hhmm)) == expected


@pytest.mark.parametrize(
    ("hhmm", "expected"),
    [
        # krx.md §3 Nextrade: pre 08:00-08:50, main 09:00:30-15:20, after 15:40-20:00.
        ("07:59", set()),
        ("08:00", {S.NXT_PRE}),
        ("08:49", {S.NXT_PRE}),
        ("08:50", set()),
        ("09:00", set()),
        ("15:19", {S.NXT_MAIN}),
        ("15:20", set()),
        ("15:39", set()),
        ("15:40", {S.NXT_AFTER}),
        ("19:59", {S.NXT_AFTER}),
        ("20:00", set()),
    ],
)
def test_nextrade_sessions(hhmm: str, expected: set[Session]) -> None:
    assert krx.sessions_at(at(hhmm), "NXT") == expected


def test_nextrade_main_market_opens_thirty_seconds_after_krx() -> None:
    assert krx.sessions_at(at("09:00", sec=29), "NXT") == set()
    assert krx.sessions_at(at("09:00", sec=30), "NXT") == {S.NXT_MAIN}


def test_sor_sees_both_markets() -> None:
    assert krx.sessions_at(at("08:35"), "SOR") == {S.PRE_CLOSE, S.OPENING_AUCTION, S.NXT_PRE}
    assert krx.sessions_at(at("17:00"), "SOR") == {S.SINGLE_PRICE, S.NXT_AFTER}
    with pytest.raises(ValueError, match="unknown venue"):
        krx.sessions_at(at("10:00"), "NYSE")


def test_special_days_move_the_windows_with_the_regular_session() -> None:
    # krx.md §3 special days: CSAT day 10:00-16:30; NXT has no pre-market, main 10:00-16:20,
    # after 16:30-20:00.
    csat = date(2026, 11, 19)
    assert krx.sessions_at(at("09:30", csat)) == {S.PRE_CLOSE, S.OPENING_AUCTION}
    assert krx.sessions_at(at("16:25", csat)) == {S.CLOSING_AUCTION}
    assert krx.sessions_at(at("08:10", csat), "NXT") == set()
    assert krx.sessions_at(at("16:19", csat), "NXT") == {S.NXT_MAIN}
    assert krx.sessions_at(at("16:30", csat), "NXT") == {S.NXT_AFTER}
    # First trading day of the year: opens 10:00, close unchanged.
    first = date(2026, 1, 2)
    assert krx.sessions_at(at("09:30", first)) == {S.PRE_CLOSE, S.OPENING_AUCTION}
    assert krx.sessions_at(at("09:45", first)) == {S.OPENING_AUCTION}
    assert krx.sessions_at(at("15:20", first)) == {S.CLOSING_AUCTION}
    # Closed days have no sessions at all.
    assert krx.day_windows(date(2026, 12, 5)) == []
    assert krx.sessions_at(at("10:00", date(2026, 12, 5)), "SOR") == set()


@pytest.mark.parametrize(
    ("hhmm", "kind", "tif", "venue", "session"),
    [
        # krx.md §5: IOC/FOK during continuous trading only.
        ("10:00", "limit", "ioc", "KRX", S.CONTINUOUS),
        ("10:00", "best", "fok", "KRX", S.CONTINUOUS),
        ("08:45", "limit", "ioc", "KRX", None),
        ("15:25", "market", "fok", "KRX", None),
        # Conditional limit cannot be entered 15:20-15:30.
        ("15:19", "conditional", "day", "KRX", S.CONTINUOUS),
        ("15:20", "conditional", "day", "KRX", None),
        ("08:45", "conditional", "day", "KRX", S.OPENING_AUCTION),
        # The off-hours sessions take their own types only; single price takes limit orders
        # of its own kind (시간외단일가), not regular limits.
        ("08:35", "pre_close", "day", "KRX", S.PRE_CLOSE),
        ("08:45", "pre_close", "day", "KRX", None),
        ("15:35", "after_close", "day", "KRX", S.AFTER_CLOSE),
        ("15:35", "limit", "day", "KRX", None),
        ("16:30", "single_price", "day", "KRX", S.SINGLE_PRICE),
        ("16:30", "limit", "day", "KRX", None),
        ("16:30", "market", "day", "KRX", None),
        ("10:00", "single_price", "day", "KRX", None),
        # Opening auction: limit and market yes.
        ("08:45", "limit", "day", "KRX", S.OPENING_AUCTION),
        ("08:45", "market", "day", "KRX", S.OPENING_AUCTION),
        # Nextrade: the after-market trades limit orders while KRX is closed.
        ("19:00", "limit", "day", "NXT", S.NXT_AFTER),
        ("19:00", "limit", "day", "KRX", None),
        ("19:00", "limit", "day", "SOR", S.NXT_AFTER),
        ("08:10", "limit", "day", "NXT", S.NXT_PRE),
        ("10:00", "limit", "ioc", "NXT", S.NXT_MAIN),
        ("21:00", "limit", "day", "SOR", None),
    ],
)
def test_which_session_takes_which_order(
    hhmm: str, kind: str, tif: str, venue: str, session: Session | None
) -> None:
    assert krx.session_for_order(at(hhmm), kind, tif, venue) == session


def test_after_close_trades_only_from_1540() -> None:
    # krx.md §3: after-close entry 15:30-16:00, matching 15:40-16:00.
    w = krx.window(DAY, S.AFTER_CLOSE)
    assert w is not None
    assert w.accepts_at(at("15:30")) and not w.trades_at(at("15:39"))
    assert w.trades_at(at("15:40")) and not w.trades_at(at("16:00"))


def test_single_price_rounds_every_ten_minutes_twelve_times() -> None:
    # krx.md §3: a call auction every 10 minutes, 12 rounds, 16:00-18:00.
    rounds = []
    t = at("16:00")
    while (nxt := krx.single_price_round(t)) is not None and nxt not in rounds:
        rounds.append(nxt)
        t = nxt.replace(second=1)
    assert [r.strftime("%H:%M") for r in rounds] == [
        "16:10", "16:20", "16:30", "16:40", "16:50", "17:00",
        "17:10", "17:20", "17:30", "17:40", "17:50", "18:00",
    ]  # fmt: skip
    assert rounds[0] == at("16:10") and rounds[-1] == at("18:00")
    assert krx.single_price_round(at("18:00")) is None


def test_single_price_band_is_ten_percent_of_the_close_inside_the_daily_limit() -> None:
    # krx.md §2/§3: ±10% around that day's close.
    assert krx.single_price_band(70_000, 70_000) == (63_000, 77_000)
    # Near the daily limit, the band stops at the ±30% limit of the base price.
    lower, upper = krx.price_limits(10_000)
    assert krx.single_price_band(upper, 10_000) == (11_700, upper)
    assert krx.single_price_band(lower, 10_000) == (lower, 7_700)


@given(
    base=st.integers(min_value=100, max_value=2_000_000),
    move=st.floats(min_value=-0.29, max_value=0.29),
)
def test_single_price_band_is_on_grid_and_inside_limits(base: int, move: float) -> None:
    base = krx.round_to_tick(base)
    close = krx.round_to_tick(max(1, int(base * (1 + move))))
    lower_day, upper_day = krx.price_limits(base)
    close = min(max(close, lower_day), upper_day)
    lower, upper = krx.single_price_band(close, base)
    assert lower_day <= lower <= close <= upper <= upper_day
    assert lower % krx.tick_size(lower) == 0 and upper % krx.tick_size(upper) == 0


def test_closing_price_orders_trade_at_a_fixed_price() -> None:
    # krx.md §3: pre-open at the previous close (the base price), after-close at today's.
    assert krx.fixed_price("pre_close", 70_000, None) == 70_000
    assert krx.fixed_price("after_close", 70_000, 71_500) == 71_500
    assert krx.fixed_price("limit", 70_000, 71_500) is None


def test_vi_thresholds() -> None:
    # krx.md §3 VI: dynamic 3%/6% continuous, 2%/4% closing auction; static ±10%.
    assert not krx.vi_triggered(10_600, 10_000, 10_000, S.CONTINUOUS)
    assert krx.vi_triggered(10_610, 10_000, 10_000, S.CONTINUOUS)
    assert krx.vi_triggered(10_310, 10_000, 10_000, S.CONTINUOUS, kospi200=True)
    assert krx.vi_triggered(10_410, 10_000, 10_000, S.CLOSING_AUCTION)
    # Static: small steps that drift 10% past the last auction price.
    assert krx.vi_triggered(11_010, 10_900, 10_000, S.CONTINUOUS)
    assert not krx.vi_triggered(11_000, 10_900, 10_000, S.CONTINUOUS)
