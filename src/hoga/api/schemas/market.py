"""Answers of ``/api/market`` (the universe, quotes, order book, trading rules, bars) and of the
admin's instrument master (``/api/admin/symbols``). Quote and order-book shapes are also the
``/ws/market-data`` pushes (``api/views.py``)."""

from __future__ import annotations

from hoga.api.schemas import Answer


class SymbolView(Answer):
    symbol: str
    name: str
    #: KOSPI, KOSDAQ, ETF, ...
    market: str
    #: stock, etf, etn (the tick table's kind).
    kind: str
    halted: bool
    #: "" (none), caution, warning, risk, admin, liquidation.
    designation: str


class SymbolList(Answer):
    symbols: list[SymbolView]


class QuoteView(Answer):
    type: str
    symbol: str
    price: int
    volume: int
    cum_volume: int
    bid: int
    ask: int
    bid_size: int
    ask_size: int
    base_price: int
    change: int
    change_pct: float
    ts: str


class QuoteList(Answer):
    quotes: list[QuoteView]


class BookLevel(Answer):
    price: int
    qty: int


class OrderBookView(Answer):
    """Ten levels a side, best first; ``last`` the last trade price when known."""

    symbol: str
    ts: str
    asks: list[BookLevel]
    bids: list[BookLevel]
    total_ask_qty: int
    total_bid_qty: int
    last: int | None


class TradingRules(Answer):
    """Tick size, the day's limit band and the neighbouring valid prices (order tickets)."""

    symbol: str
    name: str
    market: str
    kind: str
    base_price: int
    lower: int
    upper: int
    price: int
    valid: bool
    tick_size: int
    price_up: int
    price_down: int
    halted: bool
    designation: str
    session_phase: str
    market_open: bool


class BarView(Answer):
    start: str
    #: Seconds.
    interval: int
    open: int
    high: int
    low: int
    close: int
    volume: int


class BarList(Answer):
    symbol: str
    #: As asked: 1m, 3m, ..., 1d.
    interval: str
    bars: list[BarView]


class SyncCounts(Answer):
    symbols: int
    halted: int
    designated: int


class InstrumentMaster(Answer):
    """The stored instrument master: how many, when and from where; the last sync's counts."""

    stored: int
    synced_at: str | None
    source: str | None
    universe: int
    applied: bool
    sync_at: str
    last_sync: SyncCounts | None
    last_error: str | None


class SyncResult(SyncCounts):
    source: str
    applied: bool
