"""Orders through hoga's pipeline (risk gate, queue, dispatcher, reconciliation) to the Kiwoom
fake: the adapter is the one ``app.py`` registers."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path

import pytest

from hoga.domain import krx
from hoga.fakes import FakeAccount
from tests.helpers import eventually, running
from tests.kiwoom_support import (
    ACCOUNT_NO,
    ACCOUNT_NO_2,
    APP_KEY,
    APP_KEY_2,
    APP_SECRET_2,
    kiwoom_fake,
    kiwoom_running,
    kiwoom_user,
    link_account,
    pumping,
    resting_buy,
    traded,
)

SYMBOL = "005930"


async def test_accept_then_timeout_is_unknown_then_reconciled_to_the_fill(
    tmp_path: Path, db_url: str
) -> None:
    """The answer never comes and no execution notice either: only the reports tell."""
    async with kiwoom_running(tmp_path, db_url, submit_timeout=1.0) as (fake, h):
        headers, _, account_id = await kiwoom_user(h, fake)
        await traded(fake, SYMBOL)
        fake.faults.push_executions = False
        fake.inject("timeout", api_ids={"kt10000"})
        order = await h.submit(headers, qty=3, account_id=account_id)
        unknown = await h.until_status(headers, order["id"], "UNKNOWN", "FILLED")
        settled = await h.until_status(headers, order["id"], "FILLED")
        assert (
            any(x["status"] == "UNKNOWN" for x in settled["history"])
            or unknown["status"] == "UNKNOWN"
        )
        # Sent once, never resent: the broker has exactly one order, and hoga its fill.
        assert fake.stats[APP_KEY].api_ids["kt10000"] == 1
        assert len(fake.exchange.orders) == 1
        (theirs,) = fake.exchange.orders.values()
        assert settled["filled_qty"] == theirs.filled == 3
        assert settled["broker_order_id"].endswith(theirs.ord_no)
        assert sum(f["qty"] * f["price"] for f in settled["fills"]) == theirs.amount
        p = (await h.http.get(f"/api/portfolio?account_id={account_id}", headers=headers)).json()
        (pos,) = p["positions"]
        assert (pos["symbol"], pos["qty"]) == (SYMBOL, 3)


@pytest.mark.parametrize("fault", ["drop", "truncated", "malformed"])
async def test_a_broken_answer_is_settled_from_the_execution_stream(
    tmp_path: Path, sqlite_url: str, fault: str
) -> None:
    async with kiwoom_running(tmp_path, sqlite_url, submit_timeout=2.0) as (fake, h):
        headers, _, account_id = await kiwoom_user(h, fake)
        await traded(fake, SYMBOL)
        inst = fake.market.instrument(SYMBOL)
        assert inst is not None
        low = krx.round_to_tick(int(inst.base_price * 0.8), inst.kind)
        fake.inject(fault, api_ids={"kt10000"})
        order = await h.submit(headers, type="limit", qty=2, price=low, account_id=account_id)
        done = await h.until_status(headers, order["id"], "ACCEPTED")
        (theirs,) = fake.exchange.orders.values()
        assert done["broker_order_id"].endswith(theirs.ord_no)
        assert fake.stats[APP_KEY].api_ids["kt10000"] == 1
        # And the order is a normal one from here: it can be cancelled.
        r = await h.http.delete(f"/api/orders/{order['id']}", headers=headers)
        assert r.status_code == 202, r.text
        await h.until_status(headers, order["id"], "CANCELLED")
        assert not theirs.working


async def test_throttled_order_is_requeued_and_sent_again(tmp_path: Path, sqlite_url: str) -> None:
    async with kiwoom_running(tmp_path, sqlite_url) as (fake, h):
        headers, _, account_id = await kiwoom_user(h, fake)
        await traded(fake, SYMBOL)
        fake.inject("throttle", api_ids={"kt10000"})
        order = await h.submit(headers, qty=1, account_id=account_id)
        done = await h.until_status(headers, order["id"], "FILLED", step=pumping(fake))
        assert fake.stats[APP_KEY].forced_throttles == 1
        assert fake.stats[APP_KEY].api_ids["kt10000"] == 2
        assert any("not processed" in (x["detail"] or "") for x in done["history"])
        assert len(fake.exchange.orders) == 1


async def test_broker_rejection_reaches_the_order_with_code_and_message(
    tmp_path: Path, sqlite_url: str
) -> None:
    async with kiwoom_running(tmp_path, sqlite_url) as (fake, h):
        fake.add_account(
            FakeAccount("5011111101", "POORKEY000000001", "POORSECRET00000001", 500_000)
        )
        headers = await h.user("poor", "premium")
        uid = await h.me(headers)
        acct = await link_account(
            h.http,
            headers,
            fake,
            key="POORKEY000000001",
            secret="POORSECRET00000001",
            account_no="5011111101",
        )
        # hoga's ledger believes in more cash than the broker has: the broker refuses.
        from hoga.store.db import Actor
        from hoga.store.repos import ledger

        async with h.hoga.db.tx(Actor.user(uid)) as conn:
            await ledger.post_cash(conn, uid, acct["id"], 10_000_000, "deposit", h.hoga.clock.now())
        tick = await traded(fake, SYMBOL)
        order = await h.submit(headers, type="limit", qty=20, price=tick.ask, account_id=acct["id"])
        done = await h.until_status(headers, order["id"], "REJECTED")
        assert done["reason_code"] == "kiwoom.855056"
        assert "매수증거금이 부족합니다" in done["reason"]
        assert done["reserved_cash"] == 0
        assert fake.exchange.orders == {}


async def test_a_burst_keeps_every_key_inside_its_limit(tmp_path: Path, db_url: str) -> None:
    """Two accounts with their own keys, a burst of orders each, reports polled meanwhile:
    the fake (enforcing 5 requests/s per key) refuses nothing."""
    async with (
        kiwoom_fake(rate=5.0) as fake,
        running(tmp_path, db_url, kiwoom_rate=5) as h,
    ):
        a_headers, _, a_id = await kiwoom_user(h, fake, "kim")
        b_headers, _, b_id = await kiwoom_user(
            h, fake, "lee", key=APP_KEY_2, secret=APP_SECRET_2, account_no=ACCOUNT_NO_2
        )
        await traded(fake, SYMBOL)
        inst = fake.market.instrument(SYMBOL)
        assert inst is not None
        low = krx.round_to_tick(int(inst.base_price * 0.8), inst.kind)
        ids: list[tuple[dict[str, str], int]] = []
        for n in range(12):
            for headers, acct in ((a_headers, a_id), (b_headers, b_id)):
                o = await h.submit(
                    headers, type="limit", qty=1, price=krx.step_price(low, -n), account_id=acct
                )
                ids.append((headers, o["id"]))
        kiwoom = h.hoga.kiwoom
        refs = [
            await h.hoga.accounts.ref_for(await h.me(hd), ac)
            for hd, ac in ((a_headers, a_id), (b_headers, b_id))
        ]
        polls = asyncio.gather(*(kiwoom.balance(r) for r in refs for _ in range(3)))
        for headers, oid in ids:
            await h.until_status(headers, oid, "ACCEPTED", within=30.0)
        await polls
        for key in (APP_KEY, APP_KEY_2):
            st = fake.stats[key]
            assert st.rate_limited == 0, f"{key}: {st.rate_limited} rejected"
            assert st.max_in_window(1.0) <= 5
            assert st.api_ids["kt10000"] == 12
        assert len(fake.exchange.orders) == 24
        assert h.hoga.dispatcher.rates_for(a_id) == (5.0, True)


async def test_fills_from_the_stream_update_positions(tmp_path: Path, sqlite_url: str) -> None:
    async with kiwoom_running(tmp_path, sqlite_url, max_order_value=500_000_000) as (fake, h):
        headers, _, account_id = await kiwoom_user(h, fake)
        tick = await traded(fake, SYMBOL)
        order = await h.submit(
            headers, type="limit", qty=2000, price=tick.ask, account_id=account_id
        )
        part = await h.until_status(
            headers, order["id"], "PARTIALLY_FILLED", "FILLED", step=pumping(fake)
        )
        assert part["filled_qty"] > 0
        done = await h.until_status(headers, order["id"], "FILLED", step=pumping(fake), within=30.0)
        (theirs,) = fake.exchange.orders.values()
        assert done["filled_qty"] == theirs.filled == 2000
        assert len(done["fills"]) >= 2
        assert sum(f["qty"] * f["price"] for f in done["fills"]) == theirs.amount
        # Commission comes from domain.krx with the account's rate, rounded per order: the
        # fills' commissions add up to that of the whole amount - and to the broker's.
        fees = sum(f["commission"] for f in done["fills"])
        assert fees == krx.commission(theirs.amount, krx.DEFAULT_COMMISSION_RATE) == theirs.fee
        p = (await h.http.get(f"/api/portfolio?account_id={account_id}", headers=headers)).json()
        (pos,) = p["positions"]
        assert pos["qty"] == 2000
        assert ACCOUNT_NO not in str(p)


async def test_a_server_restart_reuses_the_vaulted_token(tmp_path: Path, db_url: str) -> None:
    """The token goes to the vault-backed store; the next start logs in with it."""
    from hoga.store import tables as t
    from hoga.store.db import SYSTEM

    async with kiwoom_fake() as fake:
        async with running(tmp_path, db_url, kiwoom_rate=50) as h:
            headers, _, account_id = await kiwoom_user(h, fake)
            r = await h.http.post(f"/api/broker-accounts/{account_id}/test", headers=headers)
            assert r.json()["ok"] is True, r.text
            token = fake.current_token(APP_KEY)
            assert token is not None
            async with h.hoga.db.tx(SYSTEM) as conn:
                (row,) = (await conn.execute(t.broker_tokens.select())).all()
            assert row.account_id == account_id and row.kind == "access"
            assert token not in row.token_enc  # encrypted at rest
        assert fake.stats[APP_KEY].tokens_issued == 1
        async with running(tmp_path, db_url, kiwoom_rate=50) as h2:
            headers = await h2.login("kim")

            async def logged_in_again() -> bool:
                return fake.stats[APP_KEY].ws_logins == 2

            # Start-up attaches the account: its realtime session logs in with the old token.
            await eventually(logged_in_again, 5.0, "the realtime login after the restart")
            r = await h2.http.post(f"/api/broker-accounts/{account_id}/test", headers=headers)
            assert r.json()["ok"] is True, r.text
        assert fake.stats[APP_KEY].tokens_issued == 1


async def test_a_modify_goes_through_the_pipeline_to_the_fake(
    tmp_path: Path, sqlite_url: str
) -> None:
    """PATCH /api/orders/{id} reaches Kiwoom as kt10002; the modified order keeps its hoga
    identity (events name the chain's root), so its executions land on the same order."""
    async with kiwoom_running(tmp_path, sqlite_url, max_order_value=500_000_000) as (fake, h):
        headers, _, account_id = await kiwoom_user(h, fake)
        tick = await traded(fake, SYMBOL)
        inst = h.hoga.quotes.instrument(SYMBOL)
        assert inst is not None
        low = krx.price_limits(inst.base_price, inst.kind)[0]
        order = await h.submit(headers, type="limit", qty=3, price=low, account_id=account_id)
        await h.until_status(headers, order["id"], "ACCEPTED", step=pumping(fake))
        higher = krx.step_price(low, 1, inst.kind)
        r = await h.http.patch(
            f"/api/orders/{order['id']}", json={"price": higher}, headers=headers
        )
        assert r.status_code == 202, r.text

        async def repriced() -> bool:
            o = await h.order(headers, order["id"])
            return o["status"] == "ACCEPTED" and o["price"] == higher

        await eventually(repriced, 15.0, "the modify confirmed")
        modifies = [o for o in fake.exchange.orders.values() if o.kind == "modify"]
        assert [(m.qty, m.price) for m in modifies] == [(3, higher)]
        # Now cross the market: the executions of the modified number fill hoga's order.
        tick = await traded(fake, SYMBOL)
        r = await h.http.patch(
            f"/api/orders/{order['id']}", json={"price": tick.ask}, headers=headers
        )
        assert r.status_code == 202, r.text
        done = await h.until_status(headers, order["id"], "FILLED", step=pumping(fake), within=30.0)
        assert done["filled_qty"] == 3 and done["reserved_cash"] == 0


@pytest.mark.parametrize("overnight", [False, True])
async def test_an_unknown_order_is_not_rejected_on_a_day_the_broker_cannot_list(
    tmp_path: Path, sqlite_url: str, overnight: bool
) -> None:
    """Kiwoom's order inquiries cover today only. An order left UNKNOWN from an earlier day
    (the server was down overnight) is absent from today's reports whether or not the broker
    took it: it must stay UNKNOWN (and be reported), not be rejected as "not found" - that
    would release cash the broker may have spent. The same order of today, missing from
    today's reports, is rejected as before."""
    from sqlalchemy import update

    from hoga.store import tables as t
    from hoga.store.db import SYSTEM

    async with kiwoom_running(tmp_path, sqlite_url, submit_timeout=1.0) as (fake, h):
        headers, _, account_id = await kiwoom_user(h, fake)
        await traded(fake, SYMBOL)
        fake.faults.push_executions = False
        fake.inject("http500", api_ids={"kt10000"})  # never booked, answer unreadable
        order = await h.submit(headers, qty=3, account_id=account_id)
        await h.until_status(headers, order["id"], "UNKNOWN")
        assert not fake.exchange.orders
        if overnight:
            today = krx.trading_date(h.hoga.clock.now())
            async with h.hoga.db.tx(SYSTEM) as conn:
                await conn.execute(
                    update(t.orders)
                    .where(t.orders.c.id == order["id"])
                    .values(trading_day=today - timedelta(days=1))
                )
        h.hoga.reconciler.unknown_grace = 0.0
        result = await h.hoga.reconciler.reconcile_account(account_id)
        after = await h.order(headers, order["id"])
        if overnight:
            assert after["status"] == "UNKNOWN", after
            assert result.unverifiable == [order["id"]] and result.not_found == 0
        else:
            assert after["status"] == "REJECTED", after
            assert after["reason_code"] == "reconcile.not_found"
            assert result.not_found == 1 and result.unverifiable == []


async def test_executions_learned_only_from_average_price_reports_leave_cash_equal(
    tmp_path: Path, sqlite_url: str
) -> None:
    """No execution notices: hoga learns a multi-price fill only from Kiwoom's reports, which
    give a truncated average price. Its books must still end equal to the broker's: shares
    exactly, cash to the won (the truncation is posted as a ``rounding`` ledger row)."""
    from sqlalchemy import select

    from hoga.store import tables as t
    from hoga.store.db import SYSTEM

    async with kiwoom_running(tmp_path, sqlite_url, submit_timeout=2.0) as (fake, h):
        headers, _, account_id = await kiwoom_user(h, fake)
        # The cheapest symbol, so an order can outgrow the best ask several times over and
        # fill at several prices, inside the tier's order-value limit.
        cheap = min(fake.market.universe.instruments, key=lambda i: i.base_price).symbol
        tick = await traded(fake, cheap)
        fake.faults.push_executions = False
        qty = max(1, min(tick.ask_size * 4, 45_000_000 // tick.price))
        order = await h.submit(headers, symbol=cheap, qty=qty, account_id=account_id)
        await h.until_status(headers, order["id"], "ACCEPTED", "PARTIALLY_FILLED", "FILLED")

        async def settled() -> bool:
            fake.pump(5)
            await h.hoga.reconciler.reconcile_account(account_id)
            return (await h.order(headers, order["id"]))["status"] == "FILLED"

        await eventually(settled, 120.0, "the order to fill and be reconciled")
        result = await h.hoga.reconciler.reconcile_account(account_id)
        (theirs,) = fake.exchange.orders.values()
        done = await h.order(headers, order["id"])
        assert done["filled_qty"] == theirs.filled == qty
        booked = sum(f["qty"] * f["price"] for f in done["fills"])
        assert 0 <= theirs.amount - booked < qty  # within the average's truncation
        assert result.cash_mismatch is None and result.position_mismatches == []
        async with h.hoga.db.tx(SYSTEM) as conn:
            hoga_cash = (
                await conn.execute(
                    select(t.broker_accounts.c.cash).where(t.broker_accounts.c.id == account_id)
                )
            ).scalar_one()
            rounding = (
                (
                    await conn.execute(
                        select(t.cash_ledger.c.amount).where(
                            t.cash_ledger.c.account_id == account_id,
                            t.cash_ledger.c.kind == "rounding",
                        )
                    )
                )
                .scalars()
                .all()
            )
        assert hoga_cash == fake.exchange.books[ACCOUNT_NO].cash
        # One rounding row when the estimate was short of the broker's amount, none if exact.
        assert len(rounding) == (0 if booked == theirs.amount else 1), (booked, theirs.amount)


async def test_a_cancel_whose_answer_is_lost_is_settled_cancelled(
    tmp_path: Path, sqlite_url: str
) -> None:
    """The cancel reaches the broker but its answer does not, nor does a notice. Kiwoom's
    reports then list the order neither as open nor as executed: reconciliation must close
    it CANCELLED, not leave it CANCEL_PENDING for good (the chaos run's stuck orders)."""
    async with kiwoom_running(tmp_path, sqlite_url, submit_timeout=1.0) as (fake, h):
        rest = await resting_buy(h, fake)
        headers, account_id, order = rest.headers, rest.account_id, rest.order
        fake.faults.push_executions = False
        fake.inject("drop", api_ids={"kt10003"})  # cancelled at the broker, answer lost
        r = await h.http.delete(f"/api/orders/{order['id']}", headers=headers)
        assert r.status_code == 202, r.text
        await h.until_status(headers, order["id"], "CANCEL_PENDING")
        original = fake.exchange.orders[next(iter(fake.exchange.orders))]

        async def cancelled_at_broker() -> bool:
            return not original.working

        await eventually(cancelled_at_broker, 15.0, "the broker to cancel it")
        # ... and hoga, with no answer and no notice, still does not know.
        assert (await h.order(headers, order["id"]))["status"] == "CANCEL_PENDING"
        h.hoga.reconciler.unknown_grace = 0.0
        await h.hoga.reconciler.reconcile_account(account_id)
        done = await h.order(headers, order["id"])
        assert done["status"] == "CANCELLED", done
        assert done["filled_qty"] == 0 and done["reserved_cash"] == 0


async def test_a_cancel_lost_before_the_broker_took_it_is_sent_again(
    tmp_path: Path, sqlite_url: str
) -> None:
    """The cancel's connection drops before the broker books it: the outcome is unknown, and
    the broker still lists the order working. Reconciliation must let the cancel go out again
    (the chaos run's CANCEL_PENDING orders stuck for minutes); never a second order."""
    async with kiwoom_running(tmp_path, sqlite_url, submit_timeout=1.0) as (fake, h):
        rest = await resting_buy(h, fake)
        headers, account_id, order = rest.headers, rest.account_id, rest.order
        fake.inject("drop_before", api_ids={"kt10003"})
        r = await h.http.delete(f"/api/orders/{order['id']}", headers=headers)
        assert r.status_code == 202, r.text

        async def cancel_tried() -> bool:
            return order["id"] in h.hoga.orders.cancels_sent

        await eventually(cancel_tried, 15.0, "the first cancel to go out")
        (original,) = fake.exchange.orders.values()
        assert original.working  # the broker never saw it
        h.hoga.reconciler.unknown_grace = 0.0

        async def cancelled() -> bool:
            await h.hoga.reconciler.reconcile_account(account_id)
            return (await h.order(headers, order["id"]))["status"] == "CANCELLED"

        await eventually(cancelled, 30.0, "the cancel to be sent again and confirmed")
        assert not original.working
        assert fake.stats[APP_KEY].api_ids["kt10000"] == 1  # one order, ever
