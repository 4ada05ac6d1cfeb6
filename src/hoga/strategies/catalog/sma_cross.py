"""SMA crossover (이동평균 교차): a trend follower on simple moving averages of closes.

Rules, per symbol, evaluated when a bar closes (fills come at the next bar's open in backtests):

* **Enter** with ``qty`` shares when the fast SMA crosses above the slow one - the fast average
  was at or below the slow one on the previous bar and is above it on this bar, both averages
  defined on both bars (so ``slow + 1`` closes are needed) - while the strategy is flat (no
  shares, no open orders in the symbol).
* **Exit** the whole position when the fast SMA crosses below the slow one (at or above on the
  previous bar, below on this bar).

Averages are compared exactly (integer sums cross-multiplied), never in floating point.
"""

from __future__ import annotations

from collections import deque
from typing import Any

from pydantic import Field, model_validator

from hoga.domain.market import Bar
from hoga.strategies.base import Context, ParamError, Strategy, StrategyParams, quantity_field


class SmaCrossParams(StrategyParams):
    fast: int = Field(
        5,
        ge=1,
        le=500,
        title="단기 이동평균 (fast SMA)",
        description="단기 이동평균에 쓰는 봉 수. slow보다 작아야 합니다. "
        "Bars in the fast moving average; must be smaller than slow.",
    )
    slow: int = Field(
        20,
        ge=2,
        le=1000,
        title="장기 이동평균 (slow SMA)",
        description="장기 이동평균에 쓰는 봉 수. Bars in the slow moving average.",
    )
    qty: int = quantity_field("진입 시 매수할 주식 수. Shares bought on entry.")

    @model_validator(mode="after")
    def _fast_below_slow(self) -> SmaCrossParams:
        if self.fast >= self.slow:
            raise ParamError(
                "fast",
                f"fast({self.fast})는 slow({self.slow})보다 작아야 합니다 "
                "(fast must be smaller than slow)",
            )
        return self


class _Averages:
    """Running sums of the last ``fast`` and ``slow`` closes over one window (the hot path of
    a backtest: one deque, no method calls per close)."""

    __slots__ = ("fast", "fsum", "prev", "slow", "ssum", "window")

    def __init__(self, fast: int, slow: int) -> None:
        self.fast = fast
        self.slow = slow
        self.window: deque[int] = deque()
        self.fsum = 0
        self.ssum = 0
        self.prev = 0  # sign of (fast - slow) on the previous bar

    def push(self, close: int) -> tuple[int, int] | None:
        """Add a close; returns (previous sign, current sign) when both bars are defined."""
        w = self.window
        n = len(w)
        slow = self.slow
        if n >= self.fast:
            self.fsum -= w[n - self.fast]
        if n == slow:
            self.ssum -= w.popleft()
        w.append(close)
        self.fsum += close
        self.ssum += close
        if n + 1 < slow:
            return None
        diff = self.fsum * slow - self.ssum * self.fast
        now = (diff > 0) - (diff < 0)
        prev = self.prev
        self.prev = now
        return (prev, now) if n == slow else None


class SmaCross(Strategy[SmaCrossParams]):
    kind = "sma_cross"
    name = "이동평균 교차"
    name_en = "SMA crossover"
    description = (
        "단기 이동평균이 장기 이동평균을 상향 돌파하면(보유 없음) qty주를 매수하고, "
        "하향 돌파하면 전량 매도합니다. 신호는 봉 마감 기준입니다."
    )
    description_en = (
        "Buys qty shares when the fast SMA crosses above the slow SMA while flat, and sells the "
        "whole position when it crosses below. Signals on bar closes."
    )
    Params = SmaCrossParams

    def __init__(self, ctx: Context, params: SmaCrossParams) -> None:
        super().__init__(ctx, params)
        self._avg = {s: _Averages(params.fast, params.slow) for s in ctx.symbols}

    @classmethod
    def lookback(cls, params: Any) -> int:
        return int(params.slow) + 1

    def on_start(self) -> None:
        # Warm the averages up from the bars the context already has (live restarts).
        for symbol, avg in self._avg.items():
            for bar in self.ctx.bars(symbol):
                avg.push(bar.close)

    def on_bar(self, bar: Bar) -> None:
        avg = self._avg.get(bar.symbol)
        if avg is None:
            return
        signs = avg.push(bar.close)
        if signs is None:
            return
        prev, now = signs
        ctx = self.ctx
        symbol = bar.symbol
        if prev <= 0 < now:
            if ctx.position(symbol).qty == 0 and not ctx.open_orders(symbol):
                ctx.buy(symbol, self.params.qty)
        elif prev >= 0 > now and ctx.available_to_sell(symbol) > 0:
            ctx.close(symbol)
