"""Answers about strategies (the catalog, each user's strategies, their log and P&L, the
admin's list of failing ones) and backtests."""

from __future__ import annotations

from typing import Any

from hoga.api.schemas import Answer


class StrategyKind(Answer):
    """A catalog entry: what the strategy does and its parameters' JSON Schema."""

    kind: str
    name: str
    name_en: str
    description: str
    description_en: str
    params_schema: dict[str, Any]
    defaults: dict[str, Any]
    min_symbols: int
    max_symbols: int


class StrategyCatalog(Answer):
    strategies: list[StrategyKind]


class StrategyError(Answer):
    message: str
    at: str


class StrategyPnl(Answer):
    realized: int
    unrealized: int
    fills: int
    orders: int


class StrategyPosition(Answer):
    symbol: str
    qty: int
    avg_price: int
    market_price: int
    unrealized_pnl: int


class StrategyView(Answer):
    """A strategy with its P&L and positions (also the ``strategy`` WebSocket event)."""

    id: int
    name: str
    kind: str
    symbols: list[str]
    params: dict[str, Any]
    account_id: int | None
    #: created, running, paused, stopped, error.
    status: str
    last_error: StrategyError | None
    pnl: StrategyPnl
    positions: list[StrategyPosition]
    #: The strategy's own persisted state (open-ended).
    state: dict[str, Any]
    created_at: str
    updated_at: str


class StrategyList(Answer):
    strategies: list[StrategyView]


class LogLine(Answer):
    type: str
    strategy_id: int
    level: str
    message: str
    ts: str


class StrategyLog(Answer):
    lines: list[LogLine]


class PnlPoint(Answer):
    ts: str
    realized: int
    pnl: int


class StrategyPnlSeries(Answer):
    points: list[PnlPoint]


class FailingStrategy(Answer):
    strategy_id: int
    name: str
    kind: str
    status: str
    user_id: int
    username: str | None
    message: str | None
    at: str


class StrategyErrors(Answer):
    errors: list[FailingStrategy]


class BacktestWarning(Answer):
    """Why a result is not to be trusted (``backtest.too_little_data``)."""

    code: str
    bars: int
    message: str


class BacktestView(Answer):
    """A backtest job. What was asked (``cash``, ``source``, ``interval``, ``bars``, ``data``,
    ``warnings``) is known while the server that ran it is up, and from the report after;
    ``result`` (the report, open-ended) is in the single-job answer only."""

    id: int
    kind: str
    symbol: str
    params: dict[str, Any]
    #: queued, running, done, error.
    status: str
    error: str | None
    created_at: str
    finished_at: str | None
    cash: int | None = None
    source: str | None = None
    interval: str | None = None
    bars: int | None = None
    #: Where the bars came from: stored, broker, csv, generated.
    data: str | None = None
    warnings: list[BacktestWarning] | None = None
    result: dict[str, Any] | None = None


class BacktestList(Answer):
    backtests: list[BacktestView]
