"""When the paper broker's session events fall due: auctions, conversions, expiries.

The paper broker trades on ticks, but KRX's day has moments that no tick marks - the opening
and closing auctions, the conversion of conditional orders at 15:20, the after-close trade at
15:40, the twelve single-price rounds, the end of each session. ``SessionSchedule`` turns
``domain.krx``'s windows into those moments and hands each out once, in time order, as the
clock passes it; the paper broker executes them (``PaperBroker.advance``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import date, datetime
from enum import StrEnum
from typing import TYPE_CHECKING

from hoga.brokers.base import BrokerRejected, PlaceRequest
from hoga.brokers.paper_book import WORKING, PaperAccount, PaperOrder
from hoga.domain import krx
from hoga.domain.krx import Session
from hoga.domain.market import Tick
from hoga.domain.orders import OrderStatus, OrderType

if TYPE_CHECKING:
    from hoga.brokers.paper import PaperBroker

log = logging.getLogger(__name__)


class Due(StrEnum):
    """What happens at a session moment."""

    OPENING_AUCTION = "opening_auction"  # match the opening call auction at the open
    CONVERT = "convert"  # conditional limit orders become market orders (closing auction)
    CLOSING_AUCTION = "closing_auction"  # match the closing auction; regular orders end
    AFTER_CLOSE = "after_close"  # closing-price orders trade at today's close
    SINGLE_PRICE = "single_price"  # one after-hours single-price round
    EXPIRE = "expire"  # the session ended: its unfilled orders lapse


@dataclass(frozen=True, slots=True)
class Moment:
    at: datetime
    due: Due
    session: Session


def day_moments(d: date) -> list[Moment]:
    """Every session moment of ``d``, in time order (empty on a closed day)."""
    out: list[Moment] = []
    for w in krx.day_windows(d):
        s = w.session
        if s == Session.OPENING_AUCTION:
            out.append(Moment(w.end, Due.OPENING_AUCTION, s))
        elif s == Session.CLOSING_AUCTION:
            out.append(Moment(w.start, Due.CONVERT, s))
            out.append(Moment(w.end, Due.CLOSING_AUCTION, s))
        elif s == Session.AFTER_CLOSE:
            out.append(Moment(w.trades_from, Due.AFTER_CLOSE, s))
            out.append(Moment(w.end, Due.EXPIRE, s))
        elif s == Session.SINGLE_PRICE:
            t = krx.single_price_round(w.start)
            while t is not None and t <= w.end:
                out.append(Moment(t, Due.SINGLE_PRICE, s))
                if t == w.end:
                    break
                t = krx.single_price_round(t.replace(microsecond=1))
            out.append(Moment(w.end, Due.EXPIRE, s))
        elif s in (Session.PRE_CLOSE, Session.NXT_AFTER):
            # Nextrade orders stay valid from the pre-market through the after-market.
            out.append(Moment(w.end, Due.EXPIRE, s))
    # At one instant the trade comes before the expiry (18:00: the last round, then lapse).
    order = {d: i for i, d in enumerate(Due)}
    return sorted(out, key=lambda m: (m.at, order[m.due]))


class SessionSchedule:
    """Hands out each moment once as the clock passes it (see the module docstring).

    Moments before ``start`` are skipped: a broker that starts (or restarts) mid-day does not
    replay a morning it did not see.
    """

    def __init__(self, start: datetime) -> None:
        self._after = start
        self._days: dict[date, list[Moment]] = {}

    def due(self, now: datetime) -> list[Moment]:
        """The moments in (last call, now], in order."""
        if now <= self._after:
            return []
        out: list[Moment] = []
        d = self._after.astimezone(krx.KST).date()
        last = now.astimezone(krx.KST).date()
        while d <= last:
            if d not in self._days:
                self._days = {k: v for k, v in self._days.items() if k >= d}
                self._days[d] = day_moments(d)
            out += [m for m in self._days[d] if self._after < m.at <= now]
            d = date.fromordinal(d.toordinal() + 1)
        self._after = now
        return out


class PaperSessions:
    """The paper broker's sessions: which one takes an order, the moments of the day
    (auctions, conversions, expiries) and volatility interruptions. Orders, accounts and
    the journal stay on the broker."""

    def __init__(self, broker: PaperBroker) -> None:
        self.broker = broker
        self._schedule = SessionSchedule(broker._clock.now())
        self.closes: dict[str, int] = {}  # today's closing price by symbol (closing auction)
        self._last_px: dict[str, int] = {}
        self.vi_until: dict[str, float] = {}
        self._vi_ref: dict[str, int] = {}  # the static VI reference: the last auction price

    def session_for(self, req: PlaceRequest) -> krx.Session:
        """The session that takes the order now, or a refusal saying why none does."""
        if not self.broker.calendar:
            if not self.broker._is_open():
                raise BrokerRejected(
                    "장 운영시간이 아닙니다 (market closed)", "paper.market_closed"
                )
            if req.type.value not in krx.SESSION_TYPES[krx.Session.CONTINUOUS]:
                raise BrokerRejected(
                    "시간외 주문은 장 일정(calendar) 모드에서만 받습니다 "
                    "(off-hours order types need calendar mode)",
                    "paper.not_in_session",
                )
            return krx.Session.CONTINUOUS
        session = krx.session_for_order(
            self.broker._clock.now(), req.type.value, req.tif.value, req.venue
        )
        if session is None:
            open_now = krx.sessions_at(self.broker._clock.now(), req.venue)
            if not open_now:
                raise BrokerRejected(
                    "장 운영시간이 아닙니다 (market closed)", "paper.market_closed"
                )
            names = ", ".join(sorted(open_now))
            raise BrokerRejected(
                f"지금 세션({names})에서 받을 수 없는 주문입니다: {req.type}/{req.tif} "
                f"(not accepted in the {names} session)",
                "paper.not_in_session",
            )
        return session

    def today_close(self, symbol: str) -> int | None:
        """Today's closing price: the closing auction's, else the last trade's."""
        if symbol in self.closes:
            return self.closes[symbol]
        tick = self.broker._quotes.last(symbol)
        return tick.price if tick is not None and tick.price > 0 else None

    def is_open_for(self, session: krx.Session) -> bool:
        # Nextrade sessions trade when KRX's continuous market does not (pre/after hours):
        # the simulated quote is the only book there is, so they trade on it.
        return session in krx.NXT_SESSIONS or self.broker._is_open() or self.broker.calendar

    def set_session(self, acct: PaperAccount, order: PaperOrder, session: str) -> None:
        order.session = session
        self.broker._write(
            {
                "t": "session",
                "a": acct.account_id,
                "o": order.broker_order_id,
                "sess": session,
                "conv": order.converted,
            }
        )

    def advance(self, now: datetime | None = None) -> None:
        """Run every session moment the clock has passed (calendar mode; see
        ``paper_sessions``). The server calls it every second; tests call it directly."""
        if not self.broker.calendar:
            return
        when = now or self.broker._clock.now()
        for moment in self._schedule.due(when):
            self._on_moment(moment)
        for symbol, until in list(self.vi_until.items()):
            if when.timestamp() >= until:
                self._end_vi(symbol, when.timestamp())

    def _orders_in(self, sessions: set[str], day: date) -> list[tuple[PaperAccount, PaperOrder]]:
        return [
            (self.broker._accounts[a], o)
            for working in self.broker._working.values()
            for a, o in list(working.values())
            if o.session in sessions and o.day == day and o.status in WORKING
        ]

    def _on_moment(self, m: Moment) -> None:
        day, ts = m.at.date(), m.at.timestamp()
        regular = {
            krx.Session.OPENING_AUCTION.value,
            krx.Session.CONTINUOUS.value,
            krx.Session.CLOSING_AUCTION.value,
        }
        if m.due == Due.OPENING_AUCTION:
            by_symbol = self._by_symbol(self._orders_in({m.session.value}, day))
            for symbol, orders in by_symbol.items():
                px = self.broker.matcher.auction(symbol, orders, ts)
                if px is not None:
                    self._vi_ref[symbol] = px
                for acct, o in orders:
                    if o.status in WORKING:
                        self.set_session(acct, o, krx.Session.CONTINUOUS.value)
        elif m.due == Due.CONVERT:
            for acct, o in self._orders_in(regular, day):
                if o.type == OrderType.CONDITIONAL:
                    o.converted = True
                    self.set_session(acct, o, krx.Session.CLOSING_AUCTION.value)
        elif m.due == Due.CLOSING_AUCTION:
            orders = self._orders_in(regular, day)
            for symbol, group in self._by_symbol(orders).items():
                px = self.broker.matcher.auction(symbol, group, ts)
                self.closes[symbol] = px if px is not None else self.today_close(symbol) or 0
            # Regular-session orders do not carry into the off-hours sessions.
            for acct, o in orders:
                if o.status in WORKING:
                    self.broker._end(
                        acct, o, OrderStatus.EXPIRED, "정규장 종료 (regular session ended)"
                    )
        elif m.due == Due.AFTER_CLOSE:
            for acct, o in self._orders_in({m.session.value}, day):
                if o.price:
                    self.broker.matcher.fill(acct, o, o.remaining, o.price, ts)
        elif m.due == Due.SINGLE_PRICE:
            orders = self._orders_in({m.session.value}, day)
            for symbol, group in self._by_symbol(orders).items():
                self.broker.matcher.auction(symbol, group, ts, reference=self.today_close(symbol))
        elif m.due == Due.EXPIRE:
            sessions = {m.session.value}
            if m.session == krx.Session.NXT_AFTER:
                sessions = {s.value for s in krx.NXT_SESSIONS}
            for acct, o in self._orders_in(sessions, day):
                self.broker._end(acct, o, OrderStatus.EXPIRED, f"{m.session} 종료 (session ended)")

    @staticmethod
    def _by_symbol(
        orders: list[tuple[PaperAccount, PaperOrder]],
    ) -> dict[str, list[tuple[PaperAccount, PaperOrder]]]:
        out: dict[str, list[tuple[PaperAccount, PaperOrder]]] = {}
        for acct, o in sorted(orders, key=lambda ao: (ao[1].ts, ao[1].broker_order_id)):
            out.setdefault(o.symbol, []).append((acct, o))
        return out

    def _end_vi(self, symbol: str, ts: float) -> None:
        """A volatility interruption's two minutes are over: one auction, then trading."""
        self.vi_until.pop(symbol, None)
        continuous = {krx.Session.CONTINUOUS.value}
        orders = [
            (self.broker._accounts[a], o)
            for a, o in self.broker._working.get(symbol, {}).values()
            if o.session in continuous and o.status in WORKING
        ]
        px = self.broker.matcher.auction(symbol, self._by_symbol(orders).get(symbol, []), ts)
        tick = self.broker._quotes.last(symbol)
        self._vi_ref[symbol] = px or (tick.price if tick is not None else 0)

    def check_vi(self, tick: Tick) -> bool:
        """Whether ``tick.symbol`` is (now) in a volatility interruption (krx.md §3 VI)."""
        until = self.vi_until.get(tick.symbol)
        if until is not None:
            if tick.ts < until:
                return True
            self._end_vi(tick.symbol, tick.ts)
        prev = self._last_px.get(tick.symbol, 0)
        self._last_px[tick.symbol] = tick.price
        ref = self._vi_ref.get(tick.symbol) or tick.base_price
        if prev and krx.vi_triggered(tick.price, prev, ref, krx.Session.CONTINUOUS):
            self.vi_until[tick.symbol] = tick.ts + krx.VI_DURATION.total_seconds()
            log.info("paper: VI on %s at %s (last %s)", tick.symbol, tick.price, prev)
            return True
        return False

    def in_vi(self, symbol: str) -> bool:
        """Whether the symbol is in a volatility interruption now."""
        return symbol in self.vi_until
