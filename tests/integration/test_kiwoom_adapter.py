"""The Kiwoom adapter against the Kiwoom fake over loopback HTTP and WebSocket."""

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
    MemoryTokenStore,
    ModifyRequest,
    PlaceRequest,
)
from hoga.brokers.kiwoom import RealtimeOptions, Timeouts
from hoga.domain import krx
from hoga.domain.clock import KST, ManualClock
from hoga.domain.orders import OrderStatus, OrderType, Side
from hoga.fakes import FakeAccount
from hoga.fakes.kiwoom import KiwoomFake
from tests.helpers import eventually, free_port
from tests.kiwoom_support import (
    ACCOUNT_NO,
    APP_KEY,
    APP_KEY_2,
    APP_SECRET,
    APP_SECRET_2,
    account_ref,
    attached,
    kiwoom_adapter,
    kiwoom_fake,
    traded,
)

SYMBOL = "005930"


def buy(qty: int, price: int | None = None, cid: str = "c1", symbol: str = SYMBOL) -> PlaceRequest:
    kind = OrderType.LIMIT if price else OrderType.MARKET
    return PlaceRequest(cid, symbol, Side.BUY, kind, qty, price)


def resting_price(fake: KiwoomFake, symbol: str = SYMBOL, below: float = 0.9) -> int:
    inst = fake.market.instrument(symbol)
    assert inst is not None
    return krx.round_to_tick(int(inst.base_price * below), inst.kind)


# ------------------------------------------------------------------ connection test


async def test_connection_issues_a_token_checks_the_account_and_reports_cash() -> None:
    async with kiwoom_fake() as fake, kiwoom_adapter() as (broker, _):
        summary = await broker.test_connection(account_ref(fake))
        assert "연결 정상" in summary and "1,000,000,000원" in summary
        assert ACCOUNT_NO not in summary  # the account number is masked
        client = broker.client(account_ref(fake))
        for obj in (broker, client, client.tokens, vars(client), vars(client.tokens)):
            text = repr(obj)
            assert APP_SECRET not in text and APP_KEY not in text
            assert fake.current_token(APP_KEY) not in text
        assert fake.stats[APP_KEY].tokens_issued == 1
        assert fake.stats[APP_KEY].api_ids["ka00001"] == 1


@pytest.mark.parametrize(
    ("kw", "code", "words"),
    [
        ({"key": "NOSUCHKEY0000000"}, "kiwoom.8001", "8001"),
        ({"secret": "wrong-secret-0000000"}, "kiwoom.8002", "8002"),
        ({"account_no": "50999999-01"}, "kiwoom.account_mismatch", "계좌"),
    ],
)
async def test_bad_credentials_are_named_with_the_brokers_code(
    kw: dict[str, str], code: str, words: str
) -> None:
    async with kiwoom_fake() as fake, kiwoom_adapter() as (broker, _):
        ref = account_ref(fake, **kw)
        with pytest.raises(BrokerAuthError) as err:
            await broker.test_connection(ref)
        assert err.value.code == code
        assert words in err.value.message and "키움" in err.value.message
        assert APP_SECRET not in str(err.value) and APP_SECRET not in repr(err.value.args)
        # An order with the same credentials is refused before anything is sent.
        with pytest.raises(BrokerRejected) as order_err:
            await broker.place(ref, buy(1))
        assert order_err.value.code == code
        assert fake.exchange.orders == {}


async def test_a_real_key_on_the_mock_host_is_8030() -> None:
    async with kiwoom_fake() as fake, kiwoom_adapter() as (broker, _):
        fake.add_account(
            FakeAccount("5055555501", "REALKEY00000001", "REALSECRET000000001"), env="real"
        )
        ref = account_ref(fake, key="REALKEY00000001", secret="REALSECRET000000001")
        ref = ref.__class__(**{**_fields(ref), "account_no": "5055555501"})
        with pytest.raises(BrokerAuthError) as err:
            await broker.test_connection(ref)
        assert err.value.code == "kiwoom.8030"
        assert "실전/모의" in err.value.message


def _fields(ref: object) -> dict[str, object]:
    return {name: getattr(ref, name) for name in ref.__slots__}  # type: ignore[attr-defined]


async def test_an_unreachable_host_means_not_sent() -> None:
    async with kiwoom_fake() as fake, kiwoom_adapter() as (broker, _):
        ref = account_ref(fake)
        closed = ref.__class__(**{**_fields(ref), "base_url": f"http://127.0.0.1:{free_port()}"})
        with pytest.raises(BrokerRejected) as err:
            await broker.place(closed, buy(1))
        assert err.value.code == "kiwoom.unreachable"


# ------------------------------------------------------------------ orders


async def test_place_partial_fills_and_reports() -> None:
    async with kiwoom_fake() as fake, kiwoom_adapter() as (broker, sink):
        ref = account_ref(fake)
        await attached(broker, ref)
        tick = await traded(fake, SYMBOL)
        # Far more than one tick's displayed size: it fills in parts as the market trades.
        ack = await broker.place(ref, buy(3000, tick.ask, cid="big-1"))
        assert ack.broker_order_id.endswith("-0000001")

        async def two_fills() -> bool:
            if len(sink.fills(ack.broker_order_id)) < 2:
                fake.pump(20)
                return False
            return True

        await eventually(two_fills, 10.0, "at least two partial fills")
        await broker.drain()
        fills = sink.fills(ack.broker_order_id)
        assert all(f.fill.qty > 0 and f.fill.price > 0 for f in fills)
        assert len({f.fill.fill_id for f in fills}) == len(fills)
        filled = sum(f.fill.qty for f in fills)
        assert 0 < filled <= 3000
        (accepted, *_) = sink.updates(ack.broker_order_id)
        assert accepted.report.status == OrderStatus.ACCEPTED

        today = broker._tracker(ref).today()
        reports = await broker.order_reports(ref, today)
        (rep,) = [r for r in reports if r.broker_order_id == ack.broker_order_id]
        order = fake.exchange.orders["0000001"]
        assert rep.filled_qty == order.filled
        assert rep.status == (
            OrderStatus.FILLED if order.remaining == 0 else OrderStatus.PARTIALLY_FILLED
        )
        assert rep.client_order_id == "big-1"
        reported = await broker.fill_reports(ref, today)
        assert sum(f.qty for f in reported if f.broker_order_id == ack.broker_order_id) == (
            order.filled
        )
        # Positions: the A-prefixed, zero-padded balance rows parse to hoga's terms.
        (pos,) = await broker.position_reports(ref)
        assert pos.symbol == SYMBOL and pos.qty == order.filled
        bal = await broker.balance(ref)
        book = fake.exchange.books[ACCOUNT_NO]
        assert bal.cash == book.cash and bal.orderable == fake.exchange.orderable(book)


async def test_modify_gets_a_new_number_and_cancel_ends_the_chain() -> None:
    async with kiwoom_fake() as fake, kiwoom_adapter() as (broker, sink):
        ref = account_ref(fake)
        await attached(broker, ref)
        await traded(fake, SYMBOL)
        low = resting_price(fake, below=0.8)
        ack = await broker.place(ref, buy(10, low, cid="mod-1"))
        higher = krx.step_price(low, 2)
        new = await broker.modify(
            ref,
            ModifyRequest(
                ack.broker_order_id, SYMBOL, Side.BUY, OrderType.LIMIT, 10, low, 10, higher
            ),
        )
        assert new.broker_order_id == ack.broker_order_id
        assert new.modify_order_no is not None and new.modify_order_no.endswith("-0000002")
        assert fake.exchange.orders["0000002"].orig == "0000001"

        today = broker._tracker(ref).today()
        (rep,) = await broker.order_reports(ref, today)
        # The report speaks of the order hoga placed, at its new price.
        assert rep.broker_order_id == ack.broker_order_id
        assert (rep.price, rep.status, rep.client_order_id) == (
            higher,
            OrderStatus.ACCEPTED,
            "mod-1",
        )

        # Cancelling by hoga's (root) id reaches the modified order.
        await broker.cancel(ref, ack.broker_order_id, SYMBOL, 10)
        assert fake.exchange.orders["0000003"].orig == "0000002"

        async def cancelled() -> bool:
            return any(
                u.report.status == OrderStatus.CANCELLED for u in sink.updates(ack.broker_order_id)
            )

        await eventually(cancelled, 5.0, "the cancel confirmation")
        (rep,) = await broker.order_reports(ref, today)
        assert rep.status == OrderStatus.CANCELLED
        assert fake.exchange.orderable(fake.exchange.books[ACCOUNT_NO]) == 1_000_000_000


async def test_after_a_restart_a_cancel_finds_the_modified_order() -> None:
    async with kiwoom_fake() as fake:
        async with kiwoom_adapter() as (before, _):
            ref = account_ref(fake)
            await traded(fake, SYMBOL)
            low = resting_price(fake, below=0.8)
            ack = await before.place(ref, buy(4, low, cid="r-1"))
            await before.modify(
                ref,
                ModifyRequest(
                    ack.broker_order_id,
                    SYMBOL,
                    Side.BUY,
                    OrderType.LIMIT,
                    4,
                    low,
                    4,
                    krx.step_price(low, 1),
                ),
            )
        async with kiwoom_adapter() as (after, _):
            # A fresh process knows only hoga's id, i.e. the original number.
            await after.cancel(ref, ack.broker_order_id, SYMBOL, 4)
            cancel = fake.exchange.orders["0000003"]
            assert (cancel.kind, cancel.orig) == ("cancel", "0000002")
            assert not fake.exchange.orders["0000002"].working
            (rep,) = await after.order_reports(ref, after._tracker(ref).today())
            assert rep.broker_order_id == ack.broker_order_id
            assert rep.status == OrderStatus.CANCELLED


async def test_business_rejections_carry_the_code_and_message() -> None:
    async with kiwoom_fake() as fake, kiwoom_adapter() as (broker, _):
        ref = account_ref(fake)
        tick = await traded(fake, SYMBOL)
        with pytest.raises(BrokerRejected) as err:
            await broker.place(ref, buy(1_000_000, tick.ask))
        assert err.value.code == "kiwoom.855056"
        assert "매수증거금이 부족합니다" in err.value.message and "주 매수가능" in err.value.message
        with pytest.raises(BrokerRejected) as err:
            await broker.place(
                ref, PlaceRequest("s1", SYMBOL, Side.SELL, OrderType.LIMIT, 1, tick.bid)
            )
        assert err.value.code == "kiwoom.800033"
        with pytest.raises(BrokerRejected) as err:
            await broker.place(ref, buy(1, tick.ask + 1))
        assert err.value.code == "kiwoom.900001"  # off the tick grid (the fake's own code)
        with pytest.raises(BrokerRejected) as err:
            await broker.modify(
                ref,
                ModifyRequest(
                    "0009999", SYMBOL, Side.BUY, OrderType.LIMIT, 1, tick.bid, 1, tick.ask
                ),
            )
        assert err.value.code == "kiwoom.900004"
        assert fake.exchange.orders == {}


async def test_reports_follow_continuation_headers_across_small_pages() -> None:
    async with kiwoom_fake(page_size=3) as fake, kiwoom_adapter() as (broker, _):
        ref = account_ref(fake)
        await traded(fake, SYMBOL)
        low = resting_price(fake, below=0.85)
        for i in range(8):
            await broker.place(ref, buy(1, krx.step_price(low, -i), cid=f"p{i}"))
        reports = await broker.order_reports(ref, broker._tracker(ref).today())
        assert len(reports) == 8
        assert {r.client_order_id for r in reports} == {f"p{i}" for i in range(8)}
        assert fake.stats[APP_KEY].api_ids["ka10075"] == 3  # 3 + 3 + 2 rows


async def test_quote_parses_signed_prices() -> None:
    async with kiwoom_fake() as fake, kiwoom_adapter() as (broker, _):
        ref = account_ref(fake)
        tick = await traded(fake, SYMBOL)
        q = await broker.quote(ref, SYMBOL)
        assert (q.symbol, q.price, q.base_price) == (SYMBOL, tick.price, tick.base_price)


# ------------------------------------------------------------------ tokens


async def test_a_restart_reuses_the_stored_token() -> None:
    store = MemoryTokenStore()
    async with kiwoom_fake() as fake:
        async with kiwoom_adapter(store=store) as (first, _):
            await first.test_connection(account_ref(fake))
        async with kiwoom_adapter(store=store) as (second, _):
            ref = account_ref(fake)
            await second.test_connection(ref)
            assert second.client(ref).tokens.reused == 1
            assert second.client(ref).tokens.issued == 0
        assert fake.stats[APP_KEY].tokens_issued == 1


async def test_the_token_is_renewed_before_its_expires_dt() -> None:
    clock = ManualClock(datetime.now(KST))
    async with (
        kiwoom_fake(clock=clock, token_ttl=3600) as fake,
        kiwoom_adapter(clock=clock) as (broker, _),
    ):
        ref = account_ref(fake)
        await broker.balance(ref)
        keeper = broker.client(ref).tokens
        # expires_dt (YYYYMMDDHHMMSS, KST) read back to the second.
        assert abs(keeper.expires_at - (clock.time() + 3600)) < 1.5
        clock.advance(3600 - 700)  # outside the 600 s renewal margin: the token is kept
        await broker.balance(ref)
        assert fake.stats[APP_KEY].tokens_issued == 1
        clock.advance(200)  # inside the margin: renewed before Kiwoom would refuse it
        await broker.balance(ref)
        assert fake.stats[APP_KEY].tokens_issued == 2
        assert broker.client(ref).retried_token == 0


async def test_concurrent_callers_share_one_token_issue() -> None:
    async with kiwoom_fake() as fake, kiwoom_adapter() as (broker, _):
        ref = account_ref(fake)
        await asyncio.gather(*(broker.balance(ref) for _ in range(6)))
        assert fake.stats[APP_KEY].tokens_issued == 1


@pytest.mark.parametrize("envelope", ["embedded", "direct"])
async def test_8005_reissues_once_and_retries(envelope: str) -> None:
    async with kiwoom_fake() as fake, kiwoom_adapter() as (broker, _):
        fake.faults.auth_envelope = envelope
        ref = account_ref(fake)
        await broker.test_connection(ref)
        fake.invalidate_tokens(APP_KEY)
        tick = await traded(fake, SYMBOL)
        ack = await broker.place(ref, buy(1, tick.ask))
        assert ack.broker_order_id
        assert fake.stats[APP_KEY].tokens_issued == 2
        assert broker.client(ref).retried_token == 1
        assert len(fake.exchange.orders) == 1


async def test_another_process_issuing_a_token_is_survived() -> None:
    async with (
        kiwoom_fake() as fake,
        kiwoom_adapter() as (mine, _),
        kiwoom_adapter() as (other, _),
    ):
        ref = account_ref(fake)
        await mine.balance(ref)
        await other.balance(ref)  # a new token: mine is now invalid at Kiwoom
        await mine.balance(ref)
        assert fake.stats[APP_KEY].tokens_issued == 3
        assert mine.client(ref).retried_token == 1


async def test_8005_twice_is_not_retried_blindly() -> None:
    async with kiwoom_fake() as fake, kiwoom_adapter() as (broker, _):
        ref = account_ref(fake)
        await broker.balance(ref)
        before = fake.stats[APP_KEY].requests
        fake.inject("token_invalid", count=2)
        with pytest.raises(BrokerRejected) as err:
            await broker.place(ref, buy(1))
        assert err.value.code == "kiwoom.8005"
        # The failed order, one token issue, one retry - and no more.
        assert fake.stats[APP_KEY].requests - before == 3
        assert fake.exchange.orders == {}


# ------------------------------------------------------------------ throttling and faults


@pytest.mark.parametrize("envelope", ["429", "200"])
async def test_1700_is_not_processed(envelope: str) -> None:
    async with kiwoom_fake() as fake, kiwoom_adapter() as (broker, _):
        fake.faults.throttle_envelope = envelope
        ref = account_ref(fake)
        fake.inject("throttle", api_ids={"kt10000"})
        with pytest.raises(BrokerNotProcessed) as err:
            await broker.place(ref, buy(1))
        assert err.value.code == "kiwoom.1700"
        assert err.value.retry_after > 0
        assert fake.exchange.orders == {}


@pytest.mark.parametrize(
    ("fault", "booked"),
    [
        ("timeout", True),
        ("drop", True),
        ("truncated", True),
        ("malformed", True),
        ("http500_after", True),
        ("http500", False),
        ("drop_before", False),
    ],
)
async def test_doubtful_order_answers_are_unknown_never_resent(fault: str, booked: bool) -> None:
    async with (
        kiwoom_fake() as fake,
        kiwoom_adapter(timeouts=Timeouts(order=0.5, query=5.0)) as (broker, _),
    ):
        ref = account_ref(fake)
        tick = await traded(fake, SYMBOL)
        await broker.balance(ref)
        fake.inject(fault, api_ids={"kt10000"})
        before = fake.stats[APP_KEY].api_ids["kt10000"]
        with pytest.raises(BrokerOutcomeUnknown):
            await broker.place(ref, buy(1, resting_price(fake), cid="doubt"))
        assert fake.stats[APP_KEY].api_ids["kt10000"] - before == 1  # sent exactly once
        assert (len(fake.exchange.orders) == 1) is booked
        del tick


async def test_doubtful_query_answers_are_plain_errors() -> None:
    async with kiwoom_fake() as fake, kiwoom_adapter() as (broker, _):
        ref = account_ref(fake)
        await broker.balance(ref)
        for fault in ("malformed", "truncated", "http500"):
            fake.inject(fault, api_ids={"kt00001"})
            with pytest.raises(BrokerError) as err:
                await broker.balance(ref)
            assert not isinstance(err.value, BrokerOutcomeUnknown)
            assert err.value.code.startswith("kiwoom.")


async def test_the_adapter_paces_itself_inside_the_keys_budget() -> None:
    async with kiwoom_fake(rate=5.0) as fake, kiwoom_adapter(rate=5.0) as (broker, _):
        ref = account_ref(fake)
        await asyncio.gather(*(broker.balance(ref) for _ in range(8)))
        st = fake.stats[APP_KEY]
        assert st.rate_limited == 0
        assert st.requests == 1 + 8 * 2  # token + (kt00001 + kt00018) each
        assert st.max_in_window(1.0) <= 5


# ------------------------------------------------------------------ realtime


async def test_execution_stream_registers_types_00_and_04_and_echoes_pings() -> None:
    async with kiwoom_fake() as fake, kiwoom_adapter() as (broker, _):
        fake.faults.ping_interval = 0.05
        ref = account_ref(fake)
        await attached(broker, ref)
        assert fake.registrations(APP_KEY) == {"00": {""}, "04": {""}}
        session = fake.ws_session(APP_KEY)
        assert session is not None

        async def ponged() -> bool:
            return session.pongs >= 3

        await eventually(ponged, 5.0, "pings echoed")
        assert session.bad_pongs == 0
        tick = await traded(fake, SYMBOL)
        await broker.place(ref, buy(2, tick.ask))

        async def pushed() -> bool:
            return SYMBOL in broker.pushed_balance(ref.account_id)

        await eventually(pushed, 5.0, "a type-04 balance frame")
        assert broker.pushed_balance(ref.account_id)[SYMBOL]["930"] == str(
            fake.exchange.books[ACCOUNT_NO].positions[SYMBOL].qty
        )


async def test_a_dropped_socket_reconnects_and_restores_registrations() -> None:
    async with kiwoom_fake() as fake, kiwoom_adapter() as (broker, sink):
        ref = account_ref(fake)
        await attached(broker, ref)
        rt = broker.client(ref).realtime
        assert rt is not None
        assert await fake.drop_ws(APP_KEY) == 1

        async def back() -> bool:
            return rt.logins >= 2 and fake.registrations(APP_KEY) == {"00": {""}, "04": {""}}

        await eventually(back, 5.0, "reconnection with registrations restored")
        assert fake.stats[APP_KEY].ws_logins == 2
        tick = await traded(fake, SYMBOL)
        ack = await broker.place(ref, buy(1, tick.ask))

        async def event() -> bool:
            return bool(sink.updates(ack.broker_order_id))

        await eventually(event, 5.0, "events after the reconnect")


async def test_another_session_taking_the_key_is_handled() -> None:
    async with (
        kiwoom_fake() as fake,
        kiwoom_adapter() as (first, _),
        kiwoom_adapter(realtime=RealtimeOptions(backoff_min=0.05)) as (second, _),
    ):
        ref = account_ref(fake)
        await attached(first, ref)
        rt1 = first.client(ref).realtime
        assert rt1 is not None
        await attached(second, ref)

        async def displaced() -> bool:
            return rt1.takeovers == 1 and not rt1.connected.is_set()

        await eventually(displaced, 5.0, "the first session to yield on R10001")
        assert fake.stats[APP_KEY].takeovers == 1
        # The first waits its takeover backoff (60 s here) instead of fighting for the key.
        assert fake.stats[APP_KEY].ws_logins == 2


async def test_each_key_has_its_own_session_budget_and_token() -> None:
    async with kiwoom_fake() as fake, kiwoom_adapter() as (broker, _):
        a = account_ref(fake, 1)
        b = account_ref(fake, 2, key=APP_KEY_2, secret=APP_SECRET_2, account_no="5098765401")
        await attached(broker, a)
        await attached(broker, b)
        assert broker.client(a) is not broker.client(b)
        assert fake.stats[APP_KEY].tokens_issued == fake.stats[APP_KEY_2].tokens_issued == 1
        await broker.detach(2)
        assert fake.registrations(APP_KEY_2) == {}
        assert fake.registrations(APP_KEY) == {"00": {""}, "04": {""}}


async def test_notices_for_an_account_number_hoga_does_not_know_are_not_delivered() -> None:
    async with kiwoom_fake() as fake, kiwoom_adapter() as (broker, sink):
        # Linked under a number that is not the key's account: commands are refused, and the
        # key's execution notices (e.g. HTS orders) are not attributed to it.
        wrong = account_ref(fake, 1, account_no="50999999-01")
        await attached(broker, wrong)
        tick = await traded(fake, SYMBOL)
        with pytest.raises(BrokerRejected) as err:
            await broker.place(wrong, buy(1, tick.ask))
        assert err.value.code == "kiwoom.account_mismatch"
        # An order placed at the broker by someone else under the key.
        book = fake.exchange.books[ACCOUNT_NO]
        fake.exchange.place(book, Side.BUY, SYMBOL, 1, tick.ask, "0")
        right = account_ref(fake, 2)
        await attached(broker, right)
        fake.exchange.place(book, Side.BUY, SYMBOL, 1, tick.ask, "0")

        async def delivered() -> bool:
            return bool(sink.events)

        await eventually(delivered, 5.0, "notices for the right account")
        await broker.drain()
        assert {account_id for account_id, _ in sink.events} == {2}


async def test_a_slow_broker_times_out_as_unknown_and_the_order_still_exists() -> None:
    async with (
        kiwoom_fake() as fake,
        kiwoom_adapter(timeouts=Timeouts(order=0.2, query=5.0)) as (broker, _),
    ):
        ref = account_ref(fake)
        await traded(fake, SYMBOL)
        await broker.balance(ref)
        fake.faults.latency = 0.6
        with pytest.raises(BrokerOutcomeUnknown) as err:
            await broker.place(ref, buy(1, resting_price(fake), cid="slow"))
        assert err.value.code == "kiwoom.no_answer"
        fake.faults.latency = 0.0

        async def booked() -> bool:
            return len(fake.exchange.orders) == 1

        await eventually(booked, 5.0, "the slow order to reach the book")
        (rep,) = await broker.order_reports(ref, broker._tracker(ref).today())
        assert rep.status == OrderStatus.ACCEPTED
        assert fake.stats[APP_KEY].api_ids["kt10000"] == 1


async def test_an_error_rate_of_one_fails_every_call_clearly() -> None:
    async with kiwoom_fake() as fake, kiwoom_adapter() as (broker, _):
        ref = account_ref(fake)
        await broker.test_connection(ref)
        fake.faults.error_rate = 1.0
        with pytest.raises(BrokerError) as err:
            await broker.balance(ref)
        assert err.value.code == "kiwoom.http_500"
        with pytest.raises(BrokerOutcomeUnknown):
            await broker.place(ref, buy(1, resting_price(fake)))
        assert fake.exchange.orders == {}
