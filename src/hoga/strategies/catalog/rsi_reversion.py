"""RSI mean reversion (RSI 역추세): buy oversold, sell once the move has reverted.

RSI here is the simple-average (Cutler) RSI over the last ``period`` close-to-close changes:
``RSI = 100 * gains / (gains + losses)`` with sums of up and down moves (50 when nothing moved),
compared exactly in integers. Per symbol, on each closed bar:

* **Enter** with ``qty`` shares when RSI < ``oversold`` while flat (no shares, no open orders).
* **Exit** the whole position when RSI > ``overbought``.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field, model_validator

from hoga.domain.market import Bar
from hoga.strategies.base import Context, ParamError, Strategy, StrategyParams, quantity_field
from hoga.strategies.indicators import GainLoss


class RsiReversionParams(StrategyParams):
    period: int = Field(
        14,
        ge=2,
        le=200,
        title="RSI 기간 (period)",
        description="RSI를 계산할 가격 변화 개수. Close-to-close changes in the RSI.",
    )
    oversold: int = Field(
        30,
        ge=1,
        le=99,
        title="과매도 기준 (oversold)",
        description="RSI가 이 값보다 낮으면 매수합니다. Buy below this RSI.",
    )
    overbought: int = Field(
        70,
        ge=1,
        le=99,
        title="청산 기준 (overbought)",
        description="RSI가 이 값보다 높으면 전량 매도합니다. oversold보다 커야 합니다. "
        "Sell everything above this RSI; must exceed oversold.",
    )
    qty: int = quantity_field()

    @model_validator(mode="after")
    def _levels(self) -> RsiReversionParams:
        if self.oversold >= self.overbought:
            raise ParamError(
                "oversold",
                f"oversold({self.oversold})는 overbought({self.overbought})보다 작아야 합니다 "
                "(oversold must be below overbought)",
            )
        return self


class RsiReversion(Strategy[RsiReversionParams]):
    kind = "rsi_reversion"
    name = "RSI 역추세"
    name_en = "RSI mean reversion"
    description = (
        "RSI가 과매도 기준 아래로 내려가면(보유 없음) 매수하고, 청산 기준을 넘으면 전량 매도합니다."
    )
    description_en = (
        "Buys when RSI drops below the oversold level while flat; sells everything when RSI "
        "rises above the overbought level."
    )
    Params = RsiReversionParams

    def __init__(self, ctx: Context, params: RsiReversionParams) -> None:
        super().__init__(ctx, params)
        self._rsi = {s: GainLoss(params.period) for s in ctx.symbols}

    @classmethod
    def lookback(cls, params: Any) -> int:
        return int(params.period) + 1

    def on_start(self) -> None:
        for symbol, rsi in self._rsi.items():
            for bar in self.ctx.bars(symbol):
                rsi.push(bar.close)

    def on_bar(self, bar: Bar) -> None:
        rsi = self._rsi.get(bar.symbol)
        if rsi is None:
            return
        rsi.push(bar.close)
        if not rsi.full:
            return
        ctx, p, symbol = self.ctx, self.params, bar.symbol
        if ctx.position(symbol).qty == 0:
            if not ctx.open_orders(symbol) and rsi.rsi_below(p.oversold):
                ctx.buy(symbol, p.qty)
        elif rsi.rsi_above(p.overbought) and ctx.available_to_sell(symbol) > 0:
            ctx.close(symbol)
