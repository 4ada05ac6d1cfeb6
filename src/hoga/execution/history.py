"""Trade history and profit for the dashboard: pages of a user's orders and fills under
filters, and the per-day profit figures (``daily``).

Reads only; every query acts as the user (row-level security on PostgreSQL) and filters by the
user's id. The routers call this service and never touch tables.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

from hoga.domain import krx
from hoga.domain.clock import KST, Clock
from hoga.domain.market import QuoteSource
from hoga.domain.orders import Order
from hoga.domain.portfolio import Position, apply_fill
from hoga.store.db import Actor, Database
from hoga.store.repos import history as repo
from hoga.store.repos.history import HistoryFilter as HistoryFilter  # routers' filter type
from hoga.store.repos.ledger import FillRecord as FillRecord  # rows the CSV writer reads

MAX_DAYS = 400


@dataclass(frozen=True, slots=True)
class DayFigures:
    """One trading day of a user's books, in won: P&L realised by that day's sells (net of
    costs), unrealised P&L at the day's end, the commission and tax paid that day, and the
    equity (cash plus positions at the day's end). ``marked`` is False for a past day whose
    closing marks were never recorded (its unrealised P&L is then 0 and equity is at cost)."""

    day: date
    realized: int
    unrealized: int
    commission: int
    tax: int
    equity: int
    trades: int
    marked: bool


class HistoryService:
    """See the module docstring."""

    def __init__(self, db: Database, quotes: QuoteSource, clock: Clock) -> None:
        self.db = db
        self.quotes = quotes
        self.clock = clock

    async def orders(
        self, user_id: int, f: HistoryFilter, page: int, page_size: int
    ) -> tuple[list[Order], int]:
        async with self.db.tx(Actor.user(user_id)) as conn:
            return await repo.orders_page(conn, user_id, f, (page - 1) * page_size, page_size)

    async def fills(
        self, user_id: int, f: HistoryFilter, page: int, page_size: int
    ) -> tuple[list[FillRecord], int]:
        async with self.db.tx(Actor.user(user_id)) as conn:
            return await repo.fills_page(conn, user_id, f, (page - 1) * page_size, page_size)

    async def daily(self, user_id: int, first: date, last: date) -> list[DayFigures]:
        """Figures for each day from ``first`` to ``last`` that had a fill or a cash movement,
        plus today when it lies in the range. Positions are replayed from the fills with the
        same ``apply_fill`` the books use, so realised P&L agrees with the positions table."""
        today = krx.trading_date(self.clock.now())
        until = datetime.combine(last + timedelta(days=1), time(0), KST)
        async with self.db.tx(Actor.user(user_id)) as conn:
            fills = await repo.fills_through(conn, user_id, last)
            moves = await repo.cash_movements(conn, user_id, until)
            starts = await repo.unrealized_starts(
                conn, user_id, first + timedelta(days=1), last + timedelta(days=10)
            )

        cash_by_day: dict[date, int] = defaultdict(int)
        for ts, amount in moves:
            cash_by_day[krx.trading_date(ts)] += amount
        fills_by_day: dict[date, list[FillRecord]] = defaultdict(list)
        for fill in fills:
            fills_by_day[krx.trading_date(fill.ts)].append(fill)
        days = sorted(
            {d for d in (*cash_by_day, *fills_by_day) if d <= last}
            | ({today} if first <= today <= last else set())
        )

        books: dict[tuple[int, str], Position] = {}
        cash = 0
        out: list[DayFigures] = []
        for i, day in enumerate(days):
            following = days[i + 1] if i + 1 < len(days) else None
            cash += cash_by_day.get(day, 0)
            realized = commission = tax = 0
            for fill in fills_by_day.get(day, []):
                key = (fill.account_id, fill.symbol)
                pos = books.get(key, Position())
                if fill.side == "sell" and fill.qty > pos.qty:
                    # A sell of shares hoga never saw bought (an adopted holding): book only
                    # its costs; the position itself is not hoga's to reconstruct.
                    realized -= fill.commission + fill.tax
                else:
                    effect = apply_fill(
                        pos, fill.side, fill.qty, fill.price, fill.commission, fill.tax
                    )
                    books[key] = effect.position
                    realized += effect.realized
                commission += fill.commission
                tax += fill.tax
            if day < first:
                continue
            cost = sum(p.cost for p in books.values())
            if day == today:
                unrealized = sum(
                    p.unrealized_pnl(self._price(sym, p)) for (_, sym), p in books.items() if p.qty
                )
                marked = True
            else:
                # The next recorded day's opening baseline is this day's closing mark, if no
                # trading happened in between.
                nxt = min((d for d in starts if d > day), default=None)
                if nxt is not None and following is not None and nxt > following:
                    nxt = None
                marked = nxt is not None
                unrealized = starts[nxt] if nxt is not None else 0
            out.append(
                DayFigures(
                    day=day,
                    realized=realized,
                    unrealized=unrealized,
                    commission=commission,
                    tax=tax,
                    equity=cash + cost + unrealized,
                    trades=len(fills_by_day.get(day, [])),
                    marked=marked,
                )
            )
        return out

    async def strategy_pnl(self, user_id: int, strategy_id: int) -> list[dict[str, int | str]]:
        """The strategy's P&L after each of its fills: realised so far (net of costs) and
        realised plus the open positions marked at the fill price, replayed with
        ``apply_fill`` (what ``strategies`` attributes to it)."""
        async with self.db.tx(Actor.user(user_id)) as conn:
            fills = await repo.strategy_fills(conn, user_id, strategy_id)
        books: dict[str, Position] = {}
        marks: dict[str, int] = {}
        realized = 0
        out: list[dict[str, int | str]] = []
        for f in fills:
            pos = books.get(f.symbol, Position())
            if f.side == "sell" and f.qty > pos.qty:
                realized -= f.commission + f.tax  # shares it never bought: costs only
            else:
                effect = apply_fill(pos, f.side, f.qty, f.price, f.commission, f.tax)
                books[f.symbol] = effect.position
                realized += effect.realized
            marks[f.symbol] = f.price
            unrealized = sum(p.unrealized_pnl(marks[s]) for s, p in books.items() if p.qty)
            out.append({"ts": f.ts.isoformat(), "realized": realized, "pnl": realized + unrealized})
        return out

    def _price(self, symbol: str, pos: Position) -> int:
        tick = self.quotes.last(symbol)
        return tick.price if tick is not None and tick.price > 0 else pos.avg_price
