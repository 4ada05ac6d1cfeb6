"""Bars: 1-minute OHLCV built from trades, aligned to KST minutes, and N-minute bars from those.

Each symbol's current minute is updated in place per trade; when a trade of a later minute
arrives (or the once-a-second flush sees the minute has passed) the bar is closed, kept in a
bounded in-memory window, handed to bar subscribers and queued for the database.
"""

from __future__ import annotations

from collections import defaultdict, deque
from collections.abc import Callable, Iterable

from hoga.domain.market import Bar, Tick

MINUTE = 60
KST_OFFSET = 9 * 3600

BarHandler = Callable[[Bar], None]


def bucket_start(ts: float, interval: int) -> int:
    """Start of the KST-aligned bucket of ``interval`` seconds containing ``ts``."""
    return int((ts + KST_OFFSET) // interval * interval - KST_OFFSET)


def aggregate(bars: Iterable[Bar], interval: int) -> list[Bar]:
    """Roll 1-minute bars (sorted by start) up into ``interval``-second bars."""
    out: list[Bar] = []
    cur: Bar | None = None
    for b in bars:
        start = bucket_start(b.start, interval)
        if cur is None or cur.start != start or cur.symbol != b.symbol:
            if cur is not None:
                out.append(cur)
            cur = Bar(b.symbol, start, interval, b.open, b.high, b.low, b.close, b.volume)
        else:
            cur.high = max(cur.high, b.high)
            cur.low = min(cur.low, b.low)
            cur.close = b.close
            cur.volume += b.volume
    if cur is not None:
        out.append(cur)
    return out


class BarBuilder:
    """Builds 1-minute bars per symbol and keeps the most recent ``keep`` closed bars."""

    def __init__(self, keep: int = 600) -> None:
        self._keep = keep
        self._current: dict[str, Bar] = {}
        self._recent: dict[str, deque[Bar]] = defaultdict(lambda: deque(maxlen=keep))
        self._listeners: list[BarHandler] = []
        self._pending: list[Bar] = []

    def add_listener(self, fn: BarHandler) -> None:
        self._listeners.append(fn)

    def on_tick(self, tick: Tick) -> None:
        start = int(tick.ts // MINUTE * MINUTE)
        bar = self._current.get(tick.symbol)
        if bar is not None and bar.start == start:
            p = tick.price
            if p > bar.high:
                bar.high = p
            elif p < bar.low:
                bar.low = p
            bar.close = p
            bar.volume += tick.volume
            return
        if bar is not None and start > bar.start:
            self._close(bar)
        elif bar is not None:
            return  # a late trade of an already closed minute: ignored
        self._current[tick.symbol] = Bar(
            tick.symbol, start, MINUTE, tick.price, tick.price, tick.price, tick.price, tick.volume
        )

    def _close(self, bar: Bar) -> None:
        self._recent[bar.symbol].append(bar)
        self._pending.append(bar)
        for fn in self._listeners:
            fn(bar)

    def flush(self, now: float) -> None:
        """Close every bar whose minute is over (illiquid symbols get no closing trade)."""
        cutoff = int(now // MINUTE * MINUTE)
        for symbol, bar in list(self._current.items()):
            if bar.start < cutoff:
                del self._current[symbol]
                self._close(bar)

    def take_pending(self) -> list[Bar]:
        """Closed bars not yet persisted (the caller writes them to the database)."""
        out, self._pending = self._pending, []
        return out

    def restore_pending(self, bars: list[Bar], limit: int = 200_000) -> None:
        """Put back bars the caller could not persist (they go first next time); beyond
        ``limit`` waiting bars the oldest are dropped (a long storage outage)."""
        self._pending = bars + self._pending
        if len(self._pending) > limit:
            del self._pending[: len(self._pending) - limit]

    def seed(self, bars: Iterable[Bar]) -> None:
        """Load persisted bars (oldest first) into the in-memory window at start-up."""
        for b in bars:
            self._recent[b.symbol].append(b)

    def recent(
        self, symbol: str, n: int | None = None, *, include_current: bool = False
    ) -> list[Bar]:
        bars = list(self._recent.get(symbol, ()))
        if include_current and symbol in self._current:
            cur = self._current[symbol]
            bars.append(
                Bar(
                    cur.symbol,
                    cur.start,
                    cur.interval,
                    cur.open,
                    cur.high,
                    cur.low,
                    cur.close,
                    cur.volume,
                )
            )
        return bars if n is None else bars[-n:]

    def current(self, symbol: str) -> Bar | None:
        return self._current.get(symbol)
