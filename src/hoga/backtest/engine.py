"""The backtest engine: the same strategy classes, the same Context, over historical bars.

Semantics (also in ``docs/backtesting.md``):

* A strategy's hooks see a bar only once it has closed: ``on_bar`` runs at the bar's close, and
  ``ctx.time()`` is then the bar's end.
* Orders placed in a hook are taken from the context's outbox when the hook returns. Market
  orders fill at the **next** bar's open of their symbol; limit orders fill on a later bar that
  reaches them (buy: low <= limit, at min(open, limit); sell: high >= limit, at max(open,
  limit)) and expire when their trading day ends, as at KRX. Orders placed in
  ``on_session_open`` fill at that session's first open. The whole quantity fills at once.
* Costs are the paper broker's and live trading's: ``domain.krx.fill_costs`` (commission, and
  sell tax by settlement date and market, each floored to the won per fill), booked by
  ``domain.portfolio.apply_fill``. A buy whose cost exceeds the cash at its fill is rejected.
* Equity is sampled after every bar (cash plus holdings at each symbol's last close); the end
  is marked to the last close, nothing is sold.
* ``on_tick`` is never called (backtests run on bars). A strategy exception stops the run with
  an error naming the bar.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from hoga.backtest.data import BarSeries
from hoga.domain import krx
from hoga.domain.clock import KST
from hoga.domain.errors import InvalidInput
from hoga.domain.fills import Execution
from hoga.domain.market import Bar
from hoga.domain.portfolio import Position, apply_fill
from hoga.strategies.base import Context, Fill, LogLine, Strategy, StrategyParams, overrides

_DAY = 86_400
_KST = 9 * 3600
Progress = Callable[[int, int], None]


class BacktestError(Exception):
    """The strategy failed during a backtest; the message names the bar."""


@dataclass(frozen=True, slots=True)
class FillRecord(Execution):
    """One simulated execution (money in won, ``ts`` the bar start it filled at)."""

    ts: int


@dataclass(slots=True)
class _Pending:
    cid: str
    symbol: str
    side: str
    qty: int
    price: int | None
    day: int


@dataclass
class BacktestResult:
    """What a run produced; ``hoga.backtest.report`` turns it into figures."""

    kind: str
    params: dict[str, Any]
    symbols: tuple[str, ...]
    interval: int
    initial_cash: int
    cash: int
    final_equity: int
    fills: list[FillRecord]
    equity: list[int]
    equity_ts: list[int]
    round_trips: list[int]
    positions: dict[str, Position]
    bars: int
    first_ts: int
    last_ts: int
    rejected: int = 0
    expired: int = 0
    open_orders_at_end: int = 0
    logs: list[LogLine] = field(default_factory=list)


def run_backtest(
    cls: type[Strategy[Any]],
    params: StrategyParams,
    data: BarSeries | Sequence[BarSeries],
    *,
    cash: int = 10_000_000,
    market: str | dict[str, str] = "KOSPI",
    commission_rate: Decimal | str = krx.DEFAULT_COMMISSION_RATE,
    progress: Progress | None = None,
    state: dict[str, Any] | None = None,
) -> BacktestResult:
    """Run ``cls`` with ``params`` over ``data`` starting from ``cash`` won."""
    series = [data] if isinstance(data, BarSeries) else list(data)
    if not series or not any(len(s) for s in series):
        raise InvalidInput("no bars to backtest", "backtest.no_data", field="data")
    if isinstance(cash, bool) or not isinstance(cash, int) or cash <= 0:
        raise InvalidInput(
            "cash must be a positive number of won", "backtest.bad_cash", field="cash"
        )
    markets = market if isinstance(market, dict) else {s.symbol: market for s in series}
    return _Run(cls, params, series, cash, markets, Decimal(commission_rate), progress, state).go()


class _Run:
    def __init__(
        self,
        cls: type[Strategy[Any]],
        params: StrategyParams,
        series: list[BarSeries],
        cash: int,
        markets: dict[str, str],
        rate: Decimal,
        progress: Progress | None,
        state: dict[str, Any] | None,
    ) -> None:
        self.series = series
        self.symbols = tuple(s.symbol for s in series)
        self.interval = min(s.interval for s in series)
        self.initial = cash
        self.cash = cash
        self.markets = markets
        self.rate = rate
        self.progress = progress
        self.now = 0.0
        self.ctx = Context(
            strategy_id=0,
            symbols=self.symbols,
            time=self._time,
            id_prefix="bt-",
            history=cls.lookback(params),
            cash=cash,
            state=state,
        )
        self.cls = cls
        self.params = params
        self.strategy = cls(self.ctx, params)
        self.pending: list[_Pending] = []
        self.fills: list[FillRecord] = []
        self.trips: list[int] = []
        self._trip_start: dict[str, int] = {}
        self.rejected = 0
        self.expired = 0
        self.logs: list[LogLine] = []
        self._dates: dict[int, date] = {}
        self._has_fill_hook = overrides(cls, "on_fill")
        self._has_open_hook = overrides(cls, "on_session_open")

    def _time(self) -> float:
        return self.now

    def _date(self, day: int) -> date:
        d = self._dates.get(day)
        if d is None:
            d = self._dates[day] = datetime.fromtimestamp(day * _DAY - _KST + 1, KST).date()
        return d

    def _fail(self, exc: Exception, ts: float, hook: str) -> BacktestError:
        when = datetime.fromtimestamp(ts, KST).isoformat()
        return BacktestError(f"{hook} raised {type(exc).__name__} at {when}: {exc}")

    # --- orders

    def _take_orders(self, day: int) -> None:
        ctx = self.ctx
        for req in ctx._take_outbox():
            if req.action == "cancel":
                for k, p in enumerate(self.pending):
                    if p.cid == req.client_order_id:
                        del self.pending[k]
                        ctx._order_update(p.cid, "CANCELLED")
                        break
                continue
            ctx._order_update(req.client_order_id, "QUEUED")
            self.pending.append(
                _Pending(req.client_order_id, req.symbol, req.side, req.qty, req.price, day)
            )
        if len(ctx.log.lines) > 0:
            self._drain_logs()

    def _drain_logs(self) -> None:
        lines = self.ctx.log.lines
        self.logs.extend(lines)
        lines.clear()
        if len(self.logs) > 2000:
            del self.logs[:-1000]

    def _fill_pending(self, symbol: str, day: int, ts: int, o: int, h: int, lo: int) -> None:
        keep: list[_Pending] = []
        filled: list[Fill] = []
        ctx = self.ctx
        for p in self.pending:
            if p.symbol != symbol:
                keep.append(p)
                continue
            if p.price is None:
                price = o
            elif p.day != day:
                self.expired += 1
                ctx._order_update(p.cid, "EXPIRED")
                continue
            elif p.side == "buy":
                if lo > p.price:
                    keep.append(p)
                    continue
                price = min(o, p.price)
            else:
                if h < p.price:
                    keep.append(p)
                    continue
                price = max(o, p.price)
            fill = self._book(p, price, day, ts)
            if fill is not None:
                filled.append(fill)
        self.pending = keep
        if filled and self._has_fill_hook:
            for f in filled:
                self.now = float(ts)
                try:
                    self.strategy.on_fill(f)
                except Exception as e:
                    raise self._fail(e, ts, "on_fill") from e
            self._take_orders(day)

    def _book(self, p: _Pending, price: int, day: int, ts: int) -> Fill | None:
        ctx = self.ctx
        fee, tax = krx.fill_costs(
            p.side, p.qty, price, self._date(day), self.markets.get(p.symbol, "KOSPI"), self.rate
        )
        if p.side == "buy" and p.qty * price + fee > self.cash:
            self.rejected += 1
            ctx._order_update(p.cid, "REJECTED")
            ctx.log.warning(f"order {p.cid} rejected: not enough cash for {p.qty} {p.symbol}")
            return None
        pos = ctx.position(p.symbol)
        if p.side == "buy" and pos.qty == 0:
            self._trip_start[p.symbol] = pos.realized_pnl
        effect = apply_fill(pos, p.side, p.qty, price, fee, tax)
        ctx._set_position(p.symbol, effect.position)
        self.cash += effect.cash
        ctx.cash = self.cash
        ctx._order_update(p.cid, "FILLED", filled_qty=p.qty)
        if p.side == "sell" and effect.position.qty == 0:
            start = self._trip_start.pop(p.symbol, 0)
            self.trips.append(effect.position.realized_pnl - start)
        self.fills.append(FillRecord(p.symbol, p.side, p.qty, price, fee, tax, ts=ts))
        return Fill(
            symbol=p.symbol,
            side=p.side,
            qty=p.qty,
            price=price,
            commission=fee,
            tax=tax,
            client_order_id=p.cid,
            order_id=None,
            ts=float(ts),
        )

    # --- the run

    def go(self) -> BacktestResult:
        strategy, ctx = self.strategy, self.ctx
        first_ts = min(s.ts[0] for s in self.series if len(s))
        self.now = float(first_ts)
        try:
            strategy.on_start()
        except Exception as e:
            raise self._fail(e, first_ts, "on_start") from e
        self._take_orders((first_ts + _KST) // _DAY)
        if len(self.series) == 1:
            equity, equity_ts = self._single(self.series[0])
        else:
            equity, equity_ts = self._multi()
        last_ts = equity_ts[-1] if equity_ts else first_ts
        self.now = float(last_ts)
        try:
            strategy.on_stop()
        except Exception as e:
            raise self._fail(e, last_ts, "on_stop") from e
        ctx._take_outbox()
        self._drain_logs()
        positions = dict(ctx._positions.items())
        final = self.cash + sum(
            p.qty * (ctx.last_price(s) or 0) for s, p in positions.items() if p.qty
        )
        return BacktestResult(
            kind=self.cls.kind,
            params=self.params.model_dump(mode="json"),
            symbols=self.symbols,
            interval=self.interval,
            initial_cash=self.initial,
            cash=self.cash,
            final_equity=final,
            fills=self.fills,
            equity=equity,
            equity_ts=equity_ts,
            round_trips=self.trips,
            positions=positions,
            bars=sum(len(s) for s in self.series),
            first_ts=first_ts,
            last_ts=last_ts,
            rejected=self.rejected,
            expired=self.expired,
            open_orders_at_end=len(self.pending),
            logs=self.logs,
        )

    def _single(self, s: BarSeries) -> tuple[list[int], list[int]]:
        """One symbol: the hot loop, kept flat for speed (see benchmarks/bench_backtest.py)."""
        strategy, ctx = self.strategy, self.ctx
        symbol, interval = s.symbol, s.interval
        on_bar = strategy.on_bar
        on_open = strategy.on_session_open if self._has_open_hook else None
        window = ctx._bars[symbol]
        push = window.append
        last = ctx._last
        positions = ctx._positions
        flat = Position()
        tss, opens, highs, lows, closes, vols = s.ts, s.open, s.high, s.low, s.close, s.volume
        n = len(tss)
        equity: list[int] = [0] * n
        progress = self.progress
        step = 1 << 16
        day = -1
        for i in range(n):
            ts = tss[i]
            o = opens[i]
            d = (ts + _KST) // _DAY
            if d != day:
                if on_open is not None and day != -1:
                    self.now = float(ts)
                    try:
                        on_open(symbol, self._date(d))
                    except Exception as e:
                        raise self._fail(e, ts, "on_session_open") from e
                    if ctx._outbox:
                        self._take_orders(d)
                day = d
            if self.pending:
                self._fill_pending(symbol, d, ts, o, highs[i], lows[i])
            c = closes[i]
            bar = Bar(symbol, ts, interval, o, highs[i], lows[i], c, vols[i])
            push(bar)
            last[symbol] = c
            self.now = ts + interval
            try:
                on_bar(bar)
            except Exception as e:
                raise self._fail(e, ts + interval, "on_bar") from e
            if ctx._outbox:
                self._take_orders(d)
            equity[i] = self.cash + positions.get(symbol, flat).qty * c
            if progress is not None and not i % step:
                progress(i, n)
        if progress is not None:
            progress(n, n)
        return equity, [t + interval for t in tss]

    def _multi(self) -> tuple[list[int], list[int]]:
        """Several symbols: bars in time order (ties in the order the series were given)."""
        strategy, ctx = self.strategy, self.ctx
        positions = ctx._positions
        flat = Position()
        merged = heapq.merge(*(_keyed(k, s.ts) for k, s in enumerate(self.series)))
        n = sum(len(s) for s in self.series)
        equity: list[int] = []
        equity_ts: list[int] = []
        days: dict[str, int] = {}
        value: dict[str, int] = {}
        held = 0
        has_open = self._has_open_hook
        progress = self.progress
        for count, (ts, k, i) in enumerate(merged):
            s = self.series[k]
            symbol = s.symbol
            d = (ts + _KST) // _DAY
            prev = days.get(symbol)
            if prev != d:
                if has_open and prev is not None:
                    self.now = float(ts)
                    try:
                        strategy.on_session_open(symbol, self._date(d))
                    except Exception as e:
                        raise self._fail(e, ts, "on_session_open") from e
                    if ctx._outbox:
                        self._take_orders(d)
                days[symbol] = d
            if self.pending:
                self._fill_pending(symbol, d, ts, s.open[i], s.high[i], s.low[i])
            bar = s.bar(i)
            ctx._push_bar(bar)
            self.now = float(ts + s.interval)
            try:
                strategy.on_bar(bar)
            except Exception as e:
                raise self._fail(e, ts + s.interval, "on_bar") from e
            if ctx._outbox:
                self._take_orders(d)
            mv = positions.get(symbol, flat).qty * bar.close
            held += mv - value.get(symbol, 0)
            value[symbol] = mv
            equity.append(self.cash + held)
            equity_ts.append(ts + s.interval)
            if progress is not None and not count % (1 << 16):
                progress(count, n)
        if progress is not None:
            progress(n, n)
        return equity, equity_ts


def _keyed(k: int, ts: list[int]) -> Iterator[tuple[int, int, int]]:
    return ((t, k, i) for i, t in enumerate(ts))
