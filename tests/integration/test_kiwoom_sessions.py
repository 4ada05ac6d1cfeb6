"""Every KRX session and order type through the Kiwoom adapter and the Kiwoom fake (real HTTP
on loopback), the fake in calendar mode on a manual clock walked through 2026-12-04; and a
modify that reduces the quantity (a partial ``kt10003``) then re-prices (``kt10002``).

Each order goes out with its ``trde_tp`` code (kiwoom.md A4); the fake executes it by KRX's
rules (krx.md §3, §5).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest

from hoga.brokers.base import (
    AccountRef,
    BrokerRejected,
    ModifyRequest,
    OrderStatusReport,
    PlaceRequest,
)
from hoga.brokers.kiwoom import KiwoomBroker
from hoga.domain import krx
from hoga.domain.clock import ManualClock
from hoga.domain.orders import OrderStatus, OrderType, Side, TimeInForce
from hoga.fakes import FakeAccount
from hoga.fakes.kiwoom import KiwoomFake
from hoga.fakes.kiwoom.exchange import FakeOrder
from tests.broker_support import Collected
from tests.helpers import eventually
from tests.kiwoom_support import (
    ACCOUNT_NO,
    APP_KEY,
    APP_SECRET,
    account_ref,
    attached,
    fake_options,
    kiwoom_adapter,
)
from tests.session_day import SYM, FakeDay, at

T, TIF = OrderType, TimeInForce


@dataclass
class World(FakeDay[tuple[str, FakeOrder]]):
    fake: KiwoomFake
    broker: KiwoomBroker
    sink: Collected
    ref: AccountRef
    clock: ManualClock
    n: int = 0
    prefix: str = "w"

    async def send(self, req: PlaceRequest) -> tuple[str, FakeOrder]:
        ack = await self.broker.place(self.ref, req)
        number = ack.broker_order_id.rsplit("-", 1)[1]
        return ack.broker_order_id, self.fake.exchange.orders[number]

    async def report(self, oid: str) -> OrderStatusReport:
        reports = await self.broker.order_reports(self.ref, at("12:00").date())
        return next(r for r in reports if r.broker_order_id == oid)


@contextlib.asynccontextmanager
async def world(start: str, env: str = "mock") -> AsyncIterator[World]:
    clock = ManualClock(at(start))
    options = fake_options(env=env, accounts=[FakeAccount(ACCOUNT_NO, APP_KEY, APP_SECRET)])
    fake = KiwoomFake(options, clock=clock, market_mode="calendar", rate=50.0)
    await fake.start()
    fake.pump(300)
    book = fake.exchange.books[ACCOUNT_NO]
    from hoga.domain.portfolio import Position

    book.positions[SYM] = Position(500, 500 * 70_000, 0)
    try:
        async with kiwoom_adapter(clock=clock) as (broker, sink):
            ref = account_ref(fake, env=env)
            await attached(broker, ref)
            yield World(fake, broker, sink, ref, clock)
    finally:
        await fake.stop()


async def test_continuous_order_types_go_out_with_their_codes_and_execute() -> None:
    async with world("10:00") as w:
        size = w.fake.market.last(SYM).ask_size  # type: ignore[union-attr]
        _, _bid, ask = w.book()
        ioc_id, ioc = await w.place(Side.BUY, T.LIMIT, size + 50, ask, TIF.IOC)
        assert ioc.trde_tp == "10" and ioc.filled == size and not ioc.working
        fok_id, fok = await w.place(Side.BUY, T.LIMIT, size + 50, ask, TIF.FOK)
        assert fok.trde_tp == "20" and fok.filled == 0 and not fok.working
        _, mkt = await w.place(Side.BUY, T.MARKET, 1, None, TIF.IOC)
        assert mkt.trde_tp == "13" and mkt.filled == 1
        _, best = await w.place(Side.SELL, T.BEST, 1)
        assert best.trde_tp == "6" and best.filled == 1  # at the best bid
        _, prio = await w.place(Side.SELL, T.PRIORITY, 1)
        assert prio.trde_tp == "7" and prio.price == w.book()[2] and prio.filled == 0
        cond_id, cond = await w.place(Side.BUY, T.CONDITIONAL, 1, w.lower())
        assert cond.trde_tp == "5" and cond.working
        rep = await w.report(cond_id)
        assert (rep.type, rep.status) == (T.CONDITIONAL, OrderStatus.ACCEPTED)

        async def killed() -> bool:
            return any(u.report.status == OrderStatus.CANCELLED for u in w.sink.updates(fok_id))

        await eventually(killed, 10.0, "the FOK kill reaching the adapter")
        rep = await w.report(ioc_id)
        assert (rep.status, rep.filled_qty) == (OrderStatus.CANCELLED, size)


async def test_auction_and_closing_price_sessions() -> None:
    async with world("08:31") as w:
        inst = w.fake.market.instrument(SYM)
        assert inst is not None
        _, pre = await w.place(Side.BUY, T.PRE_CLOSE, 2)
        assert pre.trde_tp == "61" and pre.filled == 2 and pre.amount == 2 * inst.base_price
        w.clock.set(at("08:45"))
        upper = krx.price_limits(inst.base_price)[1]
        _, high = await w.place(Side.BUY, T.LIMIT, 3, upper)
        _, mkt = await w.place(Side.BUY, T.MARKET, 2)
        assert high.filled == mkt.filled == 0
        w.go("09:00")
        assert high.filled == 3 and mkt.filled == 2
        assert high.amount // 3 == mkt.amount // 2
        w.go("15:30")
        close = w.fake.exchange.desk.today_close(SYM)
        assert close is not None
        w.clock.set(at("15:45"))
        with pytest.raises(BrokerRejected):
            await w.place(Side.BUY, T.LIMIT, 1, close)
        _, after = await w.place(Side.SELL, T.AFTER_CLOSE, 4)
        assert after.trde_tp == "81" and after.filled == 4 and after.amount == 4 * close
        w.go("16:05")
        band = krx.single_price_band(close, inst.base_price)
        sp_id, sp = await w.place(Side.BUY, T.SINGLE_PRICE, 5, band[1])
        assert sp.trde_tp == "62" and sp.filled == 0
        w.go("16:10")
        assert sp.filled == 5 and sp.amount == 5 * close
        rep = await w.report(sp_id)
        assert (rep.type, rep.status) == (T.SINGLE_PRICE, OrderStatus.FILLED)


async def test_nextrade_venue_on_a_real_account_and_krx_only_on_mock() -> None:
    async with world("19:00", env="real") as w:
        _, _, ask = w.book()
        _, nxt = await w.place(Side.BUY, T.LIMIT, 1, ask, venue="NXT")
        assert nxt.venue == "NXT" and nxt.filled == 1
        # A resting NXT order is cancelled on NXT (the fake refuses another market).
        low_id, low = await w.place(Side.BUY, T.LIMIT, 1, w.lower(), venue="NXT")
        await w.broker.cancel(w.ref, low_id, SYM, 1)
        assert not low.working
    async with world("10:00") as w:
        _, _, ask = w.book()
        with pytest.raises(BrokerRejected):
            await w.place(Side.BUY, T.LIMIT, 1, ask, venue="NXT")


async def test_modify_reduces_then_reprices_and_reports_name_the_original() -> None:
    async with world("10:00") as w:
        low = krx.price_limits(w.fake.market.instrument(SYM).base_price)[0]  # type: ignore[union-attr]
        oid, _ = await w.place(Side.BUY, T.LIMIT, 10, low)
        higher = krx.step_price(low, 2)
        ack = await w.broker.modify(
            w.ref, ModifyRequest(oid, SYM, Side.BUY, T.LIMIT, 10, low, 6, higher)
        )
        assert ack.broker_order_id == oid and ack.modify_order_no is not None
        live = [o for o in w.fake.exchange.orders.values() if o.working]
        assert [(o.kind, o.qty, o.price) for o in live] == [("modify", 6, higher)]
        rep = await w.report(oid)
        assert (rep.status, rep.qty, rep.price) == (OrderStatus.ACCEPTED, 6, higher)
        # Quantity only: a partial cancel, no new price.
        ack = await w.broker.modify(
            w.ref, ModifyRequest(oid, SYM, Side.BUY, T.LIMIT, 6, higher, 4, higher)
        )
        assert ack.modify_order_no is None
        rep = await w.report(oid)
        assert (rep.status, rep.qty) == (OrderStatus.ACCEPTED, 4)
        # None of it was taken for the end of the order.
        assert not any(u.report.status == OrderStatus.CANCELLED for u in w.sink.updates(oid))
        await w.broker.cancel(w.ref, oid, SYM, 4)

        async def cancelled() -> bool:
            return any(u.report.status == OrderStatus.CANCELLED for u in w.sink.updates(oid))

        await eventually(cancelled, 10.0, "the cancel confirmation")
