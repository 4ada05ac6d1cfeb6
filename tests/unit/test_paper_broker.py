"""The paper broker against the simulated market: fills, costs, refusals, idempotency, journal."""

from __future__ import annotations

import asyncio
import random
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from hoga.brokers.base import (
    AccountRef,
    BrokerRejected,
    ExecutionEvent,
    FillEvent,
    ModifyRequest,
    PlaceRequest,
)
from hoga.brokers.paper import PaperBroker
from hoga.brokers.paper_book import WORKING
from hoga.domain import krx
from hoga.domain.clock import KST, ManualClock
from hoga.domain.orders import OrderStatus, OrderType, Side
from hoga.marketdata.feeds.simulator import SimulatedMarket
from hoga.marketdata.universe import Universe, bundled_universe

ACCOUNT = AccountRef(account_id=1, user_id=1, broker="paper", env="paper", account_no="PAPER-1")


@pytest.fixture
def market(clock: ManualClock) -> SimulatedMarket:
    return SimulatedMarket(Universe(bundled_universe()), seed=7, clock=clock)


async def _broker(
    market: SimulatedMarket, clock: ManualClock, journal: Path | None = None
) -> PaperBroker:
    broker = PaperBroker(market, clock, initial_cash=10_000_000, journal_path=journal, fsync=False)
    market.add_listener(broker.on_tick)
    await broker.start()
    await broker.attach(ACCOUNT)
    return broker


def _req(
    cid: str,
    side: Side,
    qty: int,
    typ: OrderType = OrderType.MARKET,
    price: int | None = None,
    symbol: str = "005930",
) -> PlaceRequest:
    return PlaceRequest(
        client_order_id=cid, symbol=symbol, side=side, type=typ, qty=qty, price=price
    )


def _trade_until(market: SimulatedMarket, clock: ManualClock, symbol: str, n: int = 20) -> None:
    """Advance the market until ``symbol`` has traded ``n`` times."""
    seen = 0
    while seen < n:
        clock.advance(0.01)
        if market.step().symbol == symbol:
            seen += 1


async def test_market_buy_then_sell_fills_with_krx_costs(
    market: SimulatedMarket, clock: ManualClock
) -> None:
    broker = await _broker(market, clock)
    events: list[tuple[int, ExecutionEvent]] = []

    async def sink(account_id: int, ev: ExecutionEvent) -> None:
        events.append((account_id, ev))

    broker.set_event_sink(sink)
    _trade_until(market, clock, "005930", 1)
    ask = market.last("005930").ask  # type: ignore[union-attr]
    await broker.place(ACCOUNT, _req("b1", Side.BUY, 10))
    _trade_until(market, clock, "005930", 30)
    await broker.drain()
    fills = [e.fill for _, e in events if isinstance(e, FillEvent)]
    assert sum(f.qty for f in fills) == 10
    assert fills[0].price == ask
    for f in fills:
        assert f.commission == krx.commission(f.qty * f.price, Decimal("0.00015"))
        assert f.tax == 0
    bal = await broker.balance(ACCOUNT)
    spent = sum(f.qty * f.price + f.commission for f in fills)  # type: ignore[operator]
    assert bal.cash == 10_000_000 - spent
    assert bal.positions[0].symbol == "005930"
    assert bal.positions[0].qty == 10

    await broker.place(ACCOUNT, _req("s1", Side.SELL, 10))
    _trade_until(market, clock, "005930", 30)
    await broker.drain()
    sells = [e.fill for _, e in events if isinstance(e, FillEvent) and e.fill.side == Side.SELL]
    assert sum(f.qty for f in sells) == 10
    day = clock.now().date()
    for f in sells:
        assert f.tax == krx.sell_tax(f.qty * f.price, day, "KOSPI")
        assert f.tax == f.qty * f.price * 20 // 10_000  # 2026: 0.20%
    assert await broker.position_reports(ACCOUNT) == []
    await broker.stop()


async def test_limit_order_rests_until_crossed(market: SimulatedMarket, clock: ManualClock) -> None:
    broker = await _broker(market, clock)
    _trade_until(market, clock, "000660", 1)
    tick = market.last("000660")
    assert tick is not None
    far = krx.step_price(tick.bid, -30)
    await broker.place(ACCOUNT, _req("l1", Side.BUY, 5, OrderType.LIMIT, far, "000660"))
    _trade_until(market, clock, "000660", 5)
    (rep,) = await broker.order_reports(ACCOUNT, clock.now().date())
    assert rep.status == OrderStatus.ACCEPTED
    assert rep.filled_qty == 0
    crossing = krx.step_price(tick.ask, 20)
    await broker.place(ACCOUNT, _req("l2", Side.BUY, 5, OrderType.LIMIT, crossing, "000660"))
    _trade_until(market, clock, "000660", 40)
    reports = {
        r.client_order_id: r for r in await broker.order_reports(ACCOUNT, clock.now().date())
    }
    assert reports["l2"].status == OrderStatus.FILLED
    assert reports["l2"].avg_price <= crossing  # filled at the ask, never worse than the limit
    await broker.cancel(ACCOUNT, reports["l1"].broker_order_id, "000660", 5)
    reports = {
        r.client_order_id: r for r in await broker.order_reports(ACCOUNT, clock.now().date())
    }
    assert reports["l1"].status == OrderStatus.CANCELLED
    await broker.stop()


@pytest.mark.parametrize(
    ("req", "code"),
    [
        (_req("x", Side.BUY, 1, symbol="999999"), "paper.unknown_symbol"),
        (_req("x", Side.BUY, 1, OrderType.LIMIT, 71_550), "paper.off_tick"),
        (_req("x", Side.BUY, 1, OrderType.LIMIT, 200_000), "paper.outside_limits"),
        (_req("x", Side.BUY, 1_000), "paper.insufficient_cash"),
        (_req("x", Side.SELL, 1), "paper.insufficient_shares"),
        (_req("x", Side.BUY, 0), "paper.bad_qty"),
    ],
)
async def test_refusals_say_why(
    market: SimulatedMarket, clock: ManualClock, req: PlaceRequest, code: str
) -> None:
    broker = await _broker(market, clock)
    with pytest.raises(BrokerRejected) as e:
        await broker.place(ACCOUNT, req)
    assert e.value.code == code
    assert broker.placements(ACCOUNT.account_id) == 0
    await broker.stop()


async def test_calendar_mode_refuses_when_closed(clock: ManualClock) -> None:
    clock.set(datetime(2026, 11, 28, 11, 0, tzinfo=KST))  # a Saturday
    market = SimulatedMarket(Universe(bundled_universe()), seed=1, clock=clock, mode="calendar")
    broker = PaperBroker(market, clock, is_open=market.is_open)
    await broker.start()
    await broker.attach(ACCOUNT)
    with pytest.raises(BrokerRejected) as e:
        await broker.place(ACCOUNT, _req("c", Side.BUY, 1))
    assert e.value.code == "paper.market_closed"
    await broker.stop()


async def test_same_client_order_id_is_one_order(
    market: SimulatedMarket, clock: ManualClock
) -> None:
    broker = await _broker(market, clock)
    a = await broker.place(ACCOUNT, _req("same", Side.BUY, 1, OrderType.LIMIT, 60_000))
    b = await broker.place(ACCOUNT, _req("same", Side.BUY, 1, OrderType.LIMIT, 60_000))
    assert a == b
    assert broker.placements(ACCOUNT.account_id) == 1
    await broker.stop()


async def test_journal_restores_the_book_after_restart(
    market: SimulatedMarket, clock: ManualClock, tmp_path: Path
) -> None:
    journal = tmp_path / "paper.jsonl"
    broker = await _broker(market, clock, journal)
    _trade_until(market, clock, "005930", 1)
    await broker.place(ACCOUNT, _req("j1", Side.BUY, 3))
    await broker.place(ACCOUNT, _req("j2", Side.BUY, 2, OrderType.LIMIT, 60_000))
    _trade_until(market, clock, "005930", 20)
    before = await broker.balance(ACCOUNT)
    reports = await broker.order_reports(ACCOUNT, clock.now().date())
    await broker.stop()

    again = PaperBroker(market, clock, journal_path=journal, fsync=False)
    await again.start()
    await again.attach(ACCOUNT)  # already open: no second deposit
    assert await again.balance(ACCOUNT) == before
    assert await again.order_reports(ACCOUNT, clock.now().date()) == reports
    nxt = await again.place(ACCOUNT, _req("j3", Side.BUY, 1, OrderType.LIMIT, 60_000))
    assert nxt.broker_order_id not in {r.broker_order_id for r in reports}
    await again.stop()


async def test_accept_then_timeout_leaves_the_order_at_the_broker(
    market: SimulatedMarket, clock: ManualClock
) -> None:
    broker = await _broker(market, clock)
    broker.faults.accept_then_timeout = 1
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(
            broker.place(ACCOUNT, _req("t1", Side.BUY, 1, OrderType.LIMIT, 60_000)), 0.05
        )
    found = await broker.find_by_client_id(ACCOUNT, "t1")
    assert found is not None
    assert found.status == OrderStatus.ACCEPTED
    await broker.stop()


def test_simulator_is_deterministic_and_stays_on_grid(clock: ManualClock) -> None:
    u = Universe(bundled_universe())
    a = SimulatedMarket(u, seed=3, clock=clock)
    b = SimulatedMarket(u, seed=3, clock=clock)
    for _ in range(20_000):
        ta, tb = a.step(), b.step()
        assert (ta.symbol, ta.price, ta.volume, ta.bid, ta.ask) == (
            tb.symbol,
            tb.price,
            tb.volume,
            tb.bid,
            tb.ask,
        )
        inst = u.get(ta.symbol)
        assert inst is not None
        assert krx.is_valid_price(ta.price, ta.base_price, inst.kind)
        assert krx.is_valid_price(ta.bid, ta.base_price, inst.kind)
        assert krx.is_valid_price(ta.ask, ta.base_price, inst.kind)
        assert ta.bid < ta.ask


def test_simulator_rolls_base_price_at_kst_midnight(clock: ManualClock) -> None:
    clock.set(datetime(2026, 11, 26, 23, 59, 59, tzinfo=KST))
    m = SimulatedMarket(Universe(bundled_universe()), seed=5, clock=clock)
    for _ in range(5_000):
        m.step()
    last = {s: m.last(s).price for s in ("005930", "000660")}  # type: ignore[union-attr]
    clock.advance(2)
    m.step()
    assert m.instrument("005930").base_price == last["005930"]  # type: ignore[union-attr]
    assert date(2026, 11, 27) == clock.now().date()


async def test_cluster_servers_number_their_orders_apart(
    market: SimulatedMarket, clock: ManualClock, tmp_path: Path
) -> None:
    """Cluster mode: a user's paper book that moves to another server must not reuse the
    numbers the first server gave out (a fill would find the wrong order), and a server whose
    instance id changed continues its journal's count."""
    journal = tmp_path / "paper.jsonl"
    one = PaperBroker(market, clock, journal_path=journal, fsync=False, id_prefix="aaaa1111-")
    two = PaperBroker(market, clock, fsync=False, id_prefix="bbbb2222-")
    for broker in (one, two):
        await broker.start()
        await broker.attach(ACCOUNT)
    _trade_until(market, clock, "005930", 1)
    a = await one.place(ACCOUNT, _req("c1", Side.BUY, 1, OrderType.LIMIT, 60_000))
    b = await two.place(ACCOUNT, _req("c1", Side.BUY, 1, OrderType.LIMIT, 60_000))
    assert (a.broker_order_id, b.broker_order_id) == ("Paaaa1111-000000001", "Pbbbb2222-000000001")
    await one.stop()
    await two.stop()

    renamed = PaperBroker(market, clock, journal_path=journal, fsync=False, id_prefix="cccc3333-")
    await renamed.start()
    await renamed.attach(ACCOUNT)
    c = await renamed.place(ACCOUNT, _req("c2", Side.BUY, 1, OrderType.LIMIT, 60_000))
    assert c.broker_order_id == "Pcccc3333-000000002"
    await renamed.stop()


def _full_reserve(broker: PaperBroker) -> int:
    """The reserve the slow way: every working order's reservation, summed."""
    acct = broker._accounts[ACCOUNT.account_id]
    return sum(o.reserved for o in acct.orders.values() if o.status in WORKING)


@pytest.mark.parametrize("seed", [1, 2, 3])
async def test_running_reserve_always_equals_the_full_sum(
    market: SimulatedMarket, clock: ManualClock, tmp_path: Path, seed: int
) -> None:
    """The account's running reserve (kept on every booking, fill, modify and status change)
    equals the sum over its working orders after every step of a random session, and after
    the journal restores the book."""
    journal = tmp_path / "paper.jsonl"
    broker = await _broker(market, clock, journal)
    rnd = random.Random(seed)
    _trade_until(market, clock, "005930", 1)
    placed: list[str] = []
    for i in range(150):
        last = market.last("005930")
        assert last is not None
        roll = rnd.random()
        try:
            if roll < 0.45:
                price = krx.round_to_tick(last.price + rnd.randint(-5, 2) * 100)
                typ = rnd.choice([OrderType.LIMIT, OrderType.LIMIT, OrderType.MARKET])
                side = Side.BUY if rnd.random() < 0.8 else Side.SELL
                req = _req(
                    f"r{i}", side, rnd.randint(1, 5), typ, price if typ.needs_price else None
                )
                placed.append((await broker.place(ACCOUNT, req)).broker_order_id)
            elif roll < 0.6 and placed:
                bid = rnd.choice(placed)
                order = broker._accounts[ACCOUNT.account_id].orders[bid]
                await broker.modify(
                    ACCOUNT,
                    ModifyRequest(
                        broker_order_id=bid,
                        symbol=order.symbol,
                        side=order.side,
                        type=order.type,
                        qty=order.qty,
                        price=order.price,
                        new_qty=order.qty - 1,
                        new_price=krx.round_to_tick(last.price - 100),
                    ),
                )
            elif roll < 0.7 and placed:
                bid = rnd.choice(placed)
                await broker.cancel(ACCOUNT, bid, "005930", 1)
            else:
                _trade_until(market, clock, "005930", rnd.randint(1, 5))
        except BrokerRejected:
            pass  # refusals change nothing, which the check below also covers
        acct = broker._accounts[ACCOUNT.account_id]
        assert acct.reserved_cash() == _full_reserve(broker), f"step {i}"
    assert _full_reserve(broker) > 0  # the session left something working
    await broker.stop()

    again = PaperBroker(market, clock, journal_path=journal, fsync=False)
    await again.start()
    assert again._accounts[ACCOUNT.account_id].reserved_cash() == _full_reserve(again)
    assert _full_reserve(again) == _full_reserve(broker)
    await again.stop()
