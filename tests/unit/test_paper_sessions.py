"""The paper broker in calendar mode: every KRX session and order type, by KRX's rules.

Quotes come from a fixed book the test sets (the simulated market moves on its own, and these
tests need to know the price); the clock is a manual one walked through 2026-12-04, an
ordinary Friday. Sections cited are those of shared/reference/krx.md.
"""

from __future__ import annotations

import pytest

from hoga.brokers.base import (
    AccountRef,
    BrokerRejected,
    ExecutionEvent,
    FillEvent,
    ModifyRequest,
    OrderUpdate,
    PlaceRequest,
)
from hoga.brokers.paper import PaperBroker
from hoga.brokers.paper_sessions import Due, SessionSchedule, day_moments
from hoga.domain import krx
from hoga.domain.clock import ManualClock
from hoga.domain.market import Instrument, Tick
from hoga.domain.orders import OrderStatus, OrderType, Side, TimeInForce
from tests.session_day import SYM, Day, at

ACCOUNT = AccountRef(account_id=1, user_id=1, broker="paper", env="paper", account_no="P-1")
BASE = 70_000


class Book:
    """A quote source whose last trade and top of book the test sets."""

    def __init__(self) -> None:
        self.inst = Instrument(SYM, "삼성전자", "KOSPI", "stock", BASE)
        self.tick: Tick | None = None

    def last(self, symbol: str) -> Tick | None:
        return self.tick if symbol == SYM else None

    def instrument(self, symbol: str) -> Instrument | None:
        return self.inst if symbol == SYM else None

    def set(self, clock: ManualClock, price: int, bid: int, ask: int, size: int = 100) -> Tick:
        self.tick = Tick(SYM, price, size, clock.time(), bid, ask, size, size, 0, BASE)
        return self.tick


class World(Day[str]):
    def __init__(self, start: str) -> None:
        self.clock = ManualClock(at(start))
        self.book = Book()
        self.book.set(self.clock, BASE, BASE - 100, BASE)
        self.broker = PaperBroker(self.book, self.clock, initial_cash=100_000_000, calendar=True)
        self.events: list[ExecutionEvent] = []
        self.n = 0
        self.prefix = "c"

    async def __aenter__(self) -> World:
        async def sink(_: int, ev: ExecutionEvent) -> None:
            self.events.append(ev)

        self.broker.set_event_sink(sink)
        await self.broker.start()
        await self.broker.attach(ACCOUNT)
        # Shares to sell.
        self.broker._accounts[1].positions[SYM] = krx_position(1_000)
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.broker.stop()

    async def send(self, req: PlaceRequest) -> str:
        return (await self.broker.place(ACCOUNT, req)).broker_order_id

    def go(self, hhmm: str, sec: int = 0) -> None:
        self.clock.set(at(hhmm, sec))
        self.broker.advance()

    async def report(self, oid: str) -> tuple[OrderStatus, int, int]:
        rep = next(
            r
            for r in await self.broker.order_reports(ACCOUNT, at("12:00").date())
            if r.broker_order_id == oid
        )
        return rep.status, rep.filled_qty, rep.avg_price


def krx_position(qty: int):  # type: ignore[no-untyped-def]
    from hoga.domain.portfolio import Position

    return Position(qty, qty * BASE, 0)


async def test_pre_close_trades_at_the_previous_close_then_the_window_shuts() -> None:
    # §3: 08:30-08:40 off-hours trade at the previous close (the base price).
    async with World("08:31") as w:
        w.book.set(w.clock, BASE, BASE - 100, BASE)
        oid = await w.place(Side.BUY, OrderType.PRE_CLOSE, 5)
        assert await w.report(oid) == (OrderStatus.FILLED, 5, BASE)
        w.go("08:41")
        with pytest.raises(BrokerRejected) as e:
            await w.place(Side.BUY, OrderType.PRE_CLOSE, 5)
        assert e.value.code == "paper.not_in_session"


async def test_opening_auction_collects_then_matches_at_one_price_at_nine() -> None:
    # §3: orders collected 08:30-09:00, one opening price at 09:00.
    async with World("08:45") as w:
        w.book.set(w.clock, 70_500, 70_400, 70_500)
        buy = await w.place(Side.BUY, OrderType.LIMIT, 10, 71_000)
        mkt = await w.place(Side.BUY, OrderType.MARKET, 3)
        low = await w.place(Side.BUY, OrderType.LIMIT, 4, 69_000)
        # Nothing trades during the collection.
        assert (await w.report(buy))[1] == 0
        w.go("09:00")
        assert await w.report(buy) == (OrderStatus.FILLED, 10, 70_500)
        assert await w.report(mkt) == (OrderStatus.FILLED, 3, 70_500)
        # Not crossing the opening price: it rests into the continuous session.
        assert await w.report(low) == (OrderStatus.ACCEPTED, 0, 0)
        await w.broker.drain()
        prices = {e.fill.price for e in w.events if isinstance(e, FillEvent)}
        assert prices == {70_500}


async def test_ioc_and_fok_in_the_continuous_session() -> None:
    # §5: IOC/FOK attach to limit, market and best orders, continuous session only.
    async with World("10:00") as w:
        w.book.set(w.clock, 70_000, 69_900, 70_000, size=5)
        ioc = await w.place(Side.BUY, OrderType.LIMIT, 8, 70_000, TimeInForce.IOC)
        assert await w.report(ioc) == (OrderStatus.CANCELLED, 5, 70_000)
        fok = await w.place(Side.BUY, OrderType.LIMIT, 8, 70_000, TimeInForce.FOK)
        assert await w.report(fok) == (OrderStatus.CANCELLED, 0, 0)
        fok_ok = await w.place(Side.BUY, OrderType.MARKET, 5, None, TimeInForce.FOK)
        assert await w.report(fok_ok) == (OrderStatus.FILLED, 5, 70_000)
        best_ioc = await w.place(Side.SELL, OrderType.BEST, 7, None, TimeInForce.IOC)
        assert await w.report(best_ioc) == (OrderStatus.CANCELLED, 5, 69_900)
        w.go("15:25")
        with pytest.raises(BrokerRejected) as e:
            await w.place(Side.BUY, OrderType.LIMIT, 1, 70_000, TimeInForce.IOC)
        assert e.value.code == "paper.not_in_session"


async def test_best_and_priority_take_their_price_from_the_book() -> None:
    # §5: 최유리 = the opposite side's best; 최우선 = the same side's best.
    async with World("10:00") as w:
        w.book.set(w.clock, 70_000, 69_900, 70_000, size=100)
        best = await w.place(Side.BUY, OrderType.BEST, 10)
        assert await w.report(best) == (OrderStatus.FILLED, 10, 70_000)
        prio = await w.place(Side.BUY, OrderType.PRIORITY, 10)
        rep = next(
            r
            for r in await w.broker.order_reports(ACCOUNT, at("12:00").date())
            if r.broker_order_id == prio
        )
        # Priced at the best bid: it rests there, behind the market.
        assert (rep.status, rep.price, rep.filled_qty) == (OrderStatus.ACCEPTED, 69_900, 0)


async def test_conditional_limit_becomes_market_in_the_closing_auction() -> None:
    # §5: a conditional limit order's unfilled part turns into a market order at 15:20 and
    # trades in the closing auction; it cannot be entered 15:20-15:30.
    async with World("14:00") as w:
        w.book.set(w.clock, 70_000, 69_900, 70_000)
        cond = await w.place(Side.BUY, OrderType.CONDITIONAL, 6, 65_000)
        rest = await w.place(Side.BUY, OrderType.LIMIT, 6, 65_000)
        assert (await w.report(cond))[0] == OrderStatus.ACCEPTED
        w.go("15:20")
        with pytest.raises(BrokerRejected):
            await w.place(Side.BUY, OrderType.CONDITIONAL, 1, 65_000)
        late = await w.place(Side.SELL, OrderType.LIMIT, 2, 69_000)  # closing-auction entry
        w.book.set(w.clock, 70_200, 70_100, 70_200)
        w.go("15:30")
        # One closing price for everything that traded.
        assert await w.report(cond) == (OrderStatus.FILLED, 6, 70_200)
        assert await w.report(late) == (OrderStatus.FILLED, 2, 70_200)
        # A plain limit far below the close did not trade, and regular orders end at 15:30.
        assert await w.report(rest) == (OrderStatus.EXPIRED, 0, 0)
        assert w.broker._close[SYM] == 70_200


async def test_after_close_trades_at_todays_close_from_1540() -> None:
    # §3: entry 15:30-16:00, trades at today's close 15:40-16:00.
    async with World("15:10") as w:
        w.book.set(w.clock, 70_300, 70_200, 70_300)
        w.go("15:30")  # the closing auction ran (nothing in it): close = last trade
        w.go("15:32")
        early = await w.place(Side.BUY, OrderType.AFTER_CLOSE, 4)
        assert (await w.report(early))[1] == 0
        w.go("15:40")
        assert await w.report(early) == (OrderStatus.FILLED, 4, 70_300)
        late = await w.place(Side.SELL, OrderType.AFTER_CLOSE, 3)
        assert await w.report(late) == (OrderStatus.FILLED, 3, 70_300)


async def test_single_price_matches_every_ten_minutes_within_ten_percent_of_the_close() -> None:
    # §3: 16:00-18:00 call auctions every 10 minutes, ±10% of the close, limit orders only.
    async with World("15:25") as w:
        w.book.set(w.clock, 70_000, 69_900, 70_000)
        w.go("15:30")
        w.go("16:01")
        with pytest.raises(BrokerRejected) as e:
            await w.place(Side.BUY, OrderType.SINGLE_PRICE, 1, 77_100)  # > close + 10%
        assert e.value.code == "paper.outside_limits"
        with pytest.raises(BrokerRejected):
            await w.place(Side.BUY, OrderType.MARKET, 1)
        buy = await w.place(Side.BUY, OrderType.SINGLE_PRICE, 5, 70_500)
        low = await w.place(Side.BUY, OrderType.SINGLE_PRICE, 5, 69_000)
        w.go("16:09")
        assert (await w.report(buy))[1] == 0  # not before the round
        w.go("16:10")
        assert await w.report(buy) == (OrderStatus.FILLED, 5, 70_000)
        assert (await w.report(low))[0] == OrderStatus.ACCEPTED
        w.go("18:00")
        assert (await w.report(low))[0] == OrderStatus.EXPIRED


async def test_nextrade_after_market_takes_limit_orders_in_the_evening() -> None:
    async with World("19:00") as w:
        w.book.set(w.clock, 70_000, 69_900, 70_000)
        with pytest.raises(BrokerRejected) as e:
            await w.place(Side.BUY, OrderType.LIMIT, 1, 70_000)  # KRX is closed
        assert e.value.code == "paper.market_closed"
        oid = await w.place(Side.BUY, OrderType.LIMIT, 2, 70_000, venue="NXT")
        assert await w.report(oid) == (OrderStatus.FILLED, 2, 70_000)
        rest = await w.place(Side.BUY, OrderType.LIMIT, 2, 60_000, venue="SOR")
        w.go("20:00")
        assert (await w.report(rest))[0] == OrderStatus.EXPIRED


async def test_volatility_interruption_pauses_matching_then_auctions() -> None:
    # §3 VI: a trade beyond the dynamic band (6% for non-KOSPI200) starts a 2-minute
    # single-price auction.
    async with World("10:00") as w:
        w.broker.on_tick(w.book.set(w.clock, 70_000, 69_900, 70_000))
        oid = await w.place(Side.BUY, OrderType.LIMIT, 3, 74_500)
        assert (await w.report(oid))[1] == 3  # crossed the ask at once
        resting = await w.place(Side.SELL, OrderType.LIMIT, 3, 75_000)
        w.clock.advance(1)
        w.broker.on_tick(w.book.set(w.clock, 74_900, 74_800, 74_900))  # +7%: VI
        assert w.broker.in_vi(SYM)
        w.clock.advance(30)
        w.broker.on_tick(w.book.set(w.clock, 75_100, 75_000, 75_100))
        assert (await w.report(resting))[1] == 0  # no continuous matching during VI
        w.clock.advance(91)
        w.broker.advance()
        assert not w.broker.in_vi(SYM)
        assert await w.report(resting) == (OrderStatus.FILLED, 3, 75_100)


async def test_modify_changes_the_resting_order_and_keeps_the_filled_part() -> None:
    async with World("10:00") as w:
        w.book.set(w.clock, 70_000, 69_900, 70_000, size=4)
        oid = await w.place(Side.BUY, OrderType.LIMIT, 10, 70_000)
        assert await w.report(oid) == (OrderStatus.PARTIALLY_FILLED, 4, 70_000)
        with pytest.raises(BrokerRejected):  # not below what has filled
            await w.broker.modify(
                ACCOUNT,
                ModifyRequest(oid, SYM, Side.BUY, OrderType.LIMIT, 10, 70_000, 4, 69_000),
            )
        w.book.set(w.clock, 70_000, 69_900, 70_500, size=100)
        ack = await w.broker.modify(
            ACCOUNT, ModifyRequest(oid, SYM, Side.BUY, OrderType.LIMIT, 10, 70_000, 8, 69_500)
        )
        assert ack.broker_order_id == oid
        rep = next(r for r in await w.broker.order_reports(ACCOUNT, at("12:00").date()))
        assert (rep.qty, rep.price, rep.filled_qty, rep.status) == (
            8,
            69_500,
            4,
            OrderStatus.PARTIALLY_FILLED,
        )
        # Re-priced through the ask: the rest trades at once.
        await w.broker.modify(
            ACCOUNT, ModifyRequest(oid, SYM, Side.BUY, OrderType.LIMIT, 8, 69_500, 8, 70_500)
        )
        assert await w.report(oid) == (OrderStatus.FILLED, 8, (4 * 70_000 + 4 * 70_500) // 8)
        await w.broker.drain()
        updates = [e for e in w.events if isinstance(e, OrderUpdate)]
        assert updates and all(u.report.broker_order_id == oid for u in updates)


def test_schedule_hands_each_moment_out_once_in_order() -> None:
    moments = day_moments(at("00:00").date())
    dues = [(m.at.strftime("%H:%M"), m.due) for m in moments]
    assert dues[:4] == [
        ("08:40", Due.EXPIRE),
        ("09:00", Due.OPENING_AUCTION),
        ("15:20", Due.CONVERT),
        ("15:30", Due.CLOSING_AUCTION),
    ]
    assert sum(1 for _, d in dues if d == Due.SINGLE_PRICE) == 12
    sched = SessionSchedule(at("08:00"))
    first = sched.due(at("09:00"))
    assert [m.due for m in first] == [Due.EXPIRE, Due.OPENING_AUCTION]
    assert sched.due(at("09:00")) == []
    rest = sched.due(at("23:59"))
    assert len(rest) == len(moments) - 2
    assert krx.Session.NXT_AFTER in {m.session for m in rest}
