"""Real money follows the KRX calendar, whatever HOGA_MARKET_MODE says (issue 11: demo mode with
a linked real account sent an order to the broker at 20:55 KST).

The check sits where orders are accepted (the risk gate, per account) *and* where they are sent
(the dispatcher's gate, per account), so an order accepted in the session that is still queued
when the session ends waits instead of going out.

The KIS fake is reached at ``0.0.0.0``: Linux connects that to this machine, but unlike
``127.0.0.1`` it is not a loopback address, so hoga treats the account as real money rather
than as a local sandbox.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

from hoga.app import HogaApp
from hoga.domain.clock import KST, ManualClock
from hoga.execution.gate import real_money
from hoga.fakes.kis import KisFakeAccount
from tests.broker_support import fund
from tests.helpers import Harness, eventually, make_settings, running
from tests.kis_support import ACCOUNT, KEY, SECRET, kis_fake

CHEAP = "034220"
EVENING = datetime(2026, 11, 26, 20, 55, tzinfo=KST)  # a Thursday, KRX closed since 15:30
MORNING = datetime(2026, 11, 26, 10, 0, tzinfo=KST)


async def _link_real(h: Harness, headers: dict[str, str], port: int) -> int:
    r = await h.http.post(
        "/api/broker-accounts",
        headers=headers,
        json={
            "broker": "kis",
            "env": "real",
            "account_no": ACCOUNT,
            "app_key": KEY,
            "app_secret": SECRET,
            "base_url": f"http://0.0.0.0:{port}",
        },
    )
    assert r.status_code == 201, r.text
    account_id: int = r.json()["id"]
    return account_id


def _limit(account_id: int | None = None, **kw: Any) -> dict[str, Any]:
    body = {"symbol": CHEAP, "side": "buy", "type": "limit", "qty": 1, "price": 12_000, **kw}
    if account_id is not None:
        body["account_id"] = account_id
    return body


def test_a_loopback_broker_is_a_sandbox_and_anything_else_is_real_money() -> None:
    assert real_money("kis", "real", None)
    assert real_money("kiwoom", "real", "https://api.kiwoom.com")
    assert real_money("kis", "real", "http://0.0.0.0:9443")
    assert real_money("kis", "real", "http://broker.example:9443")
    assert not real_money("kis", "real", "http://127.0.0.1:9443")
    assert not real_money("kis", "real", "http://localhost:9443")
    assert not real_money("kiwoom", "real", "http://[::1]:9443")
    assert not real_money("kis", "mock", None)
    assert not real_money("paper", "real", None)


async def test_demo_server_refuses_and_holds_real_money_orders_outside_the_session(
    tmp_path: Path, sqlite_url: str
) -> None:
    clock = ManualClock(MORNING)
    accounts = [KisFakeAccount(ACCOUNT, KEY, SECRET)]
    async with (
        kis_fake("real", accounts) as fake,
        running(tmp_path, sqlite_url, clock=clock, market_mode="demo") as h,
    ):
        port = int(fake.base_url.rsplit(":", 1)[1])
        kim = await h.user("kim", "premium")
        acct = await _link_real(h, kim, port)
        await fund(h.hoga, await h.me(kim), acct, 10_000_000)

        # 10:00, in the session: a real-money order goes out.
        r = await h.http.post("/api/orders", headers=kim, json=_limit(acct))
        assert r.status_code == 202, r.text
        await eventually(
            lambda: _true(len(fake.orders(ACCOUNT)) == 1), within=30.0, what="the first order"
        )
        # Another is accepted at 10:00 while the server is paused, so it is still queued...
        await h.hoga.control.set(True, reason="test", by="test")
        r = await h.http.post("/api/orders", headers=kim, json=_limit(acct, qty=2))
        assert r.status_code == 202, r.text
        order_id = r.json()["id"]

        clock.set(EVENING)
        kim = await h.login("kim")
        # 20:55: demo mode still trades the paper account...
        r = await h.http.post("/api/orders", headers=kim, json=_limit())
        assert r.status_code == 202, r.text
        # ...but refuses the real one where orders are accepted...
        r = await h.http.post("/api/orders", headers=kim, json=_limit(acct))
        assert r.status_code == 422, r.text
        assert r.json()["error"]["code"] == "risk.market_closed"
        # ...and holds the one accepted in the session where orders are sent.
        await h.hoga.control.set(False, reason="", by="test")

        async def held_for_the_market() -> bool:
            h.hoga.dispatcher.wake_all()
            hold = h.hoga.dispatcher.held.get(acct)
            return hold is not None and hold.code == "market.closed"

        await eventually(held_for_the_market, what="the real account held for the calendar")
        order = await h.order(kim, order_id)
        assert order["status"] == "QUEUED"
        assert order["waiting"]["code"] == "market.closed"
        assert len(fake.orders(ACCOUNT)) == 1


async def _true(value: bool) -> bool:
    return value


async def test_a_broker_feed_makes_demo_mode_follow_the_calendar(tmp_path: Path) -> None:
    settings = make_settings(
        tmp_path, f"sqlite+aiosqlite:///{tmp_path / 'h.db'}", feed="kis", market_mode="demo"
    )
    hoga = HogaApp(settings, clock=ManualClock(EVENING), drive_feed=False)
    assert hoga.market_mode == "calendar"
    assert hoga.market_open() is False
    paper_settings = make_settings(tmp_path, f"sqlite+aiosqlite:///{tmp_path / 'p.db'}")
    paper = HogaApp(paper_settings, clock=ManualClock(EVENING), drive_feed=False)
    assert paper.market_mode == "demo" and paper.market_open() is True
