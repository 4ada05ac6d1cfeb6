"""Market-data value types: instruments, ticks (trades with top of book), order books and bars.

Timestamps on ticks and bars are POSIX seconds (float), cheap to create at feed rates;
convert with ``datetime.fromtimestamp(ts, KST)`` at the edges.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True, slots=True)
class Instrument:
    """A tradable symbol: ``kind`` is stock/etf/etn, ``market`` KOSPI/KOSDAQ/ETF/...

    ``halted`` (거래정지) and ``designation`` (the strongest of ``""`` none, ``caution``
    투자주의, ``warning`` 투자경고, ``risk`` 투자위험, ``admin`` 관리종목, ``liquidation``
    정리매매 - see ``DESIGNATIONS``) come from the instrument master; the bundled universe
    has neither."""

    symbol: str
    name: str
    market: str
    kind: str
    base_price: int
    halted: bool = False
    designation: str = ""


#: Designations from the instrument master, mildest first.
DESIGNATIONS = ("caution", "warning", "risk", "admin", "liquidation")


@dataclass(frozen=True, slots=True)
class Listing:
    """One row of a broker's instrument master (KIS master files, Kiwoom ``ka10099``).

    ``kind`` is what the tick table needs (stock/etf/etn); ``group`` the master's security
    group (ST stock, EF ETF, EN ETN, RT REIT, ...). ``warning`` is ``""``/``caution``/
    ``warning``/``risk`` (시장경고 00-03). ``base_price`` is the master's 기준가 (0: unknown).
    ``listed_on`` is ``YYYYMMDD`` or ``""``."""

    symbol: str
    name: str
    market: str
    kind: str
    group: str = "ST"
    std_code: str = ""
    base_price: int = 0
    listed_shares: int = 0
    nxt: bool = False
    halted: bool = False
    admin_issue: bool = False
    warning: str = ""
    liquidation: bool = False
    listed_on: str = ""

    @property
    def designation(self) -> str:
        """The strongest designation (``DESIGNATIONS`` order), ``""`` for none."""
        if self.liquidation:
            return "liquidation"
        if self.admin_issue:
            return "admin"
        return self.warning

    def instrument(self) -> Instrument:
        return Instrument(
            self.symbol,
            self.name,
            self.market,
            self.kind,
            self.base_price,
            halted=self.halted,
            designation=self.designation,
        )


@dataclass(frozen=True, slots=True)
class OrderBook:
    """A 10-level order book (호가): ``asks`` and ``bids`` are (price, qty) best-first (asks
    ascending, bids descending), at most 10 each; totals are the venue's whole-book sums
    (which may exceed the ten levels shown). ``ts`` is POSIX seconds."""

    symbol: str
    ts: float
    asks: tuple[tuple[int, int], ...]
    bids: tuple[tuple[int, int], ...]
    total_ask_qty: int
    total_bid_qty: int


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
