"""Where a backtest's bars come from besides a CSV and the stored bars: the requested period
and interval applied to any series, the simulated market's generated history, and the
broker's chart history. Pure functions over ``BarSeries`` (the broker's is the one await).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import date, datetime, time, timedelta

from hoga.backtest.data import INTERVALS, BarSeries
from hoga.domain.clock import KST
from hoga.domain.errors import InvalidInput
from hoga.domain.market import Bar
from hoga.marketdata import history as generated
from hoga.marketdata.bars import aggregate
from hoga.marketdata.universe import Universe

#: The broker's chart history: (symbol, bar seconds, from, to) -> bars.
History = Callable[[str, int, float, float], Awaitable[list[Bar]]]


def bound(value: date | datetime | None, *, end: bool) -> float | None:
    """A requested start or end as a POSIX time (a date's end is the next midnight, KST)."""
    if value is None:
        return None
    if isinstance(value, datetime):
        v = value if value.tzinfo else value.replace(tzinfo=KST)
        return v.timestamp()
    day = value + timedelta(days=1) if end else value
    return datetime.combine(day, time(0), tzinfo=KST).timestamp()


def window(series: BarSeries, start: float | None, end: float | None) -> BarSeries:
    """The bars in [start, end)."""
    if start is None and end is None:
        return series
    idx = [
        i
        for i, ts in enumerate(series.ts)
        if (start is None or ts >= start) and (end is None or ts < end)
    ]
    pick = idx.__iter__
    return BarSeries(
        series.symbol,
        series.interval,
        [series.ts[i] for i in pick()],
        [series.open[i] for i in pick()],
        [series.high[i] for i in pick()],
        [series.low[i] for i in pick()],
        [series.close[i] for i in pick()],
        [series.volume[i] for i in pick()],
    )


def to_interval(series: BarSeries, interval: str | None) -> BarSeries:
    """The series in ``interval`` bars (aggregated; finer than the data is refused)."""
    if interval is None or INTERVALS[interval] == series.interval:
        return series
    want = INTERVALS[interval]
    if want < series.interval:
        raise InvalidInput(
            f"{interval} 봉을 만들 수 없습니다: 데이터 간격이 {series.interval}초입니다 "
            f"(cannot make {interval} bars from {series.interval}-second data)",
            "backtest.bad_interval",
            field="interval",
        )
    bars = aggregate((series.bar(i) for i in range(len(series))), want)
    return BarSeries.from_bars(series.symbol, bars, want)


def generated_series(
    universe: Universe,
    seed: int,
    today: date,
    symbol: str,
    interval: str | None,
    start: float | None,
    end: float | None,
) -> BarSeries:
    """Generated history of the simulated market (see ``marketdata/history.py``)."""
    inst = universe.get(symbol)
    assert inst is not None  # checked by submit
    if interval == "1d":
        bars = generated.daily_bars(inst, seed, today)
        series = BarSeries.from_bars(symbol, bars, 86_400)
    else:
        bars = generated.minute_bars(inst, seed, today)
        series = BarSeries.from_bars(symbol, bars, 60)
    return window(series, start, end)


async def broker_series(
    history: History,
    now: float,
    symbol: str,
    interval: str | None,
    start: float | None,
    end: float | None,
) -> BarSeries:
    """Daily bars from the broker's chart API (a year unless a period is given); minute
    data only when asked for an intraday interval and the broker still has it (today)."""
    t1 = end if end is not None else now
    intraday = interval is not None and INTERVALS[interval] < 86400
    t0 = start if start is not None else t1 - (86400 if intraday else 365 * 86400)
    step = 60 if intraday else 86400
    bars = await history(symbol, step, t0, t1)
    if not bars:
        raise InvalidInput(
            f"{symbol}의 저장된 봉도, 증권사 차트 데이터도 없습니다 "
            f"(no stored bars and no broker history for {symbol})",
            "backtest.no_data",
            field="symbol",
        )
    series = await asyncio.to_thread(BarSeries.from_bars, symbol, bars, step)
    return await asyncio.to_thread(to_interval, series, interval)
