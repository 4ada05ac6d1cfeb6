"""The replay feed: recorded ticks or bars from CSV or Parquet, played at a chosen speed.

It serves sessions exactly like a live feed (same ``Feed`` interface, optional per-session cap),
so demos and tests can run the whole server on recorded data. Files:

* ticks - columns ``ts, symbol, price, volume`` and optionally ``bid, ask, bid_size, ask_size``;
* bars - columns ``ts`` (or ``date``), ``symbol`` (or one ``--symbol`` for the whole file),
  ``open, high, low, close, volume``; each bar plays as four trades (open, the extreme nearer the
  open, the other extreme, close) spread over the bar, volume split between them.

``ts`` is an ISO date/datetime (KST when no zone is given) or POSIX seconds. ``speed`` scales
recorded time (2.0 = twice as fast; 0 = as fast as possible). Like the simulator, it is also a
``QuoteSource`` for the paper broker and remembers the last tick of every symbol it played.
"""

from __future__ import annotations

import asyncio
import csv
import itertools
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import date, datetime
from pathlib import Path

from hoga.domain import krx
from hoga.domain.clock import KST
from hoga.domain.feed import CloseHandler, SymbolSession, TickHandler
from hoga.domain.market import Instrument, Tick
from hoga.marketdata.feeds.driven import Driven

_BAR_COLS = {"open", "high", "low", "close", "volume"}
_TICK_COLS = {"symbol", "price", "volume"}


class ReplayFormatError(ValueError):
    """The file cannot be replayed; the message names the row and column."""


def _parse_ts(raw: str, row: int) -> float:
    text = raw.strip()
    try:
        return float(text)
    except ValueError:
        pass
    try:
        dt = datetime.fromisoformat(text)
    except ValueError:
        try:
            d = date.fromisoformat(text)
        except ValueError:
            raise ReplayFormatError(
                f"row {row}: ts {raw!r} is not a date, datetime or POSIX time"
            ) from None
        dt = datetime(d.year, d.month, d.day, 9, 0)
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=KST)
    return dt.timestamp()


def _int(raw: str, col: str, row: int) -> int:
    try:
        value = int(float(raw))
    except ValueError:
        raise ReplayFormatError(f"row {row}: {col} {raw!r} is not a number") from None
    return value


def _rows(path: Path) -> Iterator[dict[str, str]]:
    if path.suffix.lower() in (".parquet", ".pq"):
        try:
            import pyarrow.parquet as pq
        except ImportError:  # the optional extra
            raise ReplayFormatError(
                f"{path}: replaying Parquet needs pyarrow: pip install 'hoga[parquet]' "
                "(or give the ticks as CSV)"
            ) from None

        table = pq.read_table(path)
        for rec in table.to_pylist():
            yield {k.lower(): str(v) for k, v in rec.items()}
        return
    with path.open(encoding="utf-8", newline="") as fh:
        for rec in csv.DictReader(fh):
            yield {k.strip().lower(): (v or "").strip() for k, v in rec.items() if k}


@dataclass(frozen=True, slots=True)
class _Event:
    ts: float
    tick: Tick


def load_events(path: Path, symbol: str | None = None) -> list[_Event]:
    """Read a file into time-ordered ticks, validating every row."""
    rows = _rows(path)
    first = next(rows, None)
    if first is None:
        raise ReplayFormatError(f"{path} is empty")
    cols = set(first)
    if "date" in cols and "ts" not in cols:
        cols.add("ts")
    is_bars = cols >= _BAR_COLS
    if not is_bars and not (_TICK_COLS | {"ts"}) <= cols:
        raise ReplayFormatError(
            f"{path}: need columns ts,symbol,price,volume (ticks) or ts,open,high,low,close,volume (bars); "
            f"got {','.join(sorted(cols))}"
        )
    events: list[_Event] = []
    for n, rec in enumerate(itertools.chain([first], rows), start=2):
        ts = _parse_ts(rec.get("ts") or rec.get("date", ""), n)
        sym = krx.normalize_symbol(rec.get("symbol") or symbol or "")
        if not krx.is_valid_symbol(sym):
            raise ReplayFormatError(
                f"row {n}: symbol {sym!r} is not a KRX code (give --symbol for single-symbol bars)"
            )
        if is_bars:
            o, h, lo, c = (_int(rec[k], k, n) for k in ("open", "high", "low", "close"))
            vol = _int(rec["volume"], "volume", n)
            if min(o, h, lo, c) <= 0 or not lo <= min(o, c) <= max(o, c) <= h:
                raise ReplayFormatError(
                    f"row {n}: bar prices must be positive with low <= open, close <= high"
                )
            path_prices = [o, h, lo, c] if h - o <= o - lo else [o, lo, h, c]
            share = [vol // 4] * 3 + [vol - 3 * (vol // 4)]
            for i, (p, v) in enumerate(zip(path_prices, share, strict=True)):
                events.append(_Event(ts + i * 15, Tick(sym, p, v, ts + i * 15)))
        else:
            price = _int(rec["price"], "price", n)
            if price <= 0:
                raise ReplayFormatError(f"row {n}: price must be positive")
            tick = Tick(
                sym,
                price,
                _int(rec["volume"], "volume", n),
                ts,
                bid=_int(rec["bid"], "bid", n) if rec.get("bid") else 0,
                ask=_int(rec["ask"], "ask", n) if rec.get("ask") else 0,
                bid_size=_int(rec["bid_size"], "bid_size", n) if rec.get("bid_size") else 0,
                ask_size=_int(rec["ask_size"], "ask_size", n) if rec.get("ask_size") else 0,
            )
            events.append(_Event(ts, tick))
    events.sort(key=lambda e: e.ts)
    return events


class ReplaySession(SymbolSession):
    """A session of the replay feed (symbols it carries; ticks for them)."""

    def __init__(
        self, feed: ReplayFeed, sid: str, on_tick: TickHandler, on_close: CloseHandler
    ) -> None:
        super().__init__(sid, on_tick, on_close, feed.symbols_per_session)
        self._feed = feed

    async def subscribe(self, symbols: list[str]) -> None:
        self._symbols.update(self.take(symbols))

    async def unsubscribe(self, symbols: list[str]) -> None:
        self._symbols.difference_update(symbols)

    async def close(self) -> None:
        if not self.closed:
            self._feed._sessions.pop(self.id, None)
            self.finish(None)


class ReplayFeed(Driven):
    """See the module docstring."""

    task_name = "replay-feed"

    name = "replay"

    def __init__(
        self,
        path: Path,
        *,
        speed: float = 1.0,
        loop_forever: bool = False,
        symbols_per_session: int | None = None,
        symbol: str | None = None,
        instruments: dict[str, Instrument] | None = None,
    ) -> None:
        self.path = path
        self.speed = speed
        self.loop_forever = loop_forever
        self.symbols_per_session = symbols_per_session
        self.max_sessions: int | None = None
        self.events = load_events(path, symbol)
        self._instruments = instruments or {}
        self._sessions: dict[str, ReplaySession] = {}
        self._ids = itertools.count(1)
        self._last: dict[str, Tick] = {}
        self._base: dict[str, int] = {}
        self._listeners: list[TickHandler] = []
        self._task: asyncio.Task[None] | None = None
        self.played = 0
        self.done = asyncio.Event()

    # --- QuoteSource

    def last(self, symbol: str) -> Tick | None:
        return self._last.get(symbol)

    def instrument(self, symbol: str) -> Instrument | None:
        inst = self._instruments.get(symbol)
        base = self._base.get(symbol)
        if inst is None:
            return None
        return replace(inst, base_price=base) if base else inst

    def add_listener(self, fn: TickHandler) -> None:
        self._listeners.append(fn)

    # --- Feed

    async def open_session(self, on_tick: TickHandler, on_close: CloseHandler) -> ReplaySession:
        sid = f"replay-{next(self._ids)}"
        session = ReplaySession(self, sid, on_tick, on_close)
        self._sessions[sid] = session
        return session

    def _emit(self, tick: Tick, ts: float) -> None:
        day_base = self._base.get(tick.symbol)
        if day_base is None:
            inst = self._instruments.get(tick.symbol)
            day_base = inst.base_price if inst else tick.price
            self._base[tick.symbol] = day_base
        out = replace(tick, ts=ts, base_price=day_base)
        if not out.bid:
            kind = (
                self._instruments[tick.symbol].kind if tick.symbol in self._instruments else "stock"
            )
            out.bid = out.price
            out.ask = krx.step_price(out.price, 1, kind)
            out.bid_size = out.ask_size = max(out.volume, 1)
        self._last[tick.symbol] = out
        self.played += 1
        for fn in self._listeners:
            fn(out)
        for session in list(self._sessions.values()):
            if tick.symbol in session._symbols:
                session.on_tick(out)

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            if not self.events:
                break
            start_wall = loop.time()
            start_rec = self.events[0].ts
            offset = 0.0
            for i, ev in enumerate(self.events):
                if self.speed > 0:
                    due = start_wall + (ev.ts - start_rec) / self.speed
                    delay = due - loop.time()
                    if delay > 0:
                        await asyncio.sleep(delay)
                elif i % 500 == 0:
                    await asyncio.sleep(0)
                # Played ticks carry "now" on the recorded clock, shifted per loop.
                self._emit(ev.tick, ev.ts + offset)
            if not self.loop_forever:
                break
            offset += self.events[-1].ts - start_rec + 60
        self.done.set()

    async def close(self) -> None:
        await self.stop_driving()
        for session in list(self._sessions.values()):
            await session.close()
