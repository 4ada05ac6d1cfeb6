"""KIS accounts on a running hoga: the order pipeline, the dispatcher's pacing, reconciliation
and the API, against the KIS fake over loopback (SQLite and PostgreSQL where state matters)."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest

from hoga.brokers.kis import KisBroker
from hoga.fakes.kis import KisFakeAccount
from tests.broker_support import fund
from tests.helpers import eventually, running
from tests.kis_support import (
    ACCOUNT,
    HTS,
    KEY,
    KEY2,
    SECRET,
    SECRET2,
    kis_fake,
    kis_running,
    kis_user,
    link_account,
    trade_until,
)

CHEAP = "034220"


async def test_unknown_submits_are_reconciled_to_what_the_broker_did(
    tmp_path: Path, db_url: str
) -> None:
    async with kis_running(tmp_path, db_url, submit_timeout=3.0, kis_request_timeout=1.0) as (
        fake,
        h,
    ):
        alice, _, acct = await kis_user(h, fake, "alice")

        async def status(oid: int, *want: str) -> bool:
            return (await h.state(oid))["status"] in want

        # 1. Booked at the broker, answer never comes.
        fake.faults.accept_then_timeout = 1
        o1 = await h.submit(alice, symbol=CHEAP, qty=900, account_id=acct)
        await trade_until(
            h,
            fake,
            lambda: status(o1["id"], "UNKNOWN", "PARTIALLY_FILLED", "FILLED"),
            "o1 settles or goes UNKNOWN",
        )
        # 2. Booked, then the connection drops mid-reply.
        fake.faults.drop_next = 1
        o2 = await h.submit(alice, symbol="015760", qty=700, account_id=acct)
        await trade_until(
            h,
            fake,
            lambda: status(o2["id"], "UNKNOWN", "PARTIALLY_FILLED", "FILLED"),
            "o2 goes UNKNOWN",
        )
        # 3. Refused with a bare HTTP 500 before anything was booked.
        fake.faults.http500_orders_next = 1
        o3 = await h.submit(
            alice, symbol="011200", type="limit", qty=5, price=20_000, account_id=acct
        )
        await trade_until(
            h, fake, lambda: status(o3["id"], "UNKNOWN", "REJECTED"), "o3 goes UNKNOWN"
        )
        assert len(fake.orders(ACCOUNT)) == 2  # o3 never reached the book; nothing resent

        h.hoga.reconciler.unknown_grace = 0.0

        async def settled() -> bool:
            await h.hoga.reconciler.reconcile_account(acct)
            a, b, c = [await h.state(o["id"]) for o in (o1, o2, o3)]
            return bool(
                a["status"] == "FILLED" and b["status"] == "FILLED" and c["status"] == "REJECTED"
            )

        await trade_until(h, fake, settled, "reconciliation to settle all three")
        truth = {o.symbol: o for o in fake.orders(ACCOUNT)}
        for o, qty in ((o1, 900), (o2, 700)):
            done = await h.order(alice, o["id"])
            real = truth[o["symbol"]]
            assert done["filled_qty"] == qty == real.filled
            assert done["broker_order_id"] == str(real.odno)
            assert sum(f["qty"] * f["price"] for f in done["fills"]) == real.filled_amount
        rejected = await h.order(alice, o3["id"])
        assert rejected["reason_code"] == "reconcile.not_found"
        assert len(fake.orders(ACCOUNT)) == 2
        p = (await h.http.get(f"/api/portfolio?account_id={acct}", headers=alice)).json()
        assert {x["symbol"]: x["qty"] for x in p["positions"]} == {CHEAP: 900, "015760": 700}
        result = await h.hoga.reconciler.reconcile_account(acct)
        assert result.position_mismatches == [] and result.error is None


async def test_a_burst_keeps_every_app_key_within_its_limit(
    tmp_path: Path, sqlite_url: str
) -> None:
    real_accounts = [
        KisFakeAccount(ACCOUNT, KEY, SECRET, hts_id=HTS),
        KisFakeAccount("60000000-01", KEY2, SECRET2, hts_id="second"),
    ]
    mock_key, mock_secret = "PSmockKEY" + "n" * 27, "mocksecret" + "p" * 170
    async with (
        kis_fake("real", real_accounts) as real,
        kis_fake("mock", [KisFakeAccount("70000000-01", mock_key, mock_secret)]) as mock,
        running(tmp_path, sqlite_url, global_order_rate=100, reconcile_interval=3600) as h,
    ):
        bob = await h.user("bob", "premium")
        a = (await link_account(h.http, bob, real))["id"]
        b = (
            await link_account(
                h.http,
                bob,
                real,
                account_no="60000000-01",
                key=KEY2,
                secret=SECRET2,
                hts_id="second",
            )
        )["id"]
        c = (
            await link_account(
                h.http,
                bob,
                mock,
                account_no="70000000-01",
                key=mock_key,
                secret=mock_secret,
                hts_id=None,
            )
        )["id"]
        for acct in (a, b, c):
            await fund(h.hoga, await h.me(bob), acct, 30_000_000)
        plan = [(a, 30), (b, 30), (c, 4)]
        posts = [
            h.submit(bob, symbol=CHEAP, type="limit", qty=1, price=9_000 + 10 * i, account_id=acct)
            for acct, n in plan
            for i in range(n)
        ]
        # Reports and balance queries go out while the orders do, on the same keys.
        reads = [h.http.post(f"/api/broker-accounts/{x}/test", headers=bob) for x in (a, b)]
        results = await asyncio.gather(*posts, *reads)
        assert all(r.status_code == 200 for r in results[len(posts) :])
        ids = [r["id"] for r in results[: len(posts)]]

        uid = await h.me(bob)

        async def statuses() -> set[str]:
            return {o.status.value for o in await h.hoga.orders.list_orders(uid) if o.id in ids}

        async def none_pending() -> bool:
            return not (await statuses()) & {"QUEUED", "SUBMITTING"}

        await eventually(none_pending, 30, "the burst to leave QUEUED and SUBMITTING")
        statuses_now = await statuses()
        assert statuses_now == {"ACCEPTED"}, statuses_now
        for fake, key, limit in ((real, KEY, 18), (real, KEY2, 18), (mock, mock_key, 1)):
            assert fake.rate_limited[key] == 0, (key[:8], fake.rate_limited[key])
            assert 1 <= fake.max_in_window[key] <= limit
        assert len(real.orders(ACCOUNT)) == 30 and len(mock.orders("70000000-01")) == 4


async def test_a_user_links_tests_and_trades_a_kis_mock_account(
    tmp_path: Path, db_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    seen: list[str] = []
    accounts = [KisFakeAccount(ACCOUNT, KEY, SECRET, hts_id=HTS)]
    async with kis_fake("mock", accounts) as fake, running(tmp_path, db_url) as h:
        carol = await h.user("carol", "basic")
        acct = (await link_account(h.http, carol, fake, seen=seen))["id"]
        listing = await h.http.get("/api/broker-accounts", headers=carol)
        seen.append(listing.text)
        r = await h.http.post(f"/api/broker-accounts/{acct}/test", headers=carol)
        seen.append(r.text)
        result = r.json()
        assert result["ok"] is True and result["code"] is None, result
        assert "모의" in result["message"] and "100,000,000원" in result["message"]
        # The first successful test adopts the broker's cash (and holdings) as opening books.
        assert result["opening"] == {"cash": 100_000_000, "positions": []}
        again_test = (await h.http.post(f"/api/broker-accounts/{acct}/test", headers=carol)).json()
        assert again_test["ok"] is True and "opening" not in again_test
        opening = (await h.http.get(f"/api/portfolio?account_id={acct}", headers=carol)).json()
        assert opening["cash"] == 100_000_000

        placed = await h.submit(carol, symbol=CHEAP, qty=10, account_id=acct)

        async def filled() -> bool:
            return (await h.state(placed["id"]))["status"] == "FILLED"

        await trade_until(h, fake, filled, "the KIS order to fill")
        done = await h.order(carol, placed["id"])
        (real,) = fake.orders(ACCOUNT)
        assert done["broker_order_id"] == str(real.odno) and done["filled_qty"] == 10
        assert sum(f["qty"] * f["price"] for f in done["fills"]) == real.filled_amount
        p = await h.http.get(f"/api/portfolio?account_id={acct}", headers=carol)
        seen.append(p.text)
        (pos,) = p.json()["positions"]
        assert pos["symbol"] == CHEAP and pos["qty"] == 10

        assert fake.rate_limited[KEY] == 0  # the mock key's 1/s was kept throughout
        # The token sits encrypted in the vault; a restarted adapter reuses it. (Both adapters
        # live in this one process, so the new one's first call may be paced out by KIS.)
        stored = await h.hoga.token_store.load(acct, "kis.access")
        assert stored is not None and fake.token_issues[KEY] == 1
        again = KisBroker(h.hoga.clock, h.hoga.token_store)
        await again.start()
        try:
            ref = await h.hoga.accounts.ref_for(
                (await h.http.get("/api/me", headers=carol)).json()["id"], acct
            )
            await again.test_connection(ref)
        finally:
            await again.stop()
        assert fake.token_issues[KEY] == 1 and fake.token_throttled[KEY] == 0

        # Bad input: a wrong secret is refused with KIS's own code, nothing else happens.
        bad = (
            await link_account(
                h.http,
                carol,
                fake,
                account_no="50123456-02",
                secret="nope" + "q" * 176,
                hts_id=None,
                seen=seen,
            )
        )["id"]
        r = await h.http.post(f"/api/broker-accounts/{bad}/test", headers=carol)
        seen.append(r.text)
        assert r.json()["ok"] is False and r.json()["code"] == "EGW00105"
        assert "EGW00105" in r.json()["message"]

        token = stored[0]
        everything = "\n".join(seen) + "\n" + caplog.text
        for secret in (SECRET, KEY, token, "nope" + "q" * 176):
            assert secret not in everything
