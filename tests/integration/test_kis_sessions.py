"""Every KRX session and order type through the KIS adapter and the KIS fake (real HTTP on
loopback), the fake in calendar mode on a manual clock walked through 2026-12-04.

Each order goes out with its ``ORD_DVSN`` code (kis.md §4) and venue; the fake executes it
by KRX's rules (krx.md §3, §5) and the adapter reports it back in hoga's terms.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest

from hoga.brokers.base import (
    BrokerRejected,
    ExecutionEvent,
    FillEvent,
    MemoryTokenStore,
    ModifyRequest,
    OrderStatusReport,
    OrderUpdate,
    PlaceRequest,
)
from hoga.brokers.kis import KisBroker
from hoga.domain import krx
from hoga.domain.clock import ManualClock
from hoga.domain.orders import OrderStatus, OrderType, Side, TimeInForce
from hoga.fakes.kis import KisFake, KisFakeAccount
from hoga.fakes.kis.exchange import FakeOrder
from tests.helpers import eventually
from tests.kis_support import ACCOUNT, HTS, KEY, SECRET, account_ref
from tests.session_day import SYM, FakeDay, at

T, TIF = OrderType, TimeInForce


@dataclass
class World(FakeDay[FakeOrder]):
    fake: KisFake
    broker: KisBroker
    clock: ManualClock
    events: list[ExecutionEvent] = field(default_factory=list)
    n: int = 0
    prefix: str = "k"

    async def send(self, req: PlaceRequest) -> FakeOrder:
        ack = await self.broker.place(account_ref(self.fake), req)
        return self.fake.exchange.orders[int(ack.broker_order_id)]

    async def report(self, order: FakeOrder) -> OrderStatusReport:
        reports = await self.broker.order_reports(account_ref(self.fake), at("12:00").date())
        return next(r for r in reports if r.broker_order_id == str(order.odno))


@contextlib.asynccontextmanager
async def world(start: str) -> AsyncIterator[World]:
    clock = ManualClock(at(start))
    account = KisFakeAccount(ACCOUNT, KEY, SECRET, hts_id=HTS, holdings={SYM: (500, 70_000)})
    fake = KisFake(env="real", accounts=[account], seed=7, clock=clock, market_mode="calendar")
    await fake.start()
    fake.pump(300)
    broker = KisBroker(clock, MemoryTokenStore(), realtime=True)
    w = World(fake, broker, clock)

    async def sink(_: int, event: ExecutionEvent) -> None:
        w.events.append(event)

    broker.set_event_sink(sink)
    await broker.start()
    await broker.attach(account_ref(fake))
    try:
        yield w
    finally:
        await broker.stop()
        await fake.stop()


async def test_continuous_order_types_go_out_with_their_codes_and_execute() -> None:
    async with world("10:00") as w:
        _, _, ask = w.book()
        size = w.fake.market.last(SYM).ask_size  # type: ignore[union-attr]
        # IOC limit for more than the book shows: what is there fills, the rest is cancelled.
        ioc = await w.place(Side.BUY, T.LIMIT, size + 50, ask, TIF.IOC)
        assert ioc.dvsn == "11" and (ioc.filled, ioc.cancelled) == (size, 50)
        # FOK for more than there is: killed whole.
        fok = await w.place(Side.BUY, T.LIMIT, size + 50, ask, TIF.FOK)
        assert fok.dvsn == "12" and (fok.filled, fok.cancelled) == (0, size + 50)
        # Market FOK within the displayed size fills.
        fok_ok = await w.place(Side.BUY, T.MARKET, 1, None, TIF.FOK)
        assert fok_ok.dvsn == "14" and fok_ok.filled == 1
        # 최유리 (best) prices at the opposite side; 최우선 (priority) at its own side.
        _, _bid, ask = w.book()
        best = await w.place(Side.BUY, T.BEST, 1)
        assert best.dvsn == "03" and best.filled == 1
        prio = await w.place(Side.BUY, T.PRIORITY, 1)
        assert prio.dvsn == "04" and prio.price == w.book()[1] and prio.filled == 0
        cond = await w.place(Side.BUY, T.CONDITIONAL, 1, w.lower())
        assert cond.dvsn == "02" and cond.working
        rep = await w.report(ioc)
        assert (rep.status, rep.filled_qty) == (OrderStatus.CANCELLED, size)
        rep = await w.report(cond)
        assert (rep.type, rep.status) == (T.CONDITIONAL, OrderStatus.ACCEPTED)

        async def ioc_cancel_notice() -> bool:
            await w.broker.drain()
            return any(
                isinstance(e, OrderUpdate)
                and e.report.broker_order_id == str(fok.odno)
                and e.report.status == OrderStatus.CANCELLED
                for e in w.events
            )

        await eventually(ioc_cancel_notice, 10.0, "the FOK kill notice (ACPT_YN 3)")


async def test_auction_and_closing_price_sessions() -> None:
    async with world("08:31") as w:
        inst = w.fake.market.instrument(SYM)
        assert inst is not None
        # 장전 시간외 (05): at the previous close, the base price.
        pre = await w.place(Side.BUY, T.PRE_CLOSE, 2)
        assert pre.dvsn == "05" and pre.filled == 2 and pre.filled_amount == 2 * inst.base_price
        # Opening auction: collected, matched at one price at 09:00.
        w.clock.set(at("08:45"))
        _, lower_upper = 0, krx.price_limits(inst.base_price)
        high = await w.place(Side.BUY, T.LIMIT, 3, lower_upper[1])
        mkt = await w.place(Side.BUY, T.MARKET, 2)
        assert high.filled == mkt.filled == 0
        w.go("09:00")
        assert high.filled == 3 and mkt.filled == 2
        assert high.filled_amount // 3 == mkt.filled_amount // 2
        # A conditional limit order priced far below the market turns into a market order
        # at 15:20 and trades at the one closing price; a plain limit beside it expires.
        w.clock.set(at("15:00"))
        cond = await w.place(Side.BUY, T.CONDITIONAL, 3, w.lower())
        plain = await w.place(Side.BUY, T.LIMIT, 3, w.lower())
        w.go("15:20")
        assert cond.converted and cond.filled == 0
        w.go("15:30")
        assert cond.filled == 3 and plain.filled == 0 and not plain.working
        # A plain limit order is refused after the close; the closing-price one is taken.
        close = w.fake.exchange.desk.today_close(SYM)
        assert close is not None
        w.clock.set(at("15:45"))
        with pytest.raises(BrokerRejected) as e:
            await w.place(Side.BUY, T.LIMIT, 1, close)
        assert e.value.code == "APBK0918"
        after = await w.place(Side.SELL, T.AFTER_CLOSE, 4)
        assert after.dvsn == "06" and after.filled == 4 and after.filled_amount == 4 * close
        # 시간외 단일가 (07): within ±10% of the close, matched on the 10-minute round.
        w.go("16:05")
        band = krx.single_price_band(close, inst.base_price)
        with pytest.raises(BrokerRejected):
            await w.place(Side.BUY, T.SINGLE_PRICE, 1, krx.step_price(band[1], 1))
        sp = await w.place(Side.BUY, T.SINGLE_PRICE, 5, band[1])
        assert sp.dvsn == "07" and sp.filled == 0
        w.go("16:10")
        assert sp.filled == 5 and sp.filled_amount == 5 * close
        rep = await w.report(sp)
        assert (rep.type, rep.status) == (T.SINGLE_PRICE, OrderStatus.FILLED)


async def test_nextrade_after_market_on_a_real_account() -> None:
    async with world("19:00") as w:
        _, _, ask = w.book()
        with pytest.raises(BrokerRejected) as e:
            await w.place(Side.BUY, T.LIMIT, 1, ask)  # KRX is closed
        assert e.value.code == "APBK0919"
        nxt = await w.place(Side.BUY, T.LIMIT, 1, ask, venue="NXT")
        assert nxt.venue == "NXT" and nxt.filled == 1
        rows = await w.report(nxt)
        assert rows.status == OrderStatus.FILLED
        # A resting NXT order is cancelled on NXT, and expires with the after-market at 20:00.
        low = await w.place(Side.BUY, T.LIMIT, 1, w.lower(), venue="NXT")
        await w.broker.cancel(account_ref(w.fake), str(low.odno), SYM, 1)
        assert not low.working
        late = await w.place(Side.BUY, T.LIMIT, 1, w.lower(), venue="SOR")
        w.go("20:00")
        assert not late.working and late.filled == 0


async def test_a_modified_order_fills_under_its_original_number() -> None:
    async with world("10:00") as w:
        low = await w.place(Side.BUY, T.LIMIT, 2, w.lower())
        root = str(low.odno)
        _, _, ask = w.book()
        ack = await w.broker.modify(
            account_ref(w.fake),
            ModifyRequest(root, SYM, Side.BUY, T.LIMIT, 2, w.lower(), 2, ask),
        )
        assert ack.broker_order_id == root and ack.modify_order_no != root
        new = w.fake.exchange.orders[int(ack.modify_order_no or 0)]
        assert new.filled == 2  # re-priced at the ask: it traded at once

        async def filled_under_root() -> bool:
            await w.broker.drain()
            fills = [e for e in w.events if isinstance(e, FillEvent)]
            return sum(f.fill.qty for f in fills if f.fill.broker_order_id == root) == 2

        await eventually(filled_under_root, 10.0, "the modify's fills named by the original")
        assert all(e.fill.client_order_id == "k1" for e in w.events if isinstance(e, FillEvent))
        rep = await w.report(low)
        assert (rep.status, rep.filled_qty, rep.qty) == (OrderStatus.FILLED, 2, 2)
        fills = await w.broker.fill_reports(account_ref(w.fake), at("12:00").date())
        assert {f.broker_order_id for f in fills} == {root}
