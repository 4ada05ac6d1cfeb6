"""The KIS adapter against the KIS fake over loopback HTTP and WebSocket (no hoga app)."""

from __future__ import annotations

import asyncio
from datetime import datetime

import pytest

from hoga.brokers.base import (
    BrokerAuthError,
    BrokerError,
    BrokerNotProcessed,
    BrokerOutcomeUnknown,
    BrokerRejected,
    FillEvent,
    MemoryTokenStore,
    ModifyRequest,
    OrderUpdate,
    PlaceRequest,
)
from hoga.brokers.kis import KisBroker, KisOptions
from hoga.brokers.kis.realtime import KisRealtimeError, KisSocket
from hoga.domain import krx
from hoga.domain.clock import KST, SystemClock
from hoga.domain.orders import OrderStatus, OrderType, Side
from hoga.fakes.kis import KisFakeAccount
from tests.helpers import eventually
from tests.kis_support import ACCOUNT, HTS, KEY, SECRET, account_ref, kis_world

CHEAP = "034220"  # LG디스플레이, ~12,000 won


def today() -> datetime:
    return datetime.now(KST)


async def test_market_buy_fills_partially_then_fully_with_notices_and_reports() -> None:
    async with kis_world() as w:
        await w.broker.attach(w.account)
        await w.notices_ready()
        ack = await w.broker.place(
            w.account, PlaceRequest("cid-1", CHEAP, Side.BUY, OrderType.MARKET, 3000, None)
        )
        (order,) = w.fake.orders(ACCOUNT)
        assert ack.broker_order_id == str(order.odno) and ack.org_no == order.org_no
        # The displayed size (at most 800) caps the first match: a partial fill.
        assert 0 < order.filled < 3000
        await w.settle(lambda: order.remaining == 0, "the rest of the order to fill")
        fills = [e.fill for _, e in w.events if isinstance(e, FillEvent)]
        assert len(fills) >= 2
        assert sum(f.qty for f in fills) == 3000
        assert sum(f.qty * f.price for f in fills) == order.filled_amount
        assert {f.client_order_id for f in fills} == {"cid-1"}
        assert len({f.fill_id for f in fills}) == len(fills)
        updates = [e.report for _, e in w.events if isinstance(e, OrderUpdate)]
        assert updates[0].status == OrderStatus.ACCEPTED and updates[0].qty == 3000

        (rep,) = await w.broker.order_reports(w.account, today().date())
        assert rep.status == OrderStatus.FILLED and rep.filled_qty == 3000
        assert rep.broker_order_id == ack.broker_order_id and rep.client_order_id == "cid-1"
        assert rep.avg_price == order.filled_amount // 3000 and rep.type == OrderType.MARKET
        assert await w.broker.fill_reports(w.account, today().date()) == fills

        bal = await w.broker.balance(w.account)
        held = w.fake.account(ACCOUNT).positions[CHEAP]
        assert [(p.symbol, p.qty) for p in bal.positions] == [(CHEAP, 3000)]
        assert bal.positions[0].avg_price == round(held.cost / held.qty)
        assert bal.cash == w.fake.account(ACCOUNT).cash


async def test_resting_limit_order_is_modified_then_cancelled() -> None:
    async with kis_world() as w:
        await w.broker.attach(w.account)
        await w.notices_ready()
        base = w.fake.market.instrument(CHEAP)
        assert base is not None
        lower, _ = krx.price_limits(base.base_price, base.kind)
        ack = await w.broker.place(
            w.account, PlaceRequest("cid-2", CHEAP, Side.BUY, OrderType.LIMIT, 10, lower)
        )
        reserved = w.fake.exchange.reserved_cash(w.fake.account(ACCOUNT))
        assert reserved > 0
        higher = krx.step_price(lower, 2)
        moved = await w.broker.modify(
            w.account,
            ModifyRequest(
                ack.broker_order_id, CHEAP, Side.BUY, OrderType.LIMIT, 10, lower, 10, higher
            ),
        )
        # The order keeps hoga's id; KIS named the modify itself anew, as the real one does.
        assert moved.broker_order_id == ack.broker_order_id
        assert moved.modify_order_no is not None and moved.modify_order_no != ack.broker_order_id
        new = w.fake.exchange.orders[int(moved.modify_order_no)]
        assert new.price == higher and new.qty == 10 and new.orig_odno == int(ack.broker_order_id)

        # Reports fold the modify into the original: one order, at its new price, working.
        (rep,) = await w.broker.order_reports(w.account, today().date())
        assert rep.broker_order_id == ack.broker_order_id
        assert (rep.status, rep.price, rep.qty, rep.client_order_id) == (
            OrderStatus.ACCEPTED,
            higher,
            10,
            "cid-2",
        )

        # Fewer shares: 10 -> 6 is a partial cancel; the order keeps working.
        reduced = await w.broker.modify(
            w.account,
            ModifyRequest(
                ack.broker_order_id, CHEAP, Side.BUY, OrderType.LIMIT, 10, higher, 6, higher
            ),
        )
        assert reduced.broker_order_id == ack.broker_order_id and reduced.modify_order_no is None
        assert new.remaining == 6 and new.cancelled == 4
        (rep,) = await w.broker.order_reports(w.account, today().date())
        assert (rep.broker_order_id, rep.status, rep.qty) == (
            ack.broker_order_id,
            OrderStatus.ACCEPTED,
            6,
        )

        # Cancelling by hoga's id reaches the modified order.
        await w.broker.cancel(w.account, ack.broker_order_id, CHEAP, 6)
        assert new.remaining == 0 and new.cancelled == 10
        assert w.fake.exchange.reserved_cash(w.fake.account(ACCOUNT)) == 0
        (rep,) = await w.broker.order_reports(w.account, today().date())
        assert (rep.broker_order_id, rep.status) == (ack.broker_order_id, OrderStatus.CANCELLED)

        async def cancelled_notice() -> bool:
            await w.broker.drain()
            return any(
                isinstance(e, OrderUpdate)
                and e.report.broker_order_id == ack.broker_order_id
                and e.report.status == OrderStatus.CANCELLED
                for _, e in w.events
            )

        for _ in range(200):
            if await cancelled_notice():
                break
            await asyncio.sleep(0.01)
        assert await cancelled_notice()
        # The partial cancel of the reduction was not taken for the end of the order.
        statuses = [
            e.report.status
            for _, e in w.events
            if isinstance(e, OrderUpdate) and e.report.broker_order_id == ack.broker_order_id
        ]
        assert statuses.count(OrderStatus.CANCELLED) == 1 and statuses[-1] == OrderStatus.CANCELLED
        # A cancelled order cannot be cancelled again: KIS says so, with its code.
        with pytest.raises(BrokerRejected) as e:
            await w.broker.cancel(w.account, ack.broker_order_id, CHEAP, 10)
        assert e.value.code == "APBK0918" and "정정/취소할 수량" in e.value.message


async def test_business_rejects_carry_the_brokers_code_and_message() -> None:
    async with kis_world() as w:
        with pytest.raises(BrokerRejected) as e:
            await w.broker.place(
                w.account, PlaceRequest("c", CHEAP, Side.SELL, OrderType.MARKET, 5, None)
            )
        assert e.value.code == "APBK0918" and "주문가능수량" in e.value.message
        assert "APBK0918" in str(e.value)
        with pytest.raises(BrokerRejected) as e:
            await w.broker.place(
                w.account, PlaceRequest("c", "999999", Side.BUY, OrderType.MARKET, 5, None)
            )
        assert e.value.code == "APBK0656"
        with pytest.raises(BrokerRejected) as e:
            await w.broker.place(
                w.account, PlaceRequest("c", CHEAP, Side.BUY, OrderType.LIMIT, 5, 12_345)
            )
        assert e.value.code == "APBK0918" and "호가단위" in e.value.message
        with pytest.raises(BrokerRejected) as e:
            await w.broker.place(
                w.account, PlaceRequest("c", CHEAP, Side.BUY, OrderType.MARKET, 900_000, None)
            )
        assert "주문가능금액" in e.value.message
        assert w.fake.orders(ACCOUNT) == []


async def test_token_survives_an_adapter_restart_through_the_token_store() -> None:
    store = MemoryTokenStore()
    async with kis_world(store=store) as w:
        await w.broker.test_connection(w.account)
        assert w.fake.token_issues[KEY] == 1
        await w.broker.stop()
        # A new process: a new adapter, the same store.
        again = KisBroker(SystemClock(), store)
        await again.start()
        try:
            summary = await again.test_connection(w.account)
            assert "기존 토큰 재사용" in summary
        finally:
            await again.stop()
        assert w.fake.token_issues[KEY] == 1 and w.fake.token_throttled[KEY] == 0
        # Without the store the new adapter would have had to ask again - and be throttled.
        forgetful = KisBroker(SystemClock(), MemoryTokenStore())
        await forgetful.start()
        try:
            with pytest.raises(BrokerNotProcessed) as e:
                await forgetful.test_connection(w.account)
            assert e.value.code == "EGW00133" and e.value.retry_after >= 60
        finally:
            await forgetful.stop()
        assert w.fake.token_throttled[KEY] == 1


async def test_expired_token_is_reissued_once_and_the_call_succeeds() -> None:
    async with kis_world() as w:
        await w.broker.balance(w.account)
        w.fake.expire_tokens()
        bal = await w.broker.balance(w.account)
        assert bal.cash == 100_000_000
        assert w.fake.token_issues[KEY] == 2
        # An order after expiry goes through on the re-issued token, exactly once.
        w.fake.expire_tokens()
        await w.broker.place(
            w.account, PlaceRequest("c", CHEAP, Side.BUY, OrderType.MARKET, 1, None)
        )
        assert len(w.fake.orders(ACCOUNT)) == 1 and w.fake.token_issues[KEY] == 3


async def test_rate_limited_orders_are_not_processed_and_not_placed() -> None:
    # An adapter configured far above the broker's limit: the broker must push back. The fake
    # allows 2 requests/s, so 40 at once exceed it even when a busy machine slows them down.
    async with kis_world(broker_kw={"options": KisOptions(real_rate=500.0)}, rate=2.0) as w:
        await w.broker.balance(w.account)
        price = w.fake.market.instrument(CHEAP)
        assert price is not None
        lower, _ = krx.price_limits(price.base_price, price.kind)
        results = await asyncio.gather(
            *(
                w.broker.place(
                    w.account, PlaceRequest(f"c{i}", CHEAP, Side.BUY, OrderType.LIMIT, 1, lower)
                )
                for i in range(40)
            ),
            return_exceptions=True,
        )
        refused = [r for r in results if isinstance(r, BaseException)]
        assert refused and all(isinstance(r, BrokerNotProcessed) for r in refused)
        assert {r.code for r in refused if isinstance(r, BrokerError)} == {"EGW00201"}
        assert len(w.fake.orders(ACCOUNT)) == 40 - len(refused)
        assert w.fake.rate_limited[KEY] == len(refused)


@pytest.mark.parametrize(
    ("fault", "booked"),
    [("truncate_next", True), ("drop_next", True), ("http500_next", False)],
)
async def test_unreadable_order_replies_are_outcome_unknown_and_never_resent(
    fault: str, booked: bool
) -> None:
    async with kis_world() as w:
        await w.broker.balance(w.account)
        setattr(w.fake.faults, fault, 1)
        with pytest.raises(BrokerOutcomeUnknown) as e:
            await w.broker.place(
                w.account, PlaceRequest("c", CHEAP, Side.BUY, OrderType.MARKET, 3, None)
            )
        assert e.value.code in ("kis.bad_reply", "kis.no_answer")
        assert len(w.fake.orders(ACCOUNT)) == (1 if booked else 0)
        # The reports show the truth; nothing was sent twice.
        reports = await w.broker.order_reports(w.account, today().date())
        assert len(reports) == (1 if booked else 0)


async def test_unreadable_query_replies_are_plain_broker_errors() -> None:
    async with kis_world() as w:
        await w.broker.balance(w.account)
        w.fake.faults.http500_next = 1
        with pytest.raises(BrokerError) as e:
            await w.broker.balance(w.account)
        assert type(e.value) is BrokerError and e.value.code == "kis.bad_reply"


async def test_bad_credentials_and_accounts_are_refused_with_the_brokers_code() -> None:
    accounts = [
        KisFakeAccount(ACCOUNT, KEY, SECRET, hts_id=HTS),
        KisFakeAccount("70000000-01", "PSrealKEY" + "r" * 27, "realsecret" + "z" * 170, env="real"),
    ]
    async with kis_world(env="mock", accounts=accounts) as w:
        cases = [
            (account_ref(w.fake, key="PSwrongKEY" + "a" * 26), BrokerAuthError, "EGW00103"),
            (account_ref(w.fake, secret="wrong" + "b" * 175), BrokerAuthError, "EGW00105"),
            # A real-environment key pointed at the mock host.
            (
                account_ref(
                    w.fake,
                    account_no="70000000-01",
                    key="PSrealKEY" + "r" * 27,
                    secret="realsecret" + "z" * 170,
                ),
                BrokerAuthError,
                "EGW00103",
            ),
            (account_ref(w.fake, account_no="1234"), BrokerRejected, "kis.bad_account_no"),
        ]
        for account, exc, code in cases:
            broker = KisBroker(SystemClock(), MemoryTokenStore())
            await broker.start()
            try:
                with pytest.raises(exc) as e:
                    await broker.test_connection(account)
            finally:
                await broker.stop()
            assert e.value.code == code, (code, e.value.code, e.value.message)
            assert code in e.value.message or code.startswith("kis.")
            for text in (str(e.value), repr(e.value), repr(account)):
                assert account.app_secret is not None
                assert account.app_secret.reveal() not in text
        # A well-formed account number that is not this key's.
        with pytest.raises(BrokerRejected) as e:
            await w.broker.test_connection(account_ref(w.fake, account_no="59999999-01"))
        assert e.value.code == "OPSQ2000" and "INVALID_CHECK_ACNO" in e.value.message


async def test_paged_reports_are_read_to_the_end() -> None:
    async with kis_world(page_sizes={"ccld": 3, "balance": 2}) as w:
        symbols = ["034220", "015760", "011200", "010140", "024110"]
        for i, s in enumerate(symbols):
            await w.broker.place(
                w.account, PlaceRequest(f"p{i}", s, Side.BUY, OrderType.MARKET, 1, None)
            )
        await w.settle(
            lambda: all(o.remaining == 0 for o in w.fake.orders(ACCOUNT)), "all five to fill"
        )
        inst = w.fake.market.instrument(CHEAP)
        assert inst is not None
        lower, _ = krx.price_limits(inst.base_price, inst.kind)
        for i in range(3):
            await w.broker.place(
                w.account, PlaceRequest(f"r{i}", CHEAP, Side.BUY, OrderType.LIMIT, 1, lower)
            )
        calls = w.fake.paths["inquire-daily-ccld"]
        reports = await w.broker.order_reports(w.account, today().date())
        assert len(reports) == 8 and w.fake.paths["inquire-daily-ccld"] - calls == 3
        bal = await w.broker.balance(w.account)
        assert sorted(p.symbol for p in bal.positions) == sorted(symbols)
        # Orders the adapter never saw placed (a restart) are found for cancelling.
        fresh = KisBroker(SystemClock(), w.store)
        await fresh.start()
        try:
            opened = await fresh.open_orders(w.account)
            assert len(opened) == 3 and w.fake.paths["inquire-psbl-rvsecncl"] == 1
            await fresh.cancel(w.account, opened[0].broker_order_id, CHEAP, 1)
        finally:
            await fresh.stop()
        assert sum(1 for o in w.fake.orders(ACCOUNT) if o.working) == 2


async def test_mock_accounts_use_mock_tr_ids_and_avoid_what_mock_lacks() -> None:
    async with kis_world(env="mock") as w:
        ack = await w.broker.place(
            w.account, PlaceRequest("m1", CHEAP, Side.BUY, OrderType.LIMIT, 1, 10_000)
        )
        assert ack.broker_order_id.isdigit()
        # A restarted adapter finds the branch number without inquire-psbl-rvsecncl. (Its
        # first call may meet the old adapter's last one inside the 1/s window: the query is
        # then refused with EGW00201 and asked again, which is safe for a query.)
        await w.broker.stop()
        fresh = KisBroker(SystemClock(), w.store)
        await fresh.start()
        try:
            await fresh.cancel(w.account, ack.broker_order_id, CHEAP, 1)
        finally:
            await fresh.stop()
        assert w.fake.paths["inquire-psbl-rvsecncl"] == 0
        assert w.fake.paths["inquire-daily-ccld"] >= 1
        assert not any(o.working for o in w.fake.orders(ACCOUNT))


async def test_realtime_limits_one_session_per_key_and_41_registrations() -> None:
    async with kis_world() as w:
        key = w.broker.key(w.account)
        symbols = [i.symbol for i in w.fake.universe.instruments][:42]
        sock = key.socket
        sock.max_registrations = 99  # let the server, not the client, enforce the cap
        for s in symbols[:41]:
            await sock.register("H0STCNT0", s, owner="t")
        with pytest.raises(KisRealtimeError) as e:
            await sock.register("H0STCNT0", symbols[41], owner="t")
        assert e.value.code == "OPSP0008"
        assert w.fake.session_registrations(KEY) == 41
        # A second approval key within the second would be refused (1/s per key): not what
        # this test is about.
        w.fake.approval_interval = 0.0
        other = KisSocket("dup", w.fake.ws_url, key.client.tokens.approval_key)
        try:
            with pytest.raises(KisRealtimeError) as e:
                await other.register("H0STCNT0", symbols[0], owner="t2")
            assert e.value.code == "OPSP8996"
        finally:
            await other.close()
        assert w.fake.ws_refused[KEY] == 1 and w.fake.open_sessions == 1


async def test_notices_are_restored_after_a_websocket_drop() -> None:
    async with kis_world() as w:
        await w.broker.attach(w.account)
        await w.notices_ready()
        key = w.broker.key(w.account)
        assert w.fake.drop_sessions() == 1

        async def reregistered() -> bool:
            return key.socket.connects >= 2 and key.socket.registrations == 1

        await eventually(reregistered, 10, "notices to be re-registered")
        await w.broker.place(
            w.account, PlaceRequest("after", CHEAP, Side.BUY, OrderType.MARKET, 5, None)
        )
        await w.settle(
            lambda: sum(e.fill.qty for _, e in w.events if isinstance(e, FillEvent)) == 5,
            "fill notices after the reconnect",
        )


async def test_pingpong_is_answered() -> None:
    async with kis_world(ping_interval=0.05) as w:
        await w.broker.attach(w.account)
        await w.notices_ready()
        key = w.broker.key(w.account)

        async def answered() -> bool:
            return w.fake.pongs >= 3

        await eventually(answered, 10, "PINGPONG to be answered")
        assert key.socket.pings >= 3 and key.socket.connects == 1


async def test_a_wrong_hts_id_is_refused_once_and_reported_by_the_connection_test() -> None:
    async with kis_world() as w:
        account = account_ref(w.fake, hts_id="nobody")
        await w.broker.attach(account)
        key = w.broker.key(account)

        async def refused() -> bool:
            return bool(key.socket.refused)

        await eventually(refused, 10, "the refusal")
        ((_, (code, _msg)),) = key.socket.refused.items()
        assert code == "OPSP0019" and not key.socket.persistent
        summary = await w.broker.test_connection(account)
        assert "체결통보 거부됨" in summary and "OPSP0019" in summary
        assert key.socket.connects == 1  # no retry storm


async def test_orders_queued_too_long_behind_a_slow_key_are_handed_back_unsent() -> None:
    async with kis_world(env="mock", broker_kw={"options": KisOptions(command_wait=0.3)}) as w:
        await w.broker.balance(w.account)
        results = await asyncio.gather(
            *(
                w.broker.place(
                    w.account, PlaceRequest(f"q{i}", CHEAP, Side.BUY, OrderType.LIMIT, 1, 10_000)
                )
                for i in range(3)
            ),
            return_exceptions=True,
        )
        busy = [r for r in results if isinstance(r, BrokerNotProcessed)]
        assert busy and {b.code for b in busy} == {"kis.busy"}
        assert len(w.fake.orders(ACCOUNT)) == 3 - len(busy)
        assert w.fake.rate_limited[KEY] == 0


async def test_latency_and_error_rate_knobs() -> None:
    async with kis_world(broker_kw={"options": KisOptions(timeout=0.3)}) as w:
        await w.broker.balance(w.account)
        w.fake.faults.latency = 1.0
        with pytest.raises(BrokerError) as e:
            await w.broker.balance(w.account)
        assert e.value.code == "kis.no_answer"
        w.fake.faults.latency = 0.0
        w.fake.faults.error_rate = 1.0
        with pytest.raises(BrokerOutcomeUnknown):
            await w.broker.place(
                w.account, PlaceRequest("e", CHEAP, Side.BUY, OrderType.MARKET, 1, None)
            )
        assert w.fake.orders(ACCOUNT) == []


async def test_after_a_restart_only_new_executions_are_delivered() -> None:
    async with kis_world() as w:
        await w.broker.place(
            w.account, PlaceRequest("big", CHEAP, Side.BUY, OrderType.MARKET, 3000, None)
        )
        (order,) = w.fake.orders(ACCOUNT)
        before = order.filled
        assert 0 < before < 3000
        await w.broker.stop()
        # The new process learns the order from the report, then hears only what follows.
        fresh = KisBroker(SystemClock(), w.store)
        got: list[FillEvent] = []

        async def sink(account_id: int, event: object) -> None:
            if isinstance(event, FillEvent):
                got.append(event)

        fresh.set_event_sink(sink)
        await fresh.start()
        try:
            await fresh.attach(w.account)
            key = fresh.key(w.account)
            for _ in range(1000):
                if key.socket.registrations:
                    break
                await asyncio.sleep(0.01)
            (rep,) = await fresh.order_reports(w.account, today().date())
            assert rep.filled_qty == before and rep.client_order_id is None
            for _ in range(400):
                await fresh.drain()
                if order.remaining == 0:
                    break
                w.fake.pump(25)
                await asyncio.sleep(0.005)
            await fresh.drain()
            assert order.remaining == 0
            assert sum(e.fill.qty for e in got) == 3000 - before
            assert all(e.fill.broker_order_id == str(order.odno) for e in got)
        finally:
            await fresh.stop()
