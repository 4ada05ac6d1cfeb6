"""Volatility breakout (변동성 돌파): Larry Williams' k-range breakout, as Korean traders run it.

Per symbol, on intraday bars (1-minute live; any intraday interval in backtests):

* The **range** of a trading day is its high minus its low; the **target** for today is
  ``today's open + k x yesterday's range`` (today's open = the open of today's first bar).
* **Enter** with ``qty`` shares when a bar closes above the target, at most once a day, while
  flat - and, with ``exit_at="close"``, only before ``exit_time``.
* **Exit** the whole position

  - ``exit_at="open"`` (익일 시가 청산): at the next session's open - the sell is placed in
    ``on_session_open`` and fills at the open of that session's first bar;
  - ``exit_at="close"`` (당일 종가 청산): at the close of the entry session - the sell is placed
    on the first bar starting at or after ``exit_time`` (KST, default 15:19, the last minute of
    continuous trading) and fills at the next bar's open, i.e. in the closing auction. A
    position still held when the next session opens is sold at that open.

Day boundaries are KST calendar days. The day's open/high/low and yesterday's range are kept in
``ctx.state``, so a restart in the middle of a day trades on from where it stopped; a strategy
started fresh trades from its second observed day (it needs one whole day's range).
"""

from __future__ import annotations

import re
from datetime import date
from fractions import Fraction
from typing import Any, Literal

from pydantic import Field, field_validator

from hoga.domain.market import Bar
from hoga.strategies.base import Context, ParamError, Strategy, StrategyParams, quantity_field

_DAY = 86_400
_KST = 9 * 3600
_HHMM = re.compile(r"([01]\d|2[0-3]):([0-5]\d)")


def day_key(ts: float) -> int:
    """Days since 1970-01-01 in KST (a cheap trading-date key)."""
    return int((ts + _KST) // _DAY)


class VolatilityBreakoutParams(StrategyParams):
    k: float = Field(
        0.5,
        gt=0,
        le=2,
        title="돌파 계수 (k)",
        description="목표가 = 당일 시가 + k × 전일 변동폭(고가-저가). "
        "Target = today's open + k x yesterday's range (high - low).",
    )
    qty: int = quantity_field()
    exit_at: Literal["open", "close"] = Field(
        "open",
        title="청산 시점 (exit)",
        description="open: 익일 시가 청산, close: 당일 종가 청산. "
        "open: at the next session's open; close: at the entry session's close.",
    )
    exit_time: str = Field(
        "15:19",
        title="종가 청산 시각 (exit time)",
        description="exit_at=close일 때 매도 주문을 내는 봉의 시각 (HH:MM, KST). "
        "With exit_at=close, the bar (HH:MM KST) at which the sell is placed.",
        json_schema_extra={"pattern": _HHMM.pattern},
    )

    @field_validator("exit_time")
    @classmethod
    def _hhmm(cls, v: str) -> str:
        if not _HHMM.fullmatch(v):
            raise ParamError("exit_time", f"exit_time은 HH:MM 형식이어야 합니다 (got {v!r})")
        return v

    @property
    def exit_seconds(self) -> int:
        hh, mm = self.exit_time.split(":")
        return int(hh) * 3600 + int(mm) * 60


class VolatilityBreakout(Strategy[VolatilityBreakoutParams]):
    kind = "volatility_breakout"
    name = "변동성 돌파"
    name_en = "Volatility breakout"
    description = (
        "래리 윌리엄스의 변동성 돌파: 가격이 당일 시가 + k × 전일 변동폭을 넘으면 매수하고, "
        "익일 시가 또는 당일 종가에 청산합니다."
    )
    description_en = (
        "Larry Williams' volatility breakout: buys when price exceeds today's open + k x "
        "yesterday's range; exits at the next session's open or at the session's close."
    )
    Params = VolatilityBreakoutParams

    def __init__(self, ctx: Context, params: VolatilityBreakoutParams) -> None:
        super().__init__(ctx, params)
        self._k = Fraction(params.k)
        self._exit_s = params.exit_seconds
        self._days: dict[str, dict[str, int]] = ctx.state.setdefault("days", {})
        self._entered: dict[str, int] = ctx.state.setdefault("entered", {})

    @classmethod
    def lookback(cls, params: Any) -> int:
        return 2

    def _roll(self, symbol: str, key: int, bar: Bar) -> dict[str, int]:
        d = self._days.get(symbol)
        if d is None or d["day"] != key:
            prev_range = -1
            if d is not None and key - d["day"] >= 1:
                prev_range = d["high"] - d["low"]
            d = {
                "day": key,
                "open": bar.open,
                "high": bar.high,
                "low": bar.low,
                "range": prev_range,
            }
            self._days[symbol] = d
        return d

    def on_session_open(self, symbol: str, day: date) -> None:
        # Exit at the open: placed before the session's first bar, filled at its open.
        if self.ctx.available_to_sell(symbol) > 0:
            self.ctx.close(symbol)

    def on_bar(self, bar: Bar) -> None:
        symbol = bar.symbol
        if symbol not in self.ctx.symbols:
            return
        key = day_key(bar.start)
        d = self._roll(symbol, key, bar)
        if bar.high > d["high"]:
            d["high"] = bar.high
        if bar.low < d["low"]:
            d["low"] = bar.low
        ctx, p = self.ctx, self.params
        late = p.exit_at == "close" and (bar.start + _KST) % _DAY >= self._exit_s
        if late:
            if ctx.available_to_sell(symbol) > 0:
                ctx.close(symbol)
            return
        if (
            d["range"] >= 0
            and self._entered.get(symbol) != key
            and ctx.position(symbol).qty == 0
            and not ctx.open_orders(symbol)
            and bar.close - d["open"] > self._k * d["range"]
        ):
            ctx.buy(symbol, p.qty)
            self._entered[symbol] = key
