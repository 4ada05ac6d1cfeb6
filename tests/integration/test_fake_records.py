"""What the broker fakes need to stand in for a real broker in a chaos run: books that survive a
restart (a journal), faults by rate from a seeded plan, and their own record of what reached
them (``/__fake__/orders``, ``/__fake__/accounts``) - in process and as ``hoga fake-broker``."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from hoga.brokers.base import BrokerOutcomeUnknown, ModifyRequest, PlaceRequest
from hoga.brokers.kis import KisOptions
from hoga.brokers.kiwoom import Timeouts
from hoga.domain import krx
from hoga.domain.clock import KST, ManualClock
from hoga.domain.orders import OrderType, Side
from hoga.fakes.faults import FaultPlan
from hoga.fakes.kis import KisFaults
from hoga.fakes.kiwoom import KiwoomFake, KiwoomFaults
from tests.helpers import eventually_sync, free_port
from tests.kis_support import ACCOUNT, HTS, KEY, SECRET, issue_token, kis_world
from tests.kiwoom_support import (
    ACCOUNT_NO,
    account_ref,
    fake_options,
    kiwoom_adapter,
    traded,
)

CHEAP = "034220"  # LG디스플레이, ~12,000 won


def _lowest(market: Any, symbol: str) -> int:
    inst = market.instrument(symbol)
    assert inst is not None
    return int(krx.price_limits(inst.base_price, inst.kind)[0])


async def _records(base_url: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    async with httpx.AsyncClient(base_url=base_url) as http:
        orders = (await http.get("/__fake__/orders")).json()["orders"]
        accounts = (await http.get("/__fake__/accounts")).json()["accounts"]
    return orders, accounts


# ------------------------------------------------------------------ journals, in process


async def test_kis_books_orders_and_numbers_survive_a_restart(tmp_path: Path) -> None:
    journal = tmp_path / "kis.jsonl"
    async with kis_world(journal=journal) as w:
        await w.broker.attach(w.account)
        filled = await w.broker.place(
            w.account, PlaceRequest("m", CHEAP, Side.BUY, OrderType.MARKET, 7, None)
        )
        await w.settle(
            lambda: w.fake.exchange.orders[int(filled.broker_order_id)].remaining == 0, "a fill"
        )
        low = _lowest(w.fake.market, CHEAP)
        resting = await w.broker.place(
            w.account, PlaceRequest("r", CHEAP, Side.BUY, OrderType.LIMIT, 4, low)
        )
        moved = await w.broker.modify(
            w.account,
            ModifyRequest(
                resting.broker_order_id,
                CHEAP,
                Side.BUY,
                OrderType.LIMIT,
                4,
                low,
                4,
                krx.step_price(low, 1),
            ),
        )
        orders, accounts = await _records(w.fake.base_url)
        port = w.fake.port
        reserved = w.fake.exchange.reserved_cash(w.fake.account(ACCOUNT))
    assert [o["kind"] for o in orders] == ["new", "new", "modify"]
    assert orders[0] == {
        **orders[0],
        "account": ACCOUNT.replace("-", ""),
        "order_no": filled.broker_order_id,
        "symbol": CHEAP,
        "side": "buy",
        "type": "market",
        "qty": 7,
        "filled": 7,
        "remaining": 0,
    }
    assert accounts[0]["positions"] == {CHEAP: {"qty": 7, "cost": orders[0]["filled_amount"]}}
    assert accounts[0]["orderable"] == accounts[0]["cash"] - reserved
    assert KEY not in journal.read_text() and SECRET not in journal.read_text()

    # A new process on the same port and journal: the same books, the resting order still
    # working, and order numbers continue instead of starting again.
    async with kis_world(journal=journal, port=port, seed=99) as w:
        assert w.fake.restored_orders == 3
        assert await _records(w.fake.base_url) == (orders, accounts)
        assert w.fake.exchange.reserved_cash(w.fake.account(ACCOUNT)) == reserved
        # hoga still names the order by its original number; the adapter finds the modify.
        await w.broker.cancel(w.account, moved.broker_order_id, CHEAP, 4)
        again = await w.broker.place(
            w.account, PlaceRequest("n", CHEAP, Side.BUY, OrderType.LIMIT, 1, low)
        )
        assert moved.modify_order_no is not None
        assert int(again.broker_order_id) == int(moved.modify_order_no) + 2
        balance = await w.broker.balance(w.account)
        assert [(p.symbol, p.qty) for p in balance.positions] == [(CHEAP, 7)]


async def test_kiwoom_books_orders_and_numbers_survive_a_restart(tmp_path: Path) -> None:
    journal = tmp_path / "kiwoom.jsonl"
    fake = KiwoomFake(fake_options(), rate=50.0, journal=journal)
    await fake.start()
    port = int(fake.base_url.rsplit(":", 1)[1])
    try:
        async with kiwoom_adapter() as (broker, _):
            ref = account_ref(fake)
            await traded(fake, CHEAP)
            filled = await broker.place(
                ref, PlaceRequest("m", CHEAP, Side.BUY, OrderType.MARKET, 5, None)
            )
            for _ in range(200):
                if fake.exchange.orders[filled.broker_order_id.split("-")[1]].remaining == 0:
                    break
                fake.pump(20)
            low = _lowest(fake.market, CHEAP)
            resting = await broker.place(
                ref, PlaceRequest("r", CHEAP, Side.BUY, OrderType.LIMIT, 3, low)
            )
            orders, accounts = await _records(fake.base_url)
            orderable = fake.exchange.orderable(fake.exchange.books[ACCOUNT_NO])
    finally:
        await fake.stop()
    assert [(o["kind"], o["qty"], o["filled"]) for o in orders] == [("new", 5, 5), ("new", 3, 0)]
    assert accounts[0]["account"] == ACCOUNT_NO
    assert accounts[0]["positions"][CHEAP]["qty"] == 5
    assert accounts[0]["orderable"] == orderable < accounts[0]["cash"]

    again = KiwoomFake(fake_options(port=port, seed=5), rate=50.0, journal=journal)
    await again.start()
    try:
        assert again.restored_orders == 2
        assert await _records(again.base_url) == (orders, accounts)
        async with kiwoom_adapter() as (broker, _):
            ref = account_ref(again)
            await broker.cancel(ref, resting.broker_order_id, CHEAP, 3)
            assert again.exchange.orderable(again.exchange.books[ACCOUNT_NO]) == accounts[0]["cash"]
            after = await broker.place(
                ref, PlaceRequest("n", CHEAP, Side.BUY, OrderType.LIMIT, 1, low)
            )
            # 0000001 and 0000002 before the restart, 0000003 the cancel: no number reused.
            assert after.broker_order_id.endswith("-0000004")
    finally:
        await again.stop()


# ------------------------------------------------------------------ fault plans, in process


@pytest.mark.parametrize(
    ("fault", "booked"),
    [("http500", False), ("drop", True), ("truncate", True), ("hang", True)],
)
async def test_kis_fault_plan_faults_are_unknown_outcomes_booked_or_not(
    fault: str, booked: bool
) -> None:
    plan = FaultPlan.parse([f"{fault}=every:2"], seed=3)
    async with kis_world(
        faults=KisFaults(plan=plan), broker_kw={"options": KisOptions(timeout=1.0)}
    ) as w:
        await w.broker.attach(w.account)
        low = _lowest(w.fake.market, CHEAP)
        first = await w.broker.place(
            w.account, PlaceRequest("a", CHEAP, Side.BUY, OrderType.LIMIT, 1, low)
        )
        assert first.broker_order_id
        with pytest.raises(BrokerOutcomeUnknown):
            await w.broker.place(
                w.account, PlaceRequest("b", CHEAP, Side.BUY, OrderType.LIMIT, 2, low)
            )
        orders, _ = await _records(w.fake.base_url)
        assert [o["qty"] for o in orders] == ([1, 2] if booked else [1])
        async with httpx.AsyncClient(base_url=w.fake.base_url) as http:
            faults = (await http.get("/__fake__/faults")).json()
        assert faults["plan"]["fired"] == {fault: 1}


@pytest.mark.parametrize(
    ("fault", "booked"),
    [("http500", False), ("drop", True), ("truncate", True), ("hang", True)],
)
async def test_kiwoom_fault_plan_faults_are_unknown_outcomes_booked_or_not(
    fault: str, booked: bool
) -> None:
    faults = KiwoomFaults(plan=FaultPlan.parse([f"{fault}=every:2"], seed=3), hold_seconds=5)
    fake = KiwoomFake(fake_options(), rate=50.0, faults=faults)
    await fake.start()
    try:
        async with kiwoom_adapter(timeouts=Timeouts(order=0.5, query=5.0)) as (broker, _):
            ref = account_ref(fake)
            await traded(fake, CHEAP)
            low = _lowest(fake.market, CHEAP)
            await broker.place(ref, PlaceRequest("a", CHEAP, Side.BUY, OrderType.LIMIT, 1, low))
            with pytest.raises(BrokerOutcomeUnknown):
                await broker.place(ref, PlaceRequest("b", CHEAP, Side.BUY, OrderType.LIMIT, 2, low))
            orders, _ = await _records(fake.base_url)
            assert [o["qty"] for o in orders] == ([1, 2] if booked else [1])
            assert fake.admin_faults()["plan"]["fired"] == {fault: 1}
            # Queries are never faulted: reconciliation can always see the truth.
            assert len(await broker.order_reports(ref, broker._tracker(ref).today())) == len(orders)
    finally:
        await fake.stop()


# ------------------------------------------------------------------ as a process, kill -9


def _spawn(args: list[str], log: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "hoga", "fake-broker", *args, "--always-open"],
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )


@contextlib.contextmanager
def _fake_process(args: list[str], log: Path, base: str, stop: int) -> Iterator[None]:
    """``hoga fake-broker`` in a process of its own, answering at ``base``; ``stop`` ends it."""
    proc = _spawn(args, log)

    def up() -> bool:
        assert proc.poll() is None, log.read_text()
        with contextlib.suppress(httpx.TransportError):
            httpx.get(f"{base}/__fake__/faults", timeout=2).raise_for_status()
            return True
        return False

    try:
        eventually_sync(up, 180, "the fake to listen")  # it builds the KRX calendar first
        yield
    finally:
        proc.send_signal(stop)
        proc.wait(10)


def _books(base: str) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The fake's orders and its accounts' books, as its control endpoints show them."""
    orders = httpx.get(f"{base}/__fake__/orders").json()["orders"]
    return orders, httpx.get(f"{base}/__fake__/accounts").json()


@pytest.mark.timeout(600)
def test_kis_fake_process_killed_keeps_its_books_and_takes_fault_knobs(tmp_path: Path) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    journal = tmp_path / "kis.jsonl"
    log = tmp_path / "fake.log"
    args = [
        "kis", "--port", str(port), "--account", ACCOUNT, "--app-key", KEY,
        "--app-secret", SECRET, "--hts-id", HTS, "--journal", str(journal), "--rate", "50",
    ]  # fmt: skip
    with _fake_process([*args, "--fault", "http500=every:2"], log, base, signal.SIGKILL):
        token = issue_token(base).json()["access_token"]
        headers = {
            "authorization": f"Bearer {token}",
            "appkey": KEY,
            "appsecret": SECRET,
            "tr_id": "VTTC0012U",
        }
        body = {
            "CANO": ACCOUNT[:8],
            "ACNT_PRDT_CD": ACCOUNT[-2:],
            "PDNO": CHEAP,
            "ORD_DVSN": "01",
            "ORD_QTY": "3",
            "ORD_UNPR": "0",
        }
        url = f"{base}/uapi/domestic-stock/v1/trading/order-cash"
        ok = httpx.post(url, headers=headers, content=json.dumps(body), timeout=5)
        assert ok.json()["rt_cd"] == "0"
        refused = httpx.post(url, headers=headers, content=json.dumps(body), timeout=5)
        assert refused.status_code == 500  # every second order request, before booking
        before = _books(base)
        assert [o["order_no"] for o in before[0]] == [ok.json()["output"]["ODNO"]]
    with _fake_process(args, log, base, signal.SIGINT):
        assert _books(base) == before
        assert httpx.get(f"{base}/__fake__/faults").json()["restored_orders"] == 1
    out = log.read_text()
    assert "faults: http500=every:2" in out and SECRET not in out


@pytest.mark.timeout(600)
def test_kiwoom_fake_process_killed_keeps_its_books(tmp_path: Path) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    journal = tmp_path / "kiwoom.jsonl"
    log = tmp_path / "fake.log"
    key, secret = "CLIKEY0000000001", "CLISECRET-hidden-0"
    args = [
        "kiwoom", "--port", str(port), "--account", "5099999901", "--app-key", key,
        "--app-secret", secret, "--journal", str(journal), "--fault", "drop=every:1",
    ]  # fmt: skip
    with _fake_process(args, log, base, signal.SIGKILL):
        token = httpx.post(
            f"{base}/oauth2/token",
            json={"grant_type": "client_credentials", "appkey": key, "secretkey": secret},
        ).json()["token"]
        with pytest.raises(httpx.TransportError):
            # Booked, then the connection closes without an answer.
            httpx.post(
                f"{base}/api/dostk/ordr",
                headers={"api-id": "kt10000", "authorization": f"Bearer {token}"},
                json={"dmst_stex_tp": "KRX", "stk_cd": CHEAP, "ord_qty": "2", "trde_tp": "3"},
                timeout=5,
            )
        before = _books(base)
        assert [(o["order_no"], o["qty"]) for o in before[0]] == [("0000001", 2)]
    with _fake_process(args, log, base, signal.SIGINT):
        assert _books(base) == before
    assert secret not in log.read_text() and secret not in journal.read_text()


# ------------------------------------------------------------------ the KRX calendar


@pytest.mark.timeout(300)
@pytest.mark.parametrize("broker", ["kis", "kiwoom"])
def test_a_fake_builds_the_krx_calendar_before_it_serves(broker: str) -> None:
    # Built lazily, the calendar froze a fake's event loop for half a minute on its first sell
    # fill (seen in the chaos run: the KIS fake stopped answering). A fresh interpreter proves
    # it is built by start(), off the event loop, before the first request.
    code = f"""
import asyncio
from hoga.domain import krx
from hoga.fakes import FakeAccount, FakeOptions
from hoga.fakes.kis import KisFake, KisFakeAccount
from hoga.fakes.kiwoom import KiwoomFake

async def main() -> None:
    assert krx._xkrx_sessions.cache_info().currsize == 0
    if {broker!r} == "kis":
        fake = KisFake(accounts=[KisFakeAccount("50123456-01", "K" * 36, "S" * 40)])
    else:
        fake = KiwoomFake(FakeOptions("kiwoom", accounts=[FakeAccount("5012345601", "K" * 16, "S" * 20)]))
    await fake.start()
    print("calendar built:", krx._xkrx_sessions.cache_info().currsize)
    await fake.stop()

asyncio.run(main())
"""
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=280, check=False
    )
    assert out.returncode == 0, out.stderr
    assert "calendar built: 1" in out.stdout


async def test_kiwoom_fake_remembers_earlier_days_orders_across_the_day_roll(
    tmp_path: Path,
) -> None:
    # Kiwoom numbers orders per day, so the fake forgets yesterday's orders in its reports -
    # but its own record of what reached it must not, or a run across midnight (KST) would
    # count yesterday's orders as never booked.
    clock = ManualClock(datetime(2026, 11, 26, 23, 59, 30, tzinfo=KST))
    journal = tmp_path / "kiwoom.jsonl"
    fake = KiwoomFake(fake_options(), rate=50.0, journal=journal, clock=clock)
    await fake.start()
    try:
        book = fake.exchange.books[ACCOUNT_NO]
        low = _lowest(fake.market, CHEAP)
        fake.exchange.place(book, Side.BUY, CHEAP, 1, low, "0")
        clock.advance(60)
        fake.exchange.place(book, Side.BUY, CHEAP, 2, low, "0")
        orders, _ = await _records(fake.base_url)
        port = int(fake.base_url.rsplit(":", 1)[1])
    finally:
        await fake.stop()
    assert [(o["day"], o["order_no"], o["qty"]) for o in orders] == [
        ("2026-11-26", "0000001", 1),
        ("2026-11-27", "0000001", 2),
    ]
    again = KiwoomFake(fake_options(port=port), rate=50.0, journal=journal, clock=clock)
    await again.start()
    try:
        assert (await _records(again.base_url))[0] == orders
        book = again.exchange.books[ACCOUNT_NO]
        assert again.exchange.place(book, Side.BUY, CHEAP, 3, low, "0").ord_no == "0000002"
        # Reports stay per day, as at Kiwoom.
        assert [r["ord_no"] for r in again.exchange.open_rows(book)] == ["0000002", "0000001"]
    finally:
        await again.stop()
