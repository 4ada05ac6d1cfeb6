"""The brokers' servers restart under a running adapter: realtime must come back on its own.

Each test stops a fake for real (its sockets close, its tokens and approval keys are gone) and
starts a new one on the same port with the same journal - the books and order numbers survive,
the credentials of the old sessions do not - then checks that execution notices arrive over the
WebSocket again (not only through reconciliation) and that market data can be registered.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

from hoga.brokers.base import (
    ExecutionEvent,
    FillEvent,
    MemoryTokenStore,
    PlaceRequest,
)
from hoga.brokers.kis import KisBroker, KisOptions
from hoga.brokers.kis.realtime import KisRealtimeError
from hoga.domain.clock import SystemClock
from hoga.domain.orders import OrderType, Side
from hoga.fakes.kis import KisFake, KisFakeAccount
from hoga.fakes.kiwoom import KiwoomFake
from tests.helpers import eventually
from tests.kis_support import ACCOUNT, HTS, KEY, SECRET
from tests.kis_support import account_ref as kis_ref
from tests.kiwoom_support import (
    ACCOUNT_NO,
    attached,
    fake_options,
    kiwoom_adapter,
    traded,
)
from tests.kiwoom_support import (
    account_ref as kiwoom_ref,
)

CHEAP = "034220"  # LG디스플레이, ~12,000 won


def _kis_fake(journal: Path, port: int = 0, seed: int = 7) -> KisFake:
    return KisFake(
        env="real",
        accounts=[KisFakeAccount(ACCOUNT, KEY, SECRET, hts_id=HTS)],
        seed=seed,
        port=port,
        journal=journal,
    )


@contextlib.asynccontextmanager
async def _kis_broker() -> AsyncIterator[tuple[KisBroker, list[ExecutionEvent]]]:
    broker = KisBroker(SystemClock(), MemoryTokenStore(), options=KisOptions(ws_backoff_max=0.5))
    events: list[ExecutionEvent] = []

    async def sink(account_id: int, event: ExecutionEvent) -> None:
        events.append(event)

    broker.set_event_sink(sink)
    await broker.start()
    try:
        yield broker, events
    finally:
        await broker.stop()


async def _filled(broker: KisBroker, fake: KisFake, events: list[ExecutionEvent], odno: str) -> int:
    """Trade the fake's market until notices for ``odno`` add up to its filled quantity."""

    async def done() -> bool:
        await broker.drain()
        order = fake.exchange.orders[int(odno)]
        got = sum(
            e.fill.qty
            for e in events
            if isinstance(e, FillEvent) and e.fill.broker_order_id == odno
        )
        if order.remaining:
            fake.pump(25)
        return order.remaining == 0 and got == order.qty

    await eventually(done, 15.0, f"fill notices for order {odno}")
    return fake.exchange.orders[int(odno)].qty


async def test_kis_notices_come_back_after_the_server_restarts(tmp_path: Path) -> None:
    journal = tmp_path / "kis.jsonl"
    fake = _kis_fake(journal)
    await fake.start()
    port = fake.port
    fake.pump(400)
    async with _kis_broker() as (broker, events):
        acct = kis_ref(fake)
        await broker.attach(acct)
        sock = broker.key(acct).socket

        async def registered() -> bool:
            return sock.registrations == 1

        await eventually(registered, 10.0, "execution notices to be registered")
        first = await broker.place(
            acct, PlaceRequest("before", CHEAP, Side.BUY, OrderType.MARKET, 3, None)
        )
        assert await _filled(broker, fake, events, first.broker_order_id) == 3

        await fake.stop()
        again = _kis_fake(journal, port=port, seed=8)
        await again.start()
        try:
            again.pump(400)

            # The approval key of the old server means nothing to the new one: the socket must
            # reconnect, ask for a new key and register the notices again on its own.
            async def restored() -> bool:
                return sock.registrations == 1 and again.session_registrations(KEY) == 1

            await eventually(restored, 20.0, "notices re-registered on the restarted server")
            assert again.approvals_issued >= 1
            # The journal kept the book: the old order is known and numbers continue.
            assert again.exchange.orders[int(first.broker_order_id)].filled == 3
            second = await broker.place(
                acct, PlaceRequest("after", CHEAP, Side.BUY, OrderType.MARKET, 2, None)
            )
            assert int(second.broker_order_id) > int(first.broker_order_id)
            assert await _filled(broker, again, events, second.broker_order_id) == 2
        finally:
            await again.stop()


async def test_kis_market_data_registers_again_after_the_server_restarts(tmp_path: Path) -> None:
    journal = tmp_path / "kis.jsonl"
    fake = _kis_fake(journal)
    await fake.start()
    port = fake.port
    async with _kis_broker() as (broker, _events):
        acct = kis_ref(fake, hts_id=None)
        await broker.attach(acct)
        sock = broker.key(acct).socket
        await sock.register("H0STCNT0", CHEAP, owner="feed-1")
        dropped: list[BaseException | None] = []
        sock.on_drop("feed-1", dropped.append)
        await fake.stop()

        async def told() -> bool:
            return len(dropped) == 1

        await eventually(told, 10.0, "the feed session to hear of the drop")
        again = _kis_fake(journal, port=port)
        await again.start()
        try:
            # What the hub does when a session closes: open it again and subscribe. The first
            # attempt may find the server still starting; it must never fail on a stale key.
            failures: list[str] = []

            async def subscribed() -> bool:
                try:
                    await sock.register("H0STCNT0", CHEAP, owner="feed-2")
                except KisRealtimeError as e:
                    failures.append(e.code)
                    return False
                return True

            await eventually(subscribed, 20.0, "market data registered on the new server")
            assert again.session_registrations(KEY) == 1
            assert set(failures) <= {"kis.ws_unreachable", "kis.ws_closed"}, failures
        finally:
            await again.stop()


async def test_kiwoom_realtime_logs_in_again_after_the_server_restarts(tmp_path: Path) -> None:
    journal = tmp_path / "kiwoom.jsonl"
    fake = KiwoomFake(fake_options(), rate=50.0, journal=journal)
    await fake.start()
    port = fake.base_url.rsplit(":", 1)[1]
    async with kiwoom_adapter() as (broker, sink):
        ref_ = kiwoom_ref(fake)
        await attached(broker, ref_)
        rt = broker.client(ref_).realtime
        assert rt is not None
        await traded(fake, CHEAP)
        first = await broker.place(
            ref_, PlaceRequest("kw-before", CHEAP, Side.BUY, OrderType.MARKET, 3, None)
        )

        async def first_filled() -> bool:
            await broker.drain()
            fake.pump(20)
            return sum(f.fill.qty for f in sink.fills(first.broker_order_id)) == 3

        await eventually(first_filled, 15.0, "fill notices before the restart")
        await fake.stop()
        again = KiwoomFake(fake_options(port=int(port), seed=8), rate=50.0, journal=journal)
        await again.start()
        try:
            # The old token is unknown to the new server (8005): the session must issue a new
            # one, log in and register type 00 again.
            async def logged_in() -> bool:
                return (
                    rt.logins >= 2
                    and rt.connected.is_set()
                    and bool(again.registrations(again.exchange.books[ACCOUNT_NO].app_key))
                )

            await eventually(logged_in, 20.0, "the realtime session to log in again")
            assert again.stats[again.exchange.books[ACCOUNT_NO].app_key].tokens_issued >= 1
            await traded(again, CHEAP)
            second = await broker.place(
                ref_, PlaceRequest("kw-after", CHEAP, Side.BUY, OrderType.MARKET, 2, None)
            )
            # Kiwoom numbers restart daily; within the day they continue across the restart.
            assert second.broker_order_id.split("-")[1] > first.broker_order_id.split("-")[1]

            async def second_filled() -> bool:
                await broker.drain()
                again.pump(20)
                return sum(f.fill.qty for f in sink.fills(second.broker_order_id)) == 2

            await eventually(second_filled, 15.0, "fill notices after the restart")
        finally:
            await again.stop()
