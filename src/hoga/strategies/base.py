"""The strategy API: typed parameters, the lifecycle hooks, and the Context a strategy trades through.

A strategy is a subclass of :class:`Strategy` with a pydantic :class:`StrategyParams` model. Its
hooks are plain (synchronous) methods called one at a time, never concurrently:

* ``on_start()`` - the strategy begins receiving events (start, resume, restart of the server);
  warm indicators up from ``ctx.bars(symbol)`` here.
* ``on_session_open(symbol, day)`` - the first data of a new trading day for ``symbol``, before
  that day's first bar; market orders placed here fill at the session's open.
* ``on_bar(bar)`` - a 1-minute (live) or data-interval (backtest) bar has closed.
* ``on_tick(tick)`` - a trade (live only; backtests run on bars). Ticks are conflated: a busy
  strategy sees the latest trade per symbol, never a growing backlog.
* ``on_fill(fill)`` - one of the strategy's own orders traded.
* ``on_stop()`` - the strategy stops receiving events (stop, pause, error, server shutdown).

Everything a strategy may know or do goes through :class:`Context`: its own positions (built
from its own fills only), the account's cash, its open orders, recent bars, the last prices, a
clock, a logger, ``state`` (a JSON-able dict persisted across restarts) and the order helpers
``buy``/``sell``/``close``/``cancel``. The helpers do not trade by themselves: they put a
request in the context's outbox and return its client order id at once. The driver - the live
runner, which submits through ``OrderService``, or the backtest engine - takes the outbox after
each hook returns. The Context holds plain data only: no database, no services, no credentials,
nothing of any other strategy or user.
"""

from __future__ import annotations

import itertools
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, ClassVar, Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field

from hoga.domain.clock import KST
from hoga.domain.market import Bar, Tick
from hoga.domain.portfolio import Position, apply_fill

#: Order states in which an order may still trade (mirrors ``hoga.domain.orders.OPEN``).
_OPEN_STATES = frozenset(
    {"PENDING", "QUEUED", "SUBMITTING", "ACCEPTED", "PARTIALLY_FILLED", "CANCEL_PENDING", "UNKNOWN"}
)
_FLAT = Position()
MAX_QTY = 10_000_000


class ParamError(ValueError):
    """A parameter (or a combination of them) is invalid; ``field`` names the parameter.

    Raise it from a params model's validators for cross-field rules (``fast < slow``): the
    catalog reports ``field`` to the user instead of pydantic's empty location.
    """

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


class StrategyParams(BaseModel):
    """Base of every strategy's parameters: strict, frozen, unknown keys refused.

    Give every field a ``title`` and ``description`` (Korean first, English after) and its
    bounds (``ge``/``le``...): the model's JSON schema drives the dashboard's forms.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


def quantity_field(description: str = "진입 수량. Shares bought.") -> Any:
    """The catalog's common ``qty`` parameter: shares per entry, 1 to 1,000,000, default 10."""
    return Field(10, ge=1, le=1_000_000, title="주문 수량 (quantity)", description=description)


P = TypeVar("P", bound=StrategyParams)


@dataclass(frozen=True, slots=True)
class Fill:
    """One execution of one of the strategy's orders (money in won, ``ts`` POSIX seconds).

    Part of the strategy API: its fields and their order are a contract with strategies
    written outside hoga (a positional ``Fill(...)`` must keep meaning what it meant), so it
    spells out the terms ``domain.fills.Execution`` holds instead of inheriting them (which
    would put them first).
    """

    client_order_id: str | None
    order_id: int | None
    symbol: str
    side: str
    qty: int
    price: int
    commission: int
    tax: int
    ts: float


@dataclass(slots=True)
class OpenOrder:
    """An order the strategy placed that may still trade.

    ``status`` is ``PENDING`` until the driver has handed it on, then follows the order's
    state (``QUEUED``, ``ACCEPTED``, ...); ``order_id`` is known once it was recorded.
    """

    client_order_id: str
    symbol: str
    side: str
    type: str
    qty: int
    price: int | None
    status: str = "PENDING"
    filled_qty: int = 0
    order_id: int | None = None

    @property
    def remaining(self) -> int:
        return self.qty - self.filled_qty


@dataclass(frozen=True, slots=True)
class OrderRequest:
    """What a helper asked the driver to do: place an order, or cancel one."""

    action: Literal["place", "cancel"]
    client_order_id: str
    symbol: str = ""
    side: str = ""
    qty: int = 0
    price: int | None = None


@dataclass(frozen=True, slots=True)
class LogLine:
    level: str
    message: str
    ts: float


class StrategyLog:
    """The strategy's logger: lines go to the server log and the user's event stream.

    The driver drains ``lines`` after each hook; it bounds the rate at which they are published.
    """

    __slots__ = ("_time", "lines")

    def __init__(self, time: Callable[[], float]) -> None:
        self._time = time
        self.lines: list[LogLine] = []

    def _add(self, level: str, message: object) -> None:
        self.lines.append(LogLine(level, str(message)[:1000], self._time()))

    def debug(self, message: object) -> None:
        self._add("debug", message)

    def info(self, message: object) -> None:
        self._add("info", message)

    def warning(self, message: object) -> None:
        self._add("warning", message)

    def error(self, message: object) -> None:
        self._add("error", message)


class Context:
    """Everything a strategy sees and does; see the module docstring.

    The driver owns the underscore methods (``_push_bar``, ``_apply_fill``, ``_take_outbox`` ...);
    strategies use the public ones.
    """

    def __init__(
        self,
        *,
        strategy_id: int,
        symbols: Iterable[str],
        time: Callable[[], float],
        id_prefix: str,
        history: int = 600,
        cash: int = 0,
        state: Mapping[str, Any] | None = None,
    ) -> None:
        self.strategy_id = strategy_id
        self.symbols: tuple[str, ...] = tuple(symbols)
        self._symbol_set = frozenset(self.symbols)
        self._time = time
        self._prefix = id_prefix
        self._seq = itertools.count(1)
        self._history = max(1, history)
        self._bars: dict[str, deque[Bar]] = {s: deque(maxlen=self._history) for s in self.symbols}
        self._last: dict[str, int] = {}
        self._positions: dict[str, Position] = {}
        self._orders: dict[str, OpenOrder] = {}
        self._outbox: list[OrderRequest] = []
        self.cash = cash
        #: The strategy's own memory: JSON-able, saved by the driver, restored after restarts.
        self.state: dict[str, Any] = dict(state or {})
        self.log = StrategyLog(time)

    def __repr__(self) -> str:
        return f"Context(strategy_id={self.strategy_id}, symbols={list(self.symbols)})"

    # --- reading

    def time(self) -> float:
        """Now, as POSIX seconds (a bar's close time while its ``on_bar`` runs in a backtest)."""
        return self._time()

    def now(self) -> datetime:
        """Now, as an aware KST datetime."""
        return datetime.fromtimestamp(self._time(), KST)

    def position(self, symbol: str) -> Position:
        """The strategy's own holding of ``symbol`` (from its own fills; flat if none)."""
        return self._positions.get(symbol, _FLAT)

    @property
    def positions(self) -> dict[str, Position]:
        return {s: p for s, p in self._positions.items() if p.qty}

    def open_orders(self, symbol: str | None = None) -> list[OpenOrder]:
        """The strategy's orders that may still trade, oldest first."""
        return [o for o in self._orders.values() if symbol is None or o.symbol == symbol]

    def bars(self, symbol: str, n: int | None = None) -> list[Bar]:
        """The last ``n`` closed bars of ``symbol`` (all kept, if ``n`` is None), oldest first."""
        window = self._bars.get(symbol)
        if window is None:
            return []
        out = list(window)
        return out if n is None else out[-n:] if n > 0 else []

    def last_price(self, symbol: str) -> int | None:
        """The latest trade price (live) or close (backtest) seen for ``symbol``."""
        return self._last.get(symbol)

    # --- order helpers

    def _check_symbol(self, symbol: str) -> None:
        if symbol not in self._symbol_set:
            raise ValueError(f"{symbol!r} is not one of this strategy's symbols {self.symbols}")

    @staticmethod
    def _check_qty(qty: int) -> None:
        if isinstance(qty, bool) or not isinstance(qty, int) or not 0 < qty <= MAX_QTY:
            raise ValueError(f"qty must be a whole number of shares in 1..{MAX_QTY}, got {qty!r}")

    @staticmethod
    def _check_price(price: int | None) -> None:
        if price is not None and (
            isinstance(price, bool) or not isinstance(price, int) or price <= 0
        ):
            raise ValueError(f"price must be a positive number of won or None, got {price!r}")

    def _place(self, symbol: str, side: str, qty: int, price: int | None) -> str:
        cid = f"{self._prefix}{next(self._seq)}"
        self._orders[cid] = OpenOrder(
            cid, symbol, side, "market" if price is None else "limit", qty, price
        )
        self._outbox.append(OrderRequest("place", cid, symbol, side, qty, price))
        return cid

    def buy(self, symbol: str, qty: int, price: int | None = None) -> str:
        """Buy ``qty`` shares: at market without ``price``, else a limit order. Returns the
        order's client id at once; the order is checked and placed after the hook returns."""
        self._check_symbol(symbol)
        self._check_qty(qty)
        self._check_price(price)
        return self._place(symbol, "buy", qty, price)

    def available_to_sell(self, symbol: str) -> int:
        """Shares of the strategy's own position not already promised to an open sell."""
        selling = sum(
            o.remaining for o in self._orders.values() if o.symbol == symbol and o.side == "sell"
        )
        return self.position(symbol).qty - selling

    def sell(self, symbol: str, qty: int, price: int | None = None) -> str:
        """Sell ``qty`` of the strategy's own shares (hoga does not sell short)."""
        self._check_symbol(symbol)
        self._check_qty(qty)
        self._check_price(price)
        free = self.available_to_sell(symbol)
        if qty > free:
            raise ValueError(f"cannot sell {qty} {symbol}: the strategy holds {free} unpromised")
        return self._place(symbol, "sell", qty, price)

    def close(self, symbol: str) -> str | None:
        """Sell the whole of the strategy's position in ``symbol`` at market (None when flat)."""
        self._check_symbol(symbol)
        free = self.available_to_sell(symbol)
        return self._place(symbol, "sell", free, None) if free > 0 else None

    def cancel(self, client_order_id: str) -> bool:
        """Ask to cancel one of the strategy's open orders; False if it is not open."""
        order = self._orders.get(client_order_id)
        if order is None:
            return False
        self._outbox.append(OrderRequest("cancel", client_order_id, order.symbol))
        return True

    # --- driver side

    def _take_outbox(self) -> list[OrderRequest]:
        out, self._outbox = self._outbox, []
        return out

    def _push_bar(self, bar: Bar) -> None:
        window = self._bars.get(bar.symbol)
        if window is not None:
            window.append(bar)
        self._last[bar.symbol] = bar.close

    def _seed_bars(self, symbol: str, bars: Iterable[Bar]) -> None:
        window = self._bars.get(symbol)
        if window is not None:
            window.extend(bars)
            if window:
                self._last.setdefault(symbol, window[-1].close)

    def _set_last(self, tick: Tick) -> None:
        self._last[tick.symbol] = tick.price

    def _set_position(self, symbol: str, position: Position) -> None:
        self._positions[symbol] = position

    def _apply_fill(self, fill: Fill) -> None:
        """Book a fill of the strategy's own order: position, order progress (cash is the
        driver's: it moves with every fill on the account, not only the strategy's)."""
        pos = self._positions.get(fill.symbol, _FLAT)
        self._positions[fill.symbol] = book_fill(pos, fill)
        if fill.client_order_id is not None:
            order = self._orders.get(fill.client_order_id)
            if order is not None:
                order.filled_qty += fill.qty
                if order.filled_qty >= order.qty:
                    del self._orders[fill.client_order_id]

    def _order_update(
        self,
        client_order_id: str,
        status: str,
        *,
        order_id: int | None = None,
        filled_qty: int | None = None,
    ) -> OpenOrder | None:
        """Follow an order's state; orders that can no longer trade leave ``open_orders``."""
        order = self._orders.get(client_order_id)
        if order is None:
            return None
        order.status = status
        if order_id is not None:
            order.order_id = order_id
        if filled_qty is not None and filled_qty > order.filled_qty:
            order.filled_qty = filled_qty
        if status not in _OPEN_STATES or order.filled_qty >= order.qty:
            del self._orders[client_order_id]
        return order

    def _track(self, order: OpenOrder) -> None:
        """Re-attach an order placed before a restart."""
        self._orders[order.client_order_id] = order


def book_fill(pos: Position, fill: Fill) -> Position:
    """A position after a fill, by the same arithmetic live trading uses.

    A sell larger than the position (shares the strategy did not buy itself) only books the
    part it holds, so attribution never fails on someone else's shares.
    """
    if fill.side == "sell" and fill.qty > pos.qty:
        if pos.qty == 0:
            return pos
        return apply_fill(pos, fill.side, pos.qty, fill.price, fill.commission, fill.tax).position
    return apply_fill(pos, fill.side, fill.qty, fill.price, fill.commission, fill.tax).position


class Strategy(Generic[P]):
    """Base class of every strategy; see the module docstring for the hooks.

    Subclasses set the catalog metadata (``kind``, Korean ``name``/``description`` and their
    ``_en`` versions) and ``Params``. ``lookback(params)`` says how many recent bars the
    strategy wants the context to keep. ``check_setup`` validates symbols against parameters
    (raise :class:`ParamError`).
    """

    kind: ClassVar[str] = ""
    name: ClassVar[str] = ""
    name_en: ClassVar[str] = ""
    description: ClassVar[str] = ""
    description_en: ClassVar[str] = ""
    Params: ClassVar[type[StrategyParams]] = StrategyParams
    min_symbols: ClassVar[int] = 1
    max_symbols: ClassVar[int] = 20

    def __init__(self, ctx: Context, params: P) -> None:
        self.ctx = ctx
        self.params = params

    @classmethod
    def lookback(cls, params: Any) -> int:
        return 100

    @classmethod
    def check_setup(cls, symbols: tuple[str, ...], params: Any) -> None:
        """Cross-checks of symbols and parameters beyond the params model (override)."""

    def on_start(self) -> None:
        """Called when the strategy begins receiving events."""

    def on_session_open(self, symbol: str, day: date) -> None:
        """Called at the first data of a new trading day for ``symbol``."""

    def on_bar(self, bar: Bar) -> None:
        """Called when a bar of one of the strategy's symbols has closed."""

    def on_tick(self, tick: Tick) -> None:
        """Called with the latest trade of a symbol (live only)."""

    def on_fill(self, fill: Fill) -> None:
        """Called when one of the strategy's orders traded."""

    def on_stop(self) -> None:
        """Called when the strategy stops receiving events."""


def overrides(cls: type[Strategy[Any]], hook: str) -> bool:
    """True when ``cls`` implements ``hook`` itself (drivers skip work for hooks left empty)."""
    return getattr(cls, hook) is not getattr(Strategy, hook)
