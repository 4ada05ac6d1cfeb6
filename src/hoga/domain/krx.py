"""KRX market rules: tick sizes, daily price limits, sessions, the trading calendar and costs.

This module is the only place in hoga that knows these rules. Everything else (risk gate, paper
broker, simulator, backtests, dashboard previews) asks it; nothing re-derives them.

Sources are in ``../shared/reference/krx.md``; the numbers below cite its sections.
Money is integer won. Times are timezone-aware; naive datetimes are refused.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from decimal import ROUND_FLOOR, Decimal
from enum import StrEnum
from typing import Final
from zoneinfo import ZoneInfo

KST: Final = ZoneInfo("Asia/Seoul")

#: Default brokerage commission (0.015%), the rate KIS's own backtester assumes (krx.md §4).
DEFAULT_COMMISSION_RATE: Final = Decimal("0.00015")

# --- tick sizes (krx.md §1) -------------------------------------------------------------

# (exclusive upper bound of the band, tick) for stocks since 2023-01-25.
_STOCK_TICKS: Final = (
    (2_000, 1),
    (5_000, 5),
    (20_000, 10),
    (50_000, 50),
    (200_000, 100),
    (500_000, 500),
)
_STOCK_TOP_TICK: Final = 1_000
_FUND_KINDS: Final = frozenset({"etf", "etn"})
KINDS: Final = frozenset({"stock"}) | _FUND_KINDS


def _check_kind(kind: str) -> str:
    k = kind.lower()
    if k not in KINDS:
        raise ValueError(f"unknown instrument kind {kind!r}; expected one of {sorted(KINDS)}")
    return k


def tick_size(price: int, kind: str = "stock") -> int:
    """The quote unit (호가가격단위) at ``price``.

    Stocks use the 2023 table; ETFs and ETNs use 1 won below 2,000 and 5 won from 2,000.
    The tick is chosen by the level of the quoted price itself.
    """
    if price <= 0:
        raise ValueError(f"price must be a positive number of won, got {price}")
    if _check_kind(kind) in _FUND_KINDS:
        return 1 if price < 2_000 else 5
    for bound, tick in _STOCK_TICKS:
        if price < bound:
            return tick
    return _STOCK_TOP_TICK


def round_to_tick(price: int, kind: str = "stock", *, up: bool = False) -> int:
    """Snap ``price`` onto the tick grid, down by default (up with ``up=True``)."""
    tick = tick_size(price, kind)
    down = price - price % tick
    if not up or down == price:
        return down
    nxt = down + tick
    # Crossing a band edge may change the tick; a band's lower bound is always on its grid.
    return nxt - nxt % tick_size(nxt, kind)


def step_price(price: int, steps: int, kind: str = "stock") -> int:
    """Move ``steps`` ticks up (positive) or down (negative) from an on-grid ``price``."""
    p = price
    for _ in range(abs(steps)):
        if steps > 0:
            p += tick_size(p, kind)
        else:
            if p <= 1:
                break
            # The tick below a band edge is the lower band's tick.
            p -= tick_size(p - 1, kind)
    return p


def price_limits(base_price: int, kind: str = "stock") -> tuple[int, int]:
    """The day's (lower, upper) limit prices for a base price (기준가), ±30% (krx.md §2).

    The width 0.3 × base is truncated to the base price's tick; the upper limit is then
    truncated to the tick at its own level. Base 9,980 gives (6,990, 12,970).
    """
    if base_price <= 0:
        raise ValueError(f"base price must be positive, got {base_price}")
    base_tick = tick_size(base_price, kind)
    width = (base_price * 3 // 10) // base_tick * base_tick
    upper_raw = base_price + width
    upper = upper_raw - upper_raw % tick_size(upper_raw, kind)
    lower = max(base_price - width, 1)
    return lower, upper


def is_valid_price(price: int, base_price: int, kind: str = "stock") -> bool:
    """True when ``price`` is on the tick grid and inside the day's limits."""
    if price <= 0:
        return False
    if price % tick_size(price, kind):
        return False
    lower, upper = price_limits(base_price, kind)
    return lower <= price <= upper


# --- symbols (krx.md §7) ----------------------------------------------------------------

_SYMBOL_RE: Final = re.compile(r"(?:[0-9A-Z]{6}|Q[0-9A-Z]{6})")


def is_valid_symbol(code: str) -> bool:
    """Six characters of ``[0-9A-Z]`` (codes are strings, never numbers), or ``Q`` + 6 for ETNs."""
    return isinstance(code, str) and _SYMBOL_RE.fullmatch(code) is not None


def normalize_symbol(code: str) -> str:
    """Strip the ``A`` prefix some brokers put on stock codes (``A005930`` → ``005930``)."""
    c = code.strip().upper()
    if len(c) == 7 and c[0] == "A":
        return c[1:]
    return c


# --- calendar and sessions (krx.md §3, §6) ----------------------------------------------


class Phase(StrEnum):
    """Trading phases of a KRX day as :func:`session_phase` reports them."""

    PRE_OPEN_AUCTION = "pre_open_auction"
    CONTINUOUS = "continuous"
    CLOSING_AUCTION = "closing_auction"
    AFTER_HOURS = "after_hours"
    CLOSED = "closed"


#: Closures exchange-calendars 4.13.2 misses (krx.md §6).
EXTRA_CLOSURES: Final[dict[date, str]] = {
    date(2026, 6, 3): "전국동시지방선거 (local elections)",
    date(2026, 7, 17): "제헌절 (Constitution Day, a holiday again from 2026)",
}

#: CSAT (수능) days: the regular session moves one hour later, 10:00-16:30 (krx.md §3).
CSAT_DAYS: Final = frozenset(
    {
        date(2022, 11, 17),
        date(2023, 11, 16),
        date(2024, 11, 14),
        date(2025, 11, 13),
        date(2026, 11, 19),
    }
)

_REGULAR_OPEN: Final = time(9, 0)
_REGULAR_CLOSE: Final = time(15, 30)
_PRE_OPEN: Final = timedelta(minutes=30)
_CLOSING_AUCTION: Final = timedelta(minutes=10)
_AFTER_HOURS: Final = timedelta(hours=2, minutes=30)
_CAL_START: Final = date(2000, 1, 1)


@dataclass(frozen=True, slots=True)
class SessionTimes:
    """Open and close of one trading day's regular session, in KST."""

    day: date
    open: datetime
    close: datetime


@functools.cache
def _xkrx_sessions() -> tuple[frozenset[date], date]:
    """Sessions from exchange-calendars' XKRX, minus the local closure overrides.

    Built once per process (it takes a couple of seconds); returns the set and its last day.
    """
    import warnings

    import exchange_calendars as xcals

    end = date(datetime.now(KST).year + 2, 12, 31)
    with warnings.catch_warnings():
        # exchange-calendars trips pandas deprecation warnings that are not ours to fix.
        warnings.simplefilter("ignore")
        cal = xcals.get_calendar("XKRX", start=_CAL_START.isoformat(), end=end.isoformat())
        days = {ts.date() for ts in cal.sessions}
    return frozenset(days - EXTRA_CLOSURES.keys()), end


def warm_calendar() -> None:
    """Build the calendar now (the first query otherwise pays for it)."""
    _xkrx_sessions()


def _sessions() -> frozenset[date]:
    return _xkrx_sessions()[0]


def _check_in_range(d: date) -> None:
    last = _xkrx_sessions()[1]
    if not (_CAL_START <= d <= last):
        raise ValueError(f"{d} is outside the KRX calendar hoga knows ({_CAL_START}..{last})")


def is_trading_day(d: date) -> bool:
    """True when KRX holds a regular session on ``d`` (a KST calendar date)."""
    if isinstance(d, datetime):
        raise TypeError("is_trading_day takes a date; use trading_date(datetime) first")
    _check_in_range(d)
    return d in _sessions()


def next_trading_day(d: date) -> date:
    """The first trading day strictly after ``d``."""
    cur = d + timedelta(days=1)
    while not is_trading_day(cur):
        cur += timedelta(days=1)
    return cur


def previous_trading_day(d: date) -> date:
    """The last trading day strictly before ``d``."""
    cur = d - timedelta(days=1)
    while not is_trading_day(cur):
        cur -= timedelta(days=1)
    return cur


def _is_first_session_of_year(d: date) -> bool:
    cur = date(d.year, 1, 1)
    while cur < d:
        if cur in _sessions():
            return False
        cur += timedelta(days=1)
    return True


def session_times(d: date) -> SessionTimes | None:
    """Open and close of the regular session on ``d``, or None when KRX is closed.

    The first trading day of a year opens at 10:00; CSAT days run 10:00-16:30.
    """
    if not is_trading_day(d):
        return None
    open_t, close_t = _REGULAR_OPEN, _REGULAR_CLOSE
    if d in CSAT_DAYS:
        open_t, close_t = time(10, 0), time(16, 30)
    elif _is_first_session_of_year(d):
        open_t = time(10, 0)
    return SessionTimes(
        day=d,
        open=datetime.combine(d, open_t, tzinfo=KST),
        close=datetime.combine(d, close_t, tzinfo=KST),
    )


def _as_kst(t: datetime) -> datetime:
    if t.tzinfo is None or t.tzinfo.utcoffset(t) is None:
        raise ValueError("naive datetime: hoga only works with timezone-aware times")
    return t.astimezone(KST)


def trading_date(t: datetime) -> date:
    """The KST calendar date of an instant (the unit daily counters and limits use)."""
    return _as_kst(t).date()


def session_phase(t: datetime) -> str:
    """The KRX phase at instant ``t``: one of the :class:`Phase` values.

    pre-open auction: the 30 minutes before the open (08:30-09:00 on a normal day);
    continuous: open to 10 minutes before the close; closing auction: the last 10 minutes;
    after-hours: closing-price and single-price trading, 2.5 hours from the close
    (15:30-18:00); closed: everything else, and all of a non-trading day.
    """
    k = _as_kst(t)
    st = session_times(k.date())
    if st is None:
        return Phase.CLOSED
    if st.open - _PRE_OPEN <= k < st.open:
        return Phase.PRE_OPEN_AUCTION
    if st.open <= k < st.close - _CLOSING_AUCTION:
        return Phase.CONTINUOUS
    if st.close - _CLOSING_AUCTION <= k < st.close:
        return Phase.CLOSING_AUCTION
    if st.close <= k < st.close + _AFTER_HOURS:
        return Phase.AFTER_HOURS
    return Phase.CLOSED


# --- sessions and order types (krx.md §3, §5) --------------------------------------------


class Session(StrEnum):
    """One trading window of a day. Several can be open at once (08:30-08:40 KRX collects the
    opening auction while pre-market closing-price trading runs)."""

    #: 장전 시간외 종가: trades at the previous close, time priority (krx.md §3, 08:30-08:40).
    PRE_CLOSE = "pre_close"
    #: 시가 단일가: orders collected 08:30-09:00, one opening price at 09:00.
    OPENING_AUCTION = "opening_auction"
    #: 접속매매: 09:00-15:20.
    CONTINUOUS = "continuous"
    #: 종가 단일가: 15:20-15:30, one closing price at 15:30.
    CLOSING_AUCTION = "closing_auction"
    #: 장후 시간외 종가: entry 15:30-16:00, trades at today's close 15:40-16:00.
    AFTER_CLOSE = "after_close"
    #: 시간외 단일가: 16:00-18:00, a call auction every 10 minutes, ±10% of the close.
    SINGLE_PRICE = "single_price"
    #: Nextrade pre-market 08:00-08:50, main market 09:00:30-15:20, after-market 15:40-20:00.
    NXT_PRE = "nxt_pre"
    NXT_MAIN = "nxt_main"
    NXT_AFTER = "nxt_after"


VENUES: Final = ("KRX", "NXT", "SOR")
KRX_SESSIONS: Final = frozenset(
    {
        Session.PRE_CLOSE,
        Session.OPENING_AUCTION,
        Session.CONTINUOUS,
        Session.CLOSING_AUCTION,
        Session.AFTER_CLOSE,
        Session.SINGLE_PRICE,
    }
)
NXT_SESSIONS: Final = frozenset({Session.NXT_PRE, Session.NXT_MAIN, Session.NXT_AFTER})
#: Sessions that match orders one price at a time (call auctions).
AUCTIONS: Final = frozenset(
    {Session.OPENING_AUCTION, Session.CLOSING_AUCTION, Session.SINGLE_PRICE}
)


@dataclass(frozen=True, slots=True)
class Window:
    """When a session runs on one day: orders accepted in [start, end); trades from
    ``trades_from`` (the after-close session takes orders from 15:30, trades from 15:40)."""

    session: Session
    start: datetime
    end: datetime
    trades_from: datetime

    def accepts_at(self, t: datetime) -> bool:
        return self.start <= t < self.end

    def trades_at(self, t: datetime) -> bool:
        return self.trades_from <= t < self.end


_M = timedelta(minutes=1)


def day_windows(d: date) -> list[Window]:
    """Every session window of ``d`` (KST), KRX and Nextrade; empty on a closed day.

    KRX windows hang off the regular open and close (krx.md §3), so the first day of the year
    (open 10:00) and CSAT days (10:00-16:30) move with them. Nextrade (krx.md §3 NXT; Yuanta's
    times): pre 08:00-08:50, main 09:00:30-15:20, after 15:40-20:00; on CSAT day no pre-market,
    main 10:00-16:20, after 16:30-20:00. [U] Nextrade on the first day of the year is assumed
    to follow KRX's one-hour later open.
    """
    st = session_times(d)
    if st is None:
        return []
    o, c = st.open, st.close

    def w(s: Session, a: datetime, b: datetime, trades: datetime | None = None) -> Window:
        return Window(s, a, b, trades or a)

    out = [
        w(Session.PRE_CLOSE, o - 30 * _M, o - 20 * _M),
        w(Session.OPENING_AUCTION, o - 30 * _M, o),
        w(Session.CONTINUOUS, o, c - 10 * _M),
        w(Session.CLOSING_AUCTION, c - 10 * _M, c),
        w(Session.AFTER_CLOSE, c, c + 30 * _M, c + 10 * _M),
        w(Session.SINGLE_PRICE, c + 30 * _M, c + 150 * _M),
    ]
    at8 = datetime.combine(d, time(8, 0), tzinfo=KST)
    at20 = datetime.combine(d, time(20, 0), tzinfo=KST)
    if d in CSAT_DAYS:
        out += [
            w(Session.NXT_MAIN, o, c - 10 * _M),
            w(Session.NXT_AFTER, c, at20),
        ]
    else:
        if o.time() == _REGULAR_OPEN:
            out.append(w(Session.NXT_PRE, at8, o - 10 * _M))
        out += [
            w(Session.NXT_MAIN, o + timedelta(seconds=30), c - 10 * _M),
            w(Session.NXT_AFTER, c + 10 * _M, at20),
        ]
    return out


def sessions_at(t: datetime, venue: str = "KRX") -> frozenset[Session]:
    """The sessions taking orders at ``t`` on ``venue`` (SOR: either market's)."""
    k = _as_kst(t)
    allowed = _venue_sessions(venue)
    return frozenset(
        w.session for w in day_windows(k.date()) if w.session in allowed and w.accepts_at(k)
    )


def window(d: date, session: Session) -> Window | None:
    """The window of ``session`` on ``d``, or None when it does not run that day."""
    return next((w for w in day_windows(d) if w.session == session), None)


def _venue_sessions(venue: str) -> frozenset[Session]:
    v = venue.upper()
    if v == "KRX":
        return KRX_SESSIONS
    if v == "NXT":
        return NXT_SESSIONS
    if v == "SOR":
        return KRX_SESSIONS | NXT_SESSIONS
    raise ValueError(f"unknown venue {venue!r}; expected one of {VENUES}")


# Order types by session (krx.md §5). Type names are ``domain.orders.OrderType`` values;
# IOC/FOK are continuous-session only [V]. [U]: best/priority orders are refused in call
# auctions (they price off a book that is not trading), and Nextrade's pre/after markets take
# limit orders only.
_CONTINUOUS_TYPES: Final = frozenset({"limit", "market", "conditional", "best", "priority"})
SESSION_TYPES: Final[dict[Session, frozenset[str]]] = {
    Session.PRE_CLOSE: frozenset({"pre_close"}),
    Session.OPENING_AUCTION: frozenset({"limit", "market", "conditional"}),
    Session.CONTINUOUS: _CONTINUOUS_TYPES,
    # A conditional limit order cannot be entered once the closing auction has begun.
    Session.CLOSING_AUCTION: frozenset({"limit", "market"}),
    Session.AFTER_CLOSE: frozenset({"after_close"}),
    Session.SINGLE_PRICE: frozenset({"single_price"}),
    Session.NXT_PRE: frozenset({"limit"}),
    Session.NXT_MAIN: frozenset({"limit", "market", "best", "priority"}),
    Session.NXT_AFTER: frozenset({"limit"}),
}
#: Sessions where IOC/FOK may be attached (continuous matching only).
TIF_SESSIONS: Final = frozenset({Session.CONTINUOUS, Session.NXT_MAIN})


def session_for_order(
    t: datetime, order_type: str, tif: str = "day", venue: str = "KRX"
) -> Session | None:
    """The session that would take an order of ``order_type``/``tif`` at ``t`` on ``venue``,
    or None when no open session accepts it now."""
    for s in sorted(sessions_at(t, venue)):
        if order_type in SESSION_TYPES[s] and (tif == "day" or s in TIF_SESSIONS):
            return s
    return None


def single_price_band(close: int, base_price: int, kind: str = "stock") -> tuple[int, int]:
    """The after-hours single-price band: ±10% of today's close, on the tick grid, and never
    beyond the day's ±30% limits (krx.md §2, §3). The width is cut to the close's tick like
    the daily limit's."""
    lower_day, upper_day = price_limits(base_price, kind)
    tick = tick_size(close, kind)
    width = (close // 10) // tick * tick
    up_raw = close + width
    upper = up_raw - up_raw % tick_size(up_raw, kind)
    lower = round_to_tick(max(close - width, 1), kind, up=True)
    return max(lower, lower_day), min(upper, upper_day)


def fixed_price(order_type: str, base_price: int, close: int | None) -> int | None:
    """The price closing-price orders trade at: the previous close (= the base price) before
    the open, today's close after it; None for every other type, or before there is a close."""
    if order_type == "pre_close":
        return base_price
    if order_type == "after_close":
        return close
    return None


def single_price_round(t: datetime) -> datetime | None:
    """The next after-hours single-price match at or after ``t``: every 10 minutes from the
    session start + 10 min to its end (16:10 ... 18:00, 12 rounds), or None when none is left
    today."""
    k = _as_kst(t)
    win = window(k.date(), Session.SINGLE_PRICE)
    if win is None or k >= win.end:
        return None
    at = win.start + 10 * _M
    while at < k:
        at += 10 * _M
    return min(at, win.end)


# --- volatility interruption (krx.md §3 VI) ---------------------------------------------

#: VI lasts two minutes of single-price matching.
VI_DURATION: Final = timedelta(minutes=2)
#: Static VI: ±10% from the last call-auction price (the base price before the open).
STATIC_VI: Final = Decimal("0.10")


def dynamic_vi_rate(session: Session, kospi200: bool = False) -> Decimal:
    """The dynamic VI threshold (krx.md §3 VI table): 3%/6% in continuous and after-hours
    single price, 2%/4% in the closing auction, for KOSPI200 members / everything else."""
    if session == Session.CLOSING_AUCTION:
        return Decimal("0.02") if kospi200 else Decimal("0.04")
    return Decimal("0.03") if kospi200 else Decimal("0.06")


def vi_triggered(
    price: int, last: int, auction_ref: int, session: Session, *, kospi200: bool = False
) -> bool:
    """Whether a trade at ``price`` would trip a VI: beyond the dynamic band around the last
    trade, or the static ±10% band around the last call-auction price."""
    if last > 0 and abs(Decimal(price - last)) > Decimal(last) * dynamic_vi_rate(session, kospi200):
        return True
    return auction_ref > 0 and abs(Decimal(price - auction_ref)) > Decimal(auction_ref) * STATIC_VI


def settlement_date(trade_date: date) -> date:
    """T+2 in exchange business days (krx.md §5); the date sell tax is charged by."""
    # A trade stamped on a closed day (demo mode trades around the clock) belongs to the next
    # trading day.
    first = trade_date if is_trading_day(trade_date) else next_trading_day(trade_date)
    return next_trading_day(next_trading_day(first))


# --- costs (krx.md §4) ------------------------------------------------------------------

# (effective from settlement date, KOSPI rate incl. rural special tax, KOSDAQ rate).
# Before 2019-05-30 both were 0.30%; hoga does not model earlier changes.
_SELL_TAX_TABLE: Final = (
    (date(2019, 5, 30), Decimal("0.0025"), Decimal("0.0025")),
    (date(2021, 1, 1), Decimal("0.0023"), Decimal("0.0023")),
    (date(2023, 1, 1), Decimal("0.0020"), Decimal("0.0020")),
    (date(2024, 1, 1), Decimal("0.0018"), Decimal("0.0018")),
    (date(2025, 1, 1), Decimal("0.0015"), Decimal("0.0015")),
    (date(2026, 1, 1), Decimal("0.0020"), Decimal("0.0020")),
)
_SELL_TAX_BEFORE_TABLE: Final = Decimal("0.0030")
_KONEX_TAX: Final = Decimal("0.0010")
MARKETS: Final = frozenset({"KOSPI", "KOSDAQ", "KONEX", "ETF", "ETN"})


def sell_tax_rate(trade_date: date, market: str) -> Decimal:
    """Securities transaction tax rate on a sell executed on ``trade_date``.

    The rate follows the settlement (transfer) date, T+2: a sell on 2025-12-29 settles on
    2026-01-02 and pays the 2026 rate. ETFs and ETNs pay none. Rates after the last known
    change (2026: 0.20%) are assumed to stay until the table is updated.
    """
    m = market.upper()
    if m not in MARKETS:
        raise ValueError(f"unknown market {market!r}; expected one of {sorted(MARKETS)}")
    if m in ("ETF", "ETN"):
        return Decimal(0)
    if m == "KONEX":
        return _KONEX_TAX
    settle = settlement_date(trade_date)
    rate = _SELL_TAX_BEFORE_TABLE
    for since, kospi, kosdaq in _SELL_TAX_TABLE:
        if settle >= since:
            rate = kospi if m == "KOSPI" else kosdaq
    return rate


def _floor_won(amount: int, rate: Decimal) -> int:
    return int((Decimal(amount) * rate).to_integral_value(rounding=ROUND_FLOOR))


def commission(amount: int, rate: Decimal | str = DEFAULT_COMMISSION_RATE) -> int:
    """Brokerage commission on a trade of ``amount`` won, floored to the won as brokers do."""
    if amount < 0:
        raise ValueError("amount must not be negative")
    r = Decimal(rate)
    if r < 0 or r >= 1:
        raise ValueError(f"commission rate {rate} is not a fraction in [0, 1)")
    return _floor_won(amount, r)


def sell_tax(amount: int, trade_date: date, market: str) -> int:
    """Transaction tax on selling ``amount`` won, floored to the won."""
    if amount < 0:
        raise ValueError("amount must not be negative")
    return _floor_won(amount, sell_tax_rate(trade_date, market))


def order_tax(side: str, amount: int, trade_date: date, market: str) -> int:
    """Transaction tax on an order's executions worth ``amount`` won in all (sells only)."""
    return sell_tax(amount, trade_date, market) if side == "sell" else 0


def fill_costs(
    side: str,
    qty: int,
    price: int,
    trade_date: date,
    market: str,
    commission_rate: Decimal | str = DEFAULT_COMMISSION_RATE,
    *,
    prior_amount: int = 0,
) -> tuple[int, int]:
    """(commission, tax) on one fill; tax only on sells. Shared by paper, live and backtests.

    Rounding is per order, not per fill: costs are floored on the order's cumulative executed
    amount, and a fill is charged the increase - ``prior_amount`` is what the order had
    executed before this fill. So an order's costs are the same however its executions are
    split or grouped (live notices one by one, or a report's cumulative total at once), and
    hoga's books stay equal to the broker's to the won. The references document neither
    rule (krx.md §4); per-order flooring matches Kiwoom reporting fees and taxes per order
    (ka10076 ``tdy_trde_cmsn``/``tdy_trde_tax``) and is unverified against a real account.
    """
    if prior_amount < 0:
        raise ValueError("prior_amount must not be negative")
    before, after = prior_amount, prior_amount + qty * price
    fee = commission(after, commission_rate) - commission(before, commission_rate)
    tax = order_tax(side, after, trade_date, market) - order_tax(side, before, trade_date, market)
    return fee, tax
