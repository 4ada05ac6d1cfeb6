"""Scheduled rebalancing (정기 리밸런싱) to target weights, or dollar-cost averaging (적립식).

Once per period (``day``, ``week`` or ``month``, KST), at the close of the first bar of the new
period that arrives for any of the strategy's symbols, using the last known price of each:

* ``mode="weights"``: the strategy's capital is ``budget`` plus its own P&L (realised, and
  unrealised at those prices). Each symbol's target holding is
  ``floor(capital x weight / price)`` shares; the strategy sells the excess first, then buys
  what is missing, at market.
* ``mode="dca"``: buys ``floor(amount x weight / price)`` shares of each symbol.

``weights`` maps symbols to fractions (their sum at most 1; the rest stays in cash); empty
means equal weights over all symbols. Symbols with an open order or no price yet are skipped
that period. The last period done is kept in ``ctx.state``, so a restart does not trade twice.
"""

from __future__ import annotations

from datetime import datetime
from fractions import Fraction
from typing import Annotated, Any, Literal

from pydantic import Field, model_validator

from hoga.domain.clock import KST
from hoga.domain.market import Bar
from hoga.strategies.base import Context, ParamError, Strategy, StrategyParams

Weight = Annotated[float, Field(ge=0, le=1)]


class RebalanceParams(StrategyParams):
    mode: Literal["weights", "dca"] = Field(
        "weights",
        title="방식 (mode)",
        description="weights: 목표 비중 리밸런싱, dca: 정액 적립 매수. "
        "weights: rebalance to target weights; dca: buy a fixed amount each period.",
    )
    weights: dict[str, Weight] = Field(
        default_factory=dict,
        title="목표 비중 (weights)",
        description="종목코드별 비중 (합계 1 이하, 비우면 균등). "
        "Weight per symbol code (sum at most 1; empty = equal weights).",
    )
    period: Literal["day", "week", "month"] = Field(
        "month",
        title="주기 (period)",
        description="리밸런싱/적립 주기. How often to rebalance or buy.",
    )
    budget: int = Field(
        10_000_000,
        ge=10_000,
        le=10_000_000_000,
        title="운용 자금 (budget, 원)",
        description="weights 방식에서 전략이 운용하는 자금. Capital managed in weights mode, won.",
    )
    amount: int = Field(
        1_000_000,
        ge=1_000,
        le=1_000_000_000,
        title="적립 금액 (amount, 원)",
        description="dca 방식에서 주기마다 매수할 금액. Won invested per period in dca mode.",
    )

    @model_validator(mode="after")
    def _weights_sum(self) -> RebalanceParams:
        total = sum(Fraction(w) for w in self.weights.values())
        if total > 1:
            raise ParamError(
                "weights", f"비중 합계가 1을 넘습니다 ({float(total):g}) (weights sum above 1)"
            )
        return self


def period_key(ts: float, period: str) -> str:
    d = datetime.fromtimestamp(ts, KST).date()
    if period == "day":
        return d.isoformat()
    if period == "week":
        y, w, _ = d.isocalendar()
        return f"{y}-W{w:02d}"
    return f"{d.year}-{d.month:02d}"


class Rebalance(Strategy[RebalanceParams]):
    kind = "rebalance"
    name = "정기 리밸런싱 / 적립식"
    name_en = "Scheduled rebalance / DCA"
    description = (
        "주기(일/주/월)마다 목표 비중으로 리밸런싱하거나, 정해진 금액만큼 적립식으로 매수합니다."
    )
    description_en = (
        "Each day, week or month, rebalances its symbols to target weights, or buys a fixed "
        "amount of them (dollar-cost averaging)."
    )
    Params = RebalanceParams

    def __init__(self, ctx: Context, params: RebalanceParams) -> None:
        super().__init__(ctx, params)
        syms = ctx.symbols
        if params.weights:
            self._weights = {s: Fraction(params.weights.get(s, 0.0)) for s in syms}
        else:
            self._weights = {s: Fraction(1, len(syms)) for s in syms}

    @classmethod
    def lookback(cls, params: Any) -> int:
        return 1

    @classmethod
    def check_setup(cls, symbols: tuple[str, ...], params: Any) -> None:
        unknown = sorted(set(params.weights) - set(symbols))
        if unknown:
            raise ParamError(
                "weights",
                f"weights에 전략 종목이 아닌 코드가 있습니다: {', '.join(unknown)} "
                "(weights name symbols the strategy does not trade)",
            )

    def on_bar(self, bar: Bar) -> None:
        key = period_key(bar.start, self.params.period)
        if self.ctx.state.get("period") == key:
            return
        self.ctx.state["period"] = key
        if self.params.mode == "dca":
            self._dca()
        else:
            self._rebalance()

    def _prices(self) -> dict[str, int]:
        ctx = self.ctx
        out = {}
        for s in ctx.symbols:
            price = ctx.last_price(s)
            if price and not ctx.open_orders(s):
                out[s] = price
        return out

    def _dca(self) -> None:
        amount = self.params.amount
        for symbol, price in self._prices().items():
            qty = int(amount * self._weights[symbol] // price)
            if qty > 0:
                self.ctx.buy(symbol, qty)
        self.ctx.log.info(f"DCA {self.ctx.state['period']}")

    def _rebalance(self) -> None:
        ctx = self.ctx
        prices = self._prices()
        if len(prices) < len(ctx.symbols):
            # Capital can only be valued when every holding has a price.
            held = [s for s in ctx.symbols if ctx.position(s).qty and s not in prices]
            if held:
                return
        capital = self.params.budget
        for symbol in ctx.symbols:
            pos = ctx.position(symbol)
            price = ctx.last_price(symbol) or 0
            capital += pos.realized_pnl + (pos.qty * price - pos.cost if pos.qty else 0)
        buys = []
        for symbol, price in prices.items():
            target = int(capital * self._weights[symbol] // price)
            diff = target - ctx.position(symbol).qty
            if diff < 0:
                qty = min(-diff, ctx.available_to_sell(symbol))
                if qty > 0:
                    ctx.sell(symbol, qty)
            elif diff > 0:
                buys.append((symbol, diff))
        for symbol, qty in buys:
            ctx.buy(symbol, qty)
