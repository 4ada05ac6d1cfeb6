"""Deterministic price history for the simulated market, so a fresh demo server can backtest.

The embedded market starts trading when the server starts, so it has no past. For a backtest on
the simulator this module generates one: daily bars for the trading days before ``end`` (or
1-minute bars for the last few sessions), the same for a given (seed, symbol) every time, ending
near the instrument's reference price. Prices are on the KRX tick grid and inside each day's
limits (``domain/krx.py``); highs and lows contain opens and closes. It is labelled as generated
wherever it is shown - it is not market data.
"""

from __future__ import annotations

import math
import random
from datetime import date, datetime, time, timedelta

from hoga.domain import krx
from hoga.domain.clock import KST
from hoga.domain.market import Bar, Instrument

DAILY = 86_400
MINUTE = 60
DEFAULT_DAYS = 500  # about two years of sessions
MINUTE_SESSIONS = 3  # 1-minute history: the last three sessions (3 x 380 bars)
SESSION_OPEN = time(9, 0)
SESSION_MINUTES = 380  # 09:00 - 15:20 continuous trading


def _trading_days(end: date, n: int) -> list[date]:
    """The ``n`` KRX trading days before ``end`` (exclusive), oldest first."""
    days: list[date] = []
    d = end - timedelta(days=1)
    while len(days) < n:
        if krx.is_trading_day(d):
            days.append(d)
        d -= timedelta(days=1)
    return days[::-1]


def _on_grid(price: float, kind: str, lower: int, upper: int) -> int:
    p = max(lower, min(upper, round(price)))
    return max(lower, krx.round_to_tick(p, kind))


def _walk(inst: Instrument, seed: int, n: int, vol: float) -> list[float]:
    """``n`` closes of a mean-reverting log random walk that ends at the base price."""
    rng = random.Random(f"hoga-history:{seed}:{inst.symbol}")
    x = 0.0
    path = [0.0]
    for _ in range(n - 1):
        x = 0.985 * x + rng.gauss(0.0, vol)
        path.append(x)
    # Shift so the last close is the reference price; walk backwards in time.
    last = path[-1]
    return [inst.base_price * math.exp(v - last) for v in path]


def daily_bars(inst: Instrument, seed: int, end: date, days: int = DEFAULT_DAYS) -> list[Bar]:
    """Daily bars for the ``days`` trading days before ``end``."""
    sessions = _trading_days(end, days)
    closes = _walk(inst, seed, len(sessions), 0.018)
    rng = random.Random(f"hoga-history-ohlc:{seed}:{inst.symbol}")
    out: list[Bar] = []
    prev = closes[0]
    for day, target in zip(sessions, closes, strict=True):
        base = krx.round_to_tick(max(1, int(prev)), inst.kind) or 1
        lower, upper = krx.price_limits(base, inst.kind)
        o = _on_grid(prev * (1 + rng.gauss(0, 0.006)), inst.kind, lower, upper)
        c = _on_grid(target, inst.kind, lower, upper)
        hi = _on_grid(max(o, c) * (1 + abs(rng.gauss(0, 0.008))), inst.kind, lower, upper)
        lo = _on_grid(min(o, c) * (1 - abs(rng.gauss(0, 0.008))), inst.kind, lower, upper)
        hi, lo = max(hi, o, c), min(lo, o, c)
        start = datetime.combine(day, time(0), KST).timestamp()
        volume = int(rng.lognormvariate(math.log(200_000), 0.5))
        out.append(Bar(inst.symbol, start, DAILY, o, hi, lo, c, volume))
        prev = c
    return out


def minute_bars(
    inst: Instrument, seed: int, end: date, sessions: int = MINUTE_SESSIONS
) -> list[Bar]:
    """1-minute bars of the last ``sessions`` trading days before ``end``."""
    days = _trading_days(end, sessions)
    n = len(days) * SESSION_MINUTES
    closes = _walk(inst, seed + 1, n, 0.0015)
    rng = random.Random(f"hoga-history-minutes:{seed}:{inst.symbol}")
    lower, upper = krx.price_limits(inst.base_price, inst.kind)
    out: list[Bar] = []
    prev = closes[0]
    i = 0
    for day in days:
        first = datetime.combine(day, SESSION_OPEN, KST).timestamp()
        for m in range(SESSION_MINUTES):
            o = _on_grid(prev, inst.kind, lower, upper)
            c = _on_grid(closes[i], inst.kind, lower, upper)
            hi = _on_grid(max(o, c) * (1 + abs(rng.gauss(0, 0.0008))), inst.kind, lower, upper)
            lo = _on_grid(min(o, c) * (1 - abs(rng.gauss(0, 0.0008))), inst.kind, lower, upper)
            hi, lo = max(hi, o, c), min(lo, o, c)
            volume = int(rng.lognormvariate(math.log(600), 0.7))
            out.append(Bar(inst.symbol, first + m * MINUTE, MINUTE, o, hi, lo, c, volume))
            prev = closes[i]
            i += 1
    return out
