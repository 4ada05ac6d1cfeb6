"""The feed contract: upstream sessions that carry a limited number of symbols each.

Adapters (``brokers/*``, ``marketdata/feeds/*``) implement it and the hub consumes it, so it
lives in the domain: an adapter imports only ``hoga.domain`` (docs/architecture.md, "Rooms and
dependencies"; ``tests/unit/test_adapter_imports.py``).

A feed says how many symbols one session can carry and how many sessions it may open; the hub
packs subscriptions into sessions accordingly. Sessions push ticks through ``on_tick`` and
report their end through ``on_close`` (``None`` for a clean close, else the error).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol, runtime_checkable

from hoga.domain.market import Instrument, OrderBook, Tick

TickHandler = Callable[[Tick], None]
BookHandler = Callable[[OrderBook], None]
CloseHandler = Callable[["FeedSession", BaseException | None], None]


class FeedError(Exception):
    """An upstream refused a subscription or failed; ``code`` names the reason."""

    def __init__(self, message: str, code: str = "feed.error") -> None:
        super().__init__(message)
        self.code = code


class FeedSession(Protocol):
    """One upstream connection carrying up to ``Feed.symbols_per_session`` symbols."""

    id: str

    @property
    def symbols(self) -> frozenset[str]: ...

    async def subscribe(self, symbols: list[str]) -> None: ...

    async def unsubscribe(self, symbols: list[str]) -> None: ...

    async def close(self) -> None: ...


class Feed(Protocol):
    """A source of ticks. ``None`` capacities mean unlimited."""

    name: str
    symbols_per_session: int | None
    max_sessions: int | None

    async def open_session(self, on_tick: TickHandler, on_close: CloseHandler) -> FeedSession: ...

    async def close(self) -> None: ...


@runtime_checkable
class BookCarrier(Protocol):
    """A feed session that can deliver order books: the hub sets ``book_sink`` right after
    ``open_session``; the session calls it with each book (None: nobody listens yet)."""

    book_sink: BookHandler | None


class InstrumentSet(Protocol):
    """The instruments a simulated market trades (``marketdata.universe.Universe`` is one):
    read once at construction and again at each day's roll, in this order."""

    @property
    def instruments(self) -> tuple[Instrument, ...]: ...


class SymbolSession:
    """The bookkeeping an in-process feed session shares with every other: its id, its
    handlers, the symbols it carries (at most ``cap``), and an end reported once.

    ``take(symbols)`` returns the symbols not yet carried, or raises ``FeedError``
    (``feed.closed``, ``feed.session_full``) without taking any; ``finish(error)`` marks the
    session closed and reports ``on_close`` the first time only (False after that).
    """

    def __init__(
        self, sid: str, on_tick: TickHandler, on_close: CloseHandler, cap: int | None
    ) -> None:
        self.id = sid
        self.on_tick = on_tick
        self._on_close = on_close
        self._cap = cap
        self._symbols: set[str] = set()
        self.closed = False

    @property
    def symbols(self) -> frozenset[str]:
        return frozenset(self._symbols)

    def take(self, symbols: list[str]) -> list[str]:
        if self.closed:
            raise FeedError("session is closed", "feed.closed")
        new = [s for s in symbols if s not in self._symbols]
        if self._cap is not None and len(self._symbols) + len(new) > self._cap:
            raise FeedError(
                f"MAX SUBSCRIBE OVER: a session carries at most {self._cap} symbols",
                "feed.session_full",
            )
        return new

    def finish(self, error: BaseException | None) -> bool:
        if self.closed:
            return False
        self.closed = True
        # Subclasses are the FeedSession the handler expects.
        self._on_close(self, error)  # type: ignore[arg-type]
        return True
