"""Bollinger band reversion (볼린저 밴드): buy below the lower band, sell back at the middle.

Bands over the last ``period`` closes: middle = mean, lower = mean - ``k`` x (population)
standard deviation. Per symbol, on each closed bar:

* **Enter** with ``qty`` shares when the close is below the lower band while flat.
* **Exit** the whole position when the close is at or above the middle band.

The comparison is exact: with S the sum and Q the sum of squares of the window and n its size,
``close < mean - k*sd`` is ``S - n*close > 0 and (S - n*close)^2 > k^2 (n*Q - S^2)``.
"""

from __future__ import annotations

from fractions import Fraction
from typing import Any

from pydantic import Field

from hoga.domain.market import Bar
from hoga.strategies.base import Context, Strategy, StrategyParams, quantity_field
from hoga.strategies.indicators import RollingSum


class BollingerParams(StrategyParams):
    period: int = Field(
        20,
        ge=2,
        le=500,
        title="기간 (period)",
        description="밴드를 계산할 봉 수. Bars in the moving window.",
    )
    k: float = Field(
        2.0,
        gt=0,
        le=5,
        title="표준편차 배수 (k)",
        description="하단 밴드 = 평균 - k × 표준편차. Lower band = mean - k x std deviation.",
    )
    qty: int = quantity_field()


class Bollinger(Strategy[BollingerParams]):
    kind = "bollinger"
    name = "볼린저 밴드 역추세"
    name_en = "Bollinger band reversion"
    description = (
        "종가가 하단 밴드 아래로 내려가면(보유 없음) 매수하고, 중심선(이동평균) 이상으로 "
        "돌아오면 전량 매도합니다."
    )
    description_en = (
        "Buys when the close falls below the lower band while flat; sells everything when the "
        "close is back at or above the middle band (the moving average)."
    )
    Params = BollingerParams

    def __init__(self, ctx: Context, params: BollingerParams) -> None:
        super().__init__(ctx, params)
        self._win = {s: RollingSum(params.period, squares=True) for s in ctx.symbols}
        self._k2 = Fraction(params.k) ** 2

    @classmethod
    def lookback(cls, params: Any) -> int:
        return int(params.period)

    def on_start(self) -> None:
        for symbol, win in self._win.items():
            for bar in self.ctx.bars(symbol):
                win.push(bar.close)

    def on_bar(self, bar: Bar) -> None:
        win = self._win.get(bar.symbol)
        if win is None:
            return
        win.push(bar.close)
        if not win.full:
            return
        ctx, symbol, close = self.ctx, bar.symbol, bar.close
        n, s = win.n, win.total
        below_mean = s - n * close  # > 0 when close < mean
        if ctx.position(symbol).qty == 0:
            if ctx.open_orders(symbol) or below_mean <= 0:
                return
            spread = n * win.sq - s * s  # n^2 x variance
            if below_mean * below_mean > self._k2 * spread:
                ctx.buy(symbol, self.params.qty)
        elif below_mean <= 0 and ctx.available_to_sell(symbol) > 0:
            ctx.close(symbol)
