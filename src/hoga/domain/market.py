"""Market-data value types: instruments, ticks (trades with top of book) and bars.

Timestamps on ticks and bars are POSIX seconds (float), cheap to create at feed rates;
convert with ``datetime.fromtimestamp(ts, KST)`` at the edges.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True, slots=True)
class Instrument:
    """A tradable symbol: ``kind`` is stock/etf/etn, ``market`` KOSPI/KOSDAQ/ETF/..."""

    symbol: str
    name: str
    market: str
    kind: str
    base_price: int


@dataclass(slots=True)
class Tick:
    """One trade with the top of book after it. ``volume`` is this trade's size."""

    symbol: str
    price: int
    volume: int
    ts: float
    bid: int = 0
    ask: int = 0
    bid_size: int = 0
    ask_size: int = 0
    cum_volume: int = 0
    base_price: int = 0
    recv_ts: float = 0.0


@dataclass(slots=True)
class Bar:
    """OHLCV over ``[start, start + interval)`` seconds, aligned to KST minutes."""

    symbol: str
    start: float
    interval: int
    open: int
    high: int
    low: int
    close: int
    volume: int


class QuoteSource(Protocol):
    """Anything that can tell the latest tick for a symbol (the hub cache, the simulator)."""

    def last(self, symbol: str) -> Tick | None: ...

    def instrument(self, symbol: str) -> Instrument | None: ...
