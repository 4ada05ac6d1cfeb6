"""The read side for routers: one transaction per question, the SQL in ``store/``.

Routers never open transactions or touch tables (a test parses their imports); what they show
that is not an order (``OrderService``) is asked here: the caller's portfolio, fills and day
counters, persisted minute bars merged with the bar builder's, every strategy's status for the
admin page. Answers are records and dataclasses; the JSON shapes stay in ``api/``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from hoga.domain import krx
from hoga.domain.clock import Clock
from hoga.domain.market import Bar, QuoteSource
from hoga.store.db import SYSTEM, Actor, Database
from hoga.store.repos import accounts as accounts_repo
from hoga.store.repos import bars as bars_repo
from hoga.store.repos import ledger
from hoga.store.repos import orders as orders_repo
from hoga.store.repos import strategies as strategies_repo
from hoga.store.repos.ledger import FillRecord
from hoga.store.repos.strategies import StrategyRecord

__all__ = [
    "AccountBooks",
    "DayCounters",
    "FillRecord",
    "Holding",
    "Portfolio",
    "Queries",
    "StrategyRecord",
]


@dataclass(frozen=True, slots=True)
class Holding:
    """One position marked to the latest price (its average price when there is none)."""

    account_id: int
    symbol: str
    name: str
    qty: int
    avg_price: int
    market_price: int
    unrealized_pnl: int
    realized_pnl: int


@dataclass(frozen=True, slots=True)
class AccountBooks:
    id: int
    label: str | None
    broker: str
    cash: int
    reserved_cash: int
    equity: int


@dataclass(frozen=True, slots=True)
class DayCounters:
    """Today's trades and realised P&L; ``unrealized_start`` is where today's P&L is measured
    from (None before the day's first order)."""

    trades: int
    realized: int
    unrealized_start: int | None


@dataclass(frozen=True, slots=True)
class Portfolio:
    holdings: list[Holding]
    accounts: list[AccountBooks]
    today: DayCounters

    @property
    def cash(self) -> int:
        return sum(a.cash for a in self.accounts)

    @property
    def reserved_cash(self) -> int:
        return sum(a.reserved_cash for a in self.accounts)

    @property
    def market_value(self) -> int:
        return sum(h.qty * h.market_price for h in self.holdings)


class Queries:
    """See the module docstring."""

    def __init__(
        self,
        db: Database,
        clock: Clock,
        quotes: QuoteSource,
        *,
        name_of: Callable[[str], str | None],
        recent_bars: Callable[[str], Iterable[Bar]],
    ) -> None:
        self._db = db
        self._clock = clock
        self._quotes = quotes
        # Given by the composition root: market data is not this room's (docs/architecture.md).
        self._name_of = name_of
        self._recent_bars = recent_bars

    async def day_counters(self, user_id: int) -> DayCounters:
        async with self._db.tx(Actor.user(user_id)) as conn:
            counters = await ledger.day_counters(conn, user_id, krx.trading_date(self._clock.now()))
        return DayCounters(*counters)

    async def fills(
        self,
        user_id: int,
        *,
        symbol: str | None = None,
        order_id: int | None = None,
        strategy_id: int | None = None,
        limit: int = 200,
    ) -> list[FillRecord]:
        async with self._db.tx(Actor.user(user_id)) as conn:
            return await ledger.fills(
                conn,
                user_id,
                symbol=symbol,
                order_id=order_id,
                strategy_id=strategy_id,
                limit=limit,
            )

    async def portfolio(self, user_id: int, account_id: int | None = None) -> Portfolio:
        """The user's accounts (or one), their cash, reserves and marked positions."""
        uid = user_id
        holdings: list[Holding] = []
        books: list[AccountBooks] = []
        async with self._db.tx(Actor.user(uid)) as conn:
            if account_id is not None:
                accts = [await accounts_repo.require_account(conn, uid, account_id)]
            else:
                accts = await accounts_repo.list_accounts(conn, uid)
            for acct in accts:
                cash = await ledger.cash(conn, uid, acct.id)
                reserved, _, _ = await orders_repo.exposure(conn, uid, acct.id)
                value = 0
                for p in await ledger.positions(conn, uid, acct.id):
                    tick = self._quotes.last(p.symbol)
                    px = tick.price if tick else p.position.avg_price
                    holdings.append(
                        Holding(
                            account_id=acct.id,
                            symbol=p.symbol,
                            name=self._name_of(p.symbol) or p.symbol,
                            qty=p.qty,
                            avg_price=p.position.avg_price,
                            market_price=px,
                            unrealized_pnl=p.position.unrealized_pnl(px),
                            realized_pnl=p.realized_pnl,
                        )
                    )
                    value += p.qty * px
                books.append(
                    AccountBooks(acct.id, acct.label, acct.broker, cash, reserved, cash + value)
                )
            counters = await ledger.day_counters(conn, uid, krx.trading_date(self._clock.now()))
        return Portfolio(holdings, books, DayCounters(*counters))

    async def minute_bars(self, symbol: str, start: float, end: float) -> list[Bar]:
        """Persisted minute bars in ``[start, end)`` with the bar builder's newer ones on top."""
        async with self._db.tx(SYSTEM) as conn:
            stored = await bars_repo.minute_bars(conn, symbol, start, end)
        merged = {int(b.start): b for b in stored}
        for b in self._recent_bars(symbol):
            if start <= b.start < end:
                merged[int(b.start)] = b
        return [merged[k] for k in sorted(merged)]

    async def strategies_with_status(self, statuses: list[str]) -> list[StrategyRecord]:
        """Every user's strategies in these states (admin pages; system actor)."""
        async with self._db.tx(SYSTEM) as conn:
            return await strategies_repo.with_status(conn, statuses)
