"""hoga's books end equal to the broker's: every execution booked once whatever route and id
it arrives by (live notice, report, catch-up after a restart), terminal states that say what
the broker did, costs rounded as the broker does, and reconciliation that reports cash."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hoga.domain import krx
from hoga.fakes.kis import KisFakeAccount
from hoga.store.db import Actor
from hoga.store.repos import ledger
from tests.broker_support import fund
from tests.helpers import Harness, running
from tests.kis_support import ACCOUNT, KEY, SECRET, kis_fake, link_account, trade_until
from tests.kiwoom_support import ACCOUNT_NO, kiwoom_fake, kiwoom_user, resting_buy

SYMBOL = "005930"


async def _books(h: Harness, uid: int, account_id: int) -> tuple[int, dict[str, int]]:
    async with h.hoga.db.tx(Actor.user(uid)) as conn:
        cash = await ledger.cash(conn, uid, account_id)
        assert cash == await ledger.ledger_sum(conn, uid, account_id)
        held = {p.symbol: p.qty for p in await ledger.positions(conn, uid, account_id)}
    return cash, held


async def test_kiwoom_order_executed_while_hoga_was_down_books_the_whole_of_it(
    tmp_path: Path, db_url: str
) -> None:
    """The chaos run's case: 100 of a 123-share buy executed while hoga was down; after the
    restart the first thing heard is the notice of the last 23 (cumulative 123). hoga books
    all 123 - not 23 - and the order ends FILLED with the broker's amount and cash."""
    async with kiwoom_fake() as fake:
        async with running(tmp_path, db_url, kiwoom_rate=50) as h:
            rest = await resting_buy(h, fake, qty=123, below=0.9, symbol=SYMBOL)
            headers, uid, account_id, placed = rest.headers, rest.uid, rest.account_id, rest.order
            price, inst = rest.price, rest.inst
        # hoga is down (its adapter's memory is gone); the broker executes 100 at two prices.
        (theirs,) = fake.exchange.orders.values()
        fake.exchange._fill(theirs, 60, price)
        fake.exchange._fill(theirs, 40, krx.step_price(price, -1, inst.kind))
        # Start-up reconciliation cannot read the reports, so the live notice comes first.
        fake.inject("http500", api_ids={"ka10075", "ka10076"}, count=50)
        async with running(tmp_path, db_url, kiwoom_rate=50) as h:
            headers = await h.login("kim")
            fake._faults.clear()
            fake.exchange._fill(theirs, 23, price)
            done = await h.until_status(headers, placed["id"], "FILLED")
            assert done["filled_qty"] == theirs.filled == 123
            assert sum(f["qty"] * f["price"] for f in done["fills"]) == theirs.amount
            assert done["commission"] == theirs.fee
            result = await h.hoga.reconciler.reconcile_account(account_id)
            assert result.error is None
            assert result.position_mismatches == [] and result.cash_mismatch is None
            assert result.fill_mismatches == []
            again = await h.order(headers, placed["id"])
            assert (again["status"], again["filled_qty"]) == ("FILLED", 123)
            cash, held = await _books(h, uid, account_id)
            book = fake.exchange.books[theirs.account_no]
            assert held == {SYMBOL: 123}
            assert cash == book.cash


async def test_kiwoom_order_filled_while_down_and_only_reported_converges(
    tmp_path: Path, sqlite_url: str
) -> None:
    """No notice at all after the restart: reconciliation books what the reports count, once,
    and a second round books nothing more."""
    async with kiwoom_fake() as fake:
        async with running(tmp_path, sqlite_url, kiwoom_rate=50) as h:
            rest = await resting_buy(h, fake, qty=50, below=0.9, symbol=SYMBOL)
            headers, uid, account_id, placed = rest.headers, rest.uid, rest.account_id, rest.order
            price = rest.price
            fake.exchange._fill(fake.exchange.orders[next(iter(fake.exchange.orders))], 20, price)
            await h.until_status(headers, placed["id"], "PARTIALLY_FILLED")
        (theirs,) = fake.exchange.orders.values()
        fake.faults.push_executions = False
        fake.exchange._fill(theirs, 30, price)
        async with running(tmp_path, sqlite_url, kiwoom_rate=50) as h:
            headers = await h.login("kim")
            done = await h.until_status(headers, placed["id"], "FILLED")
            assert done["filled_qty"] == 50
            for _ in range(2):
                result = await h.hoga.reconciler.reconcile_account(account_id)
                assert result.fills_booked == 0 and result.fill_mismatches == []
            assert sum(f["qty"] for f in (await h.order(headers, placed["id"]))["fills"]) == 50
            cash, held = await _books(h, uid, account_id)
            assert held == {SYMBOL: 50}
            assert cash == fake.exchange.books[theirs.account_no].cash


async def test_kis_catch_ups_cost_what_the_broker_charged_to_the_won(
    tmp_path: Path, sqlite_url: str
) -> None:
    """Without notices (no HTS id) every execution reaches hoga as a report's cumulative
    total, booked in different pieces than the broker executed them; commission and tax are
    rounded per order, so hoga's cash still equals the broker's exactly."""
    accounts = [KisFakeAccount(ACCOUNT, KEY, SECRET, cash=500_000_000)]
    async with (
        kis_fake("real", accounts) as fake,
        running(tmp_path, sqlite_url, max_order_value=400_000_000) as h,
    ):
        headers = await h.user("kay", "premium")
        uid = (await h.http.get("/api/me", headers=headers)).json()["id"]
        acct = (await link_account(h.http, headers, fake, hts_id=None))["id"]
        await fund(h.hoga, await h.me(headers), acct, 500_000_000)
        orders: list[dict[str, Any]] = []
        for side, qty in (("buy", 3_000), ("sell", 1_700)):
            if side == "sell":
                await trade_until(h, fake, lambda: _filled(h, orders[0]["id"]), "the buy to fill")
            orders.append(await h.submit(headers, side=side, qty=qty, account_id=acct))

            async def reconciled(o: dict[str, Any] = orders[-1]) -> bool:
                await h.hoga.reconciler.reconcile_account(acct)
                return await _filled(h, o["id"])

            await trade_until(h, fake, reconciled, f"the {side} to be reconciled")
        theirs = {o.side: o for o in fake.orders(ACCOUNT)}
        assert len(theirs) == 2
        cash, held = await _books(h, uid, acct)
        assert held == {SYMBOL: 1_300}
        assert cash == fake.account(ACCOUNT).cash
        result = await h.hoga.reconciler.reconcile_account(acct)
        assert result.cash_mismatch is None and result.position_mismatches == []


async def _filled(h: Harness, order_id: int) -> bool:
    return (await h.state(order_id))["status"] == "FILLED"


async def test_reconciliation_reports_a_cash_difference(tmp_path: Path, sqlite_url: str) -> None:
    async with kiwoom_fake() as fake, running(tmp_path, sqlite_url, kiwoom_rate=50) as h:
        _headers, uid, account_id = await kiwoom_user(h, fake)
        result = await h.hoga.reconciler.reconcile_account(account_id)
        assert result.cash_mismatch is None
        async with h.hoga.db.tx(Actor.user(uid)) as conn:
            await ledger.post_cash(conn, uid, account_id, 1_234, "deposit", h.hoga.clock.now())
        result = await h.hoga.reconciler.reconcile_account(account_id)
        broker = fake.exchange.books[ACCOUNT_NO].cash
        assert result.cash_mismatch == {
            "hoga": broker + 1_234,
            "broker": broker,
            "difference": 1_234,
        }
        status = h.hoga.reconciler.status()[str(account_id)]
        assert status["cash_mismatch"]["difference"] == 1_234
