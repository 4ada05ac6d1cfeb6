"""Each catalog strategy's signals, proven on crafted bars through the backtest engine.

The engine fills market orders at the next bar's open, so "a signal on bar i" shows up as a
fill at ``open[i + 1]``. Expected trades are worked out by hand (or by an independent reference
implementation in exact fractions) - never by asking the strategy.
"""

from __future__ import annotations

from datetime import datetime
from fractions import Fraction
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from hoga.backtest.data import BarSeries
from hoga.backtest.engine import run_backtest
from hoga.domain.clock import KST
from hoga.strategies.catalog.bollinger import Bollinger
from hoga.strategies.catalog.rebalance import Rebalance
from hoga.strategies.catalog.rsi_reversion import RsiReversion
from hoga.strategies.catalog.sma_cross import SmaCross
from hoga.strategies.catalog.volatility_breakout import VolatilityBreakout
from hoga.strategies.registry import load_catalog

DAY0 = int(datetime(2026, 2, 2, tzinfo=KST).timestamp())


def daily(closes: list[int], symbol: str = "005930", opens: list[int] | None = None) -> BarSeries:
    """Daily bars; open = the given open (default: the close itself); high/low span both."""
    o = opens or list(closes)
    return BarSeries(
        symbol,
        86_400,
        [DAY0 + 86_400 * i for i in range(len(closes))],
        o,
        [max(a, b) for a, b in zip(o, closes, strict=True)],
        [min(a, b) for a, b in zip(o, closes, strict=True)],
        list(closes),
        [100] * len(closes),
    )


def trades(result: Any) -> list[tuple[int, str, int, int]]:
    """(bar index, side, qty, price) of each fill."""
    return [((f.ts - DAY0) // 86_400, f.side, f.qty, f.price) for f in result.fills]


def run(cls: Any, series: Any, cash: int = 100_000_000, **params: Any) -> Any:
    p = load_catalog(plugins=False).params(cls.kind, params)
    return run_backtest(cls, p, series, cash=cash)


# --- sma_cross


def test_sma_cross_enters_on_cross_up_and_exits_on_cross_down() -> None:
    closes = [100, 99, 98, 97, 110, 111, 90, 80, 85]
    opens = [100, 101, 102, 103, 104, 105, 106, 107, 108]
    r = run(SmaCross, daily(closes, opens=opens), fast=2, slow=3, qty=7)
    # bar 3: fast (98+97)/2=97.5 <= slow (99+98+97)/3=98; bar 4: fast 103.5 > slow 101.67 -> buy
    # bar 6: fast (111+90)/2=100.5 < slow (110+111+90)/3=103.67, bar 5 was above -> sell
    assert trades(r) == [(5, "buy", 7, 105), (7, "sell", 7, 107)]


def test_sma_cross_needs_both_averages_on_both_bars() -> None:
    # The slow average is first defined on bar 2, already above: no cross, no trade.
    r = run(SmaCross, daily([100, 101, 120, 121, 122]), fast=2, slow=3, qty=1)
    assert trades(r) == []


def test_sma_cross_does_not_reenter_while_holding() -> None:
    # Cross up, down-touch to equal (not below), cross up again while still holding: one buy.
    closes = [10, 9, 8, 12, 12, 12, 13]
    r = run(SmaCross, daily(closes), fast=1, slow=2, qty=1)
    assert [t[1] for t in trades(r)] == ["buy"]


def _reference_sma(closes: list[int], fast: int, slow: int) -> list[tuple[int, str]]:
    """An independent statement of the rule, in exact fractions."""
    out: list[tuple[int, str]] = []
    holding = False
    prev = None
    for i in range(len(closes)):
        if i + 1 < slow:
            continue
        f = Fraction(sum(closes[i + 1 - fast : i + 1]), fast)
        s = Fraction(sum(closes[i + 1 - slow : i + 1]), slow)
        now = (f > s) - (f < s)
        if prev is not None and i + 1 < len(closes):
            if prev <= 0 < now and not holding:
                out.append((i + 1, "buy"))
                holding = True
            elif prev >= 0 > now and holding:
                out.append((i + 1, "sell"))
                holding = False
        prev = now
    return out


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.integers(-3, 3), min_size=5, max_size=80),
    st.integers(1, 4),
    st.integers(1, 5),
)
def test_sma_cross_matches_the_rule_on_random_walks(
    steps: list[int], fast: int, extra: int
) -> None:
    closes = []
    p = 1000
    for d in steps:
        p += d * 10
        closes.append(p)
    slow = fast + extra
    r = run(SmaCross, daily(closes), fast=fast, slow=slow, qty=2)
    assert [(t[0], t[1]) for t in trades(r)] == _reference_sma(closes, fast, slow)
    # Accounting: final equity = cash moved by fills + holdings at the last close.
    cash = 100_000_000
    held = 0
    for f in r.fills:
        amount = f.qty * f.price
        if f.side == "buy":
            cash -= amount + f.commission
            held += f.qty
        else:
            cash -= -amount + f.commission + f.tax
            held -= f.qty
    assert r.final_equity == cash + held * closes[-1]


# --- rsi_reversion


def test_rsi_reversion_buys_oversold_and_sells_overbought() -> None:
    closes = [100, 90, 80, 85, 100, 120, 119]
    r = run(RsiReversion, daily(closes), period=2, oversold=30, overbought=70, qty=4)
    # bar 2: changes -10,-10 -> RSI 0 < 30 -> buy at bar 3's open (85)
    # bar 3: changes -10,+5 -> RSI 33 (neither); bar 4: +5,+15 -> RSI 100 > 70 -> sell at 120
    assert trades(r) == [(3, "buy", 4, 85), (5, "sell", 4, 120)]


def test_rsi_boundaries_are_strict() -> None:
    # changes -10, +5 over period 2: RSI = 100*5/15 = 33.33 - not below 33, but below 34.
    closes = [100, 90, 95, 95, 95]
    assert trades(run(RsiReversion, daily(closes), period=2, oversold=33, overbought=90)) == []
    r = run(RsiReversion, daily(closes), period=2, oversold=34, overbought=90, qty=1)
    assert trades(r)[0] == (3, "buy", 1, 95)


# --- bollinger


def test_bollinger_buys_below_the_lower_band_and_sells_at_the_mean() -> None:
    closes = [100, 100, 100, 90, 91, 95, 96]
    r = run(Bollinger, daily(closes), period=3, k=1.0, qty=5)
    # bar 3: window 100,100,90: mean 96.67, sd 4.714 -> lower 91.95 > 90 -> buy at 91
    # bar 4: window 100,90,91 mean 93.67 > 91 -> hold; bar 5: window 90,91,95 mean 92 <= 95 -> sell
    assert trades(r) == [(4, "buy", 5, 91), (6, "sell", 5, 96)]


def test_bollinger_touching_the_band_is_not_below_it() -> None:
    # window 1,1,4 (k=1): mean 2, population sd sqrt(2) -> lower 0.586; closes never below.
    closes = [100, 100, 100, 100]
    assert trades(run(Bollinger, daily(closes), period=3, k=0.5)) == []


# --- volatility_breakout


def minute_bars(days: list[list[tuple[int, int, int, int]]], hhmm: str = "09:00") -> BarSeries:
    """Minute bars (o, h, l, c) for consecutive days starting at ``hhmm`` KST."""
    h0, m0 = (int(x) for x in hhmm.split(":"))
    ts, o, h, lo, c = [], [], [], [], []
    for d, bars in enumerate(days):
        start = DAY0 + d * 86_400 + h0 * 3600 + m0 * 60
        for i, (bo, bh, bl, bc) in enumerate(bars):
            ts.append(start + 60 * i)
            o.append(bo)
            h.append(bh)
            lo.append(bl)
            c.append(bc)
    return BarSeries("005930", 60, ts, o, h, lo, c, [10] * len(ts))


def test_volatility_breakout_enters_above_open_plus_k_range_and_exits_next_open() -> None:
    day1 = [(100, 110, 95, 100), (100, 105, 90, 100)]  # range 110 - 90 = 20
    day2 = [(100, 105, 99, 104), (104, 111, 103, 110), (110, 112, 109, 111), (112, 113, 111, 112)]
    day3 = [(120, 121, 119, 120), (120, 121, 119, 120)]
    r = run(VolatilityBreakout, minute_bars([day1, day2, day3]), k=0.5, qty=3)
    # target = 100 + 0.5*20 = 110: 110 is not above it, 111 (bar 3 of day 2) is -> buy at 112.
    # exit_at=open: sold at day 3's first open, 120.
    got = [
        (f.side, f.qty, f.price, datetime.fromtimestamp(f.ts, KST).strftime("%d %H:%M"))
        for f in r.fills
    ]
    assert got == [("buy", 3, 112, "03 09:03"), ("sell", 3, 120, "04 09:00")]


def test_volatility_breakout_close_exit_and_once_a_day() -> None:
    day1 = [(100, 120, 100, 110)]  # range 20
    day2 = [
        (100, 100, 100, 100),
        (100, 120, 100, 115),  # 09:01 closes above 110 -> buy at 09:02's open
        (116, 116, 100, 100),
        (100, 120, 100, 118),  # above target again, but once a day
        (117, 117, 117, 117),  # 09:04 is exit_time -> sell at 09:05's open
        (119, 119, 119, 119),
    ]
    r = run(
        VolatilityBreakout,
        minute_bars([day1, day2]),
        k=0.5,
        qty=2,
        exit_at="close",
        exit_time="09:04",
    )
    got = [(f.side, f.price, datetime.fromtimestamp(f.ts, KST).strftime("%H:%M")) for f in r.fills]
    assert got == [("buy", 116, "09:02"), ("sell", 119, "09:05")]


def test_volatility_breakout_waits_for_a_whole_day() -> None:
    # First day only: no yesterday, no target, no trade however high it goes.
    day1 = [(100, 100, 100, 100), (100, 200, 100, 200), (200, 200, 200, 200)]
    assert run(VolatilityBreakout, minute_bars([day1]), k=0.1).fills == []


# --- rebalance


def two_symbols(a: list[int], b: list[int]) -> list[BarSeries]:
    return [daily(a, "005930"), daily(b, "000660")]


def test_rebalance_to_target_weights_each_day() -> None:
    a = [10_000, 10_000, 12_000]
    b = [20_000, 20_000, 20_000]
    p = load_catalog(plugins=False).params(
        "rebalance",
        {
            "mode": "weights",
            "period": "day",
            "budget": 1_000_000,
            "weights": {"005930": 0.5, "000660": 0.25},
        },
        ("005930", "000660"),
    )
    r = run_backtest(Rebalance, p, two_symbols(a, b), cash=10_000_000)
    fills = [(f.symbol, f.side, f.qty, f.price, (f.ts - DAY0) // 86_400) for f in r.fills]
    assert fills == [
        # Day 0, at 005930's close (000660 has no price yet): 500,000 // 10,000 = 50 shares.
        ("005930", "buy", 50, 10_000, 1),
        # Day 1, at 005930's close: capital = 1,000,000 - 75 (commission) = 999,925:
        # 005930 target 499,962 // 10,000 = 49 -> sell 1; 000660 target 249,981 // 20,000 = 12.
        ("000660", "buy", 12, 20_000, 1),
        ("005930", "sell", 1, 12_000, 2),
        # Day 2: realised -75 + (12,000 - 10,000 - 1 - 24) - 36 = 1,864, unrealised
        # 49 x (12,000 - 10,000) = 98,000 -> capital 1,099,864: 000660 target 13 -> buy 1;
        # 005930 target 45 -> sell 4, which has no later bar to fill at.
        ("000660", "buy", 1, 20_000, 2),
    ]
    assert (r.fills[2].commission, r.fills[2].tax) == (
        12_000 * 15 // 100_000,
        12_000 * 20 // 10_000,
    )
    assert r.open_orders_at_end == 1


def test_rebalance_dca_buys_a_fixed_amount_per_period() -> None:
    a = [10_000, 11_000, 12_000, 13_000]
    p = load_catalog(plugins=False).params(
        "rebalance", {"mode": "dca", "period": "day", "amount": 100_000}, ("005930",)
    )
    r = run_backtest(Rebalance, p, daily(a), cash=10_000_000)
    # each day's close decides: 100,000 // 10,000 = 10, // 11,000 = 9, // 12,000 = 8
    assert [(f.qty, f.price) for f in r.fills] == [(10, 11_000), (9, 12_000), (8, 13_000)]
