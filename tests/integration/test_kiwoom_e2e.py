"""End to end over real HTTP: a user links a Kiwoom mock account pointing at the fake, tests
it, trades through it on a running hoga - and bad credentials fail clearly. Logs and every
API response are checked for secrets."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import httpx
import pytest

from hoga.fakes import FakeAccount
from hoga.fakes.kiwoom import KiwoomFake
from tests.helpers import eventually, live_server, running
from tests.kiwoom_support import (
    ACCOUNT_NO,
    APP_KEY,
    APP_SECRET,
    fund_from_broker,
    kiwoom_fake,
    link_account,
    traded,
)

SYMBOL = "005930"
REAL_KEY = "REALKEY0000000000001"
REAL_SECRET = "REALSECRET-do-not-leak-000001"


class Recorder:
    """Every response body the user saw, for the secret check."""

    def __init__(self, http: httpx.AsyncClient) -> None:
        self.http = http
        self.bodies: list[str] = []

    async def call(self, method: str, url: str, **kw: Any) -> httpx.Response:
        r = await self.http.request(method, url, **kw)
        self.bodies.append(r.text)
        return r

    async def post(self, url: str, **kw: Any) -> httpx.Response:
        return await self.call("POST", url, **kw)


async def wait_order(
    api: Recorder, headers: dict[str, str], order_id: int, fake: KiwoomFake, *statuses: str
) -> dict[str, Any]:
    seen: dict[str, Any] = {}

    async def check() -> bool:
        nonlocal seen
        fake.pump(10)
        r = await api.call("GET", f"/api/orders/{order_id}", headers=headers)
        seen = r.json()
        return seen["status"] in statuses

    await eventually(check, 15.0, f"order {order_id} in {statuses}")
    return seen


async def test_link_test_and_trade_through_a_kiwoom_mock_account(
    tmp_path: Path, db_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    async with (
        kiwoom_fake() as fake,
        running(tmp_path, db_url, kiwoom_rate=20, submit_timeout=3.0) as h,
        live_server(h.hoga) as addr,
        httpx.AsyncClient(base_url=f"http://{addr}") as http,
    ):
        fake.add_account(FakeAccount("5077777701", REAL_KEY, REAL_SECRET), env="real")
        api = Recorder(http)
        headers = await h.user("kim", "premium")
        uid = (await api.call("GET", "/api/me", headers=headers)).json()["id"]

        # --- link and test the good account
        view = await link_account(api, headers, fake)
        assert view["app_key"] != APP_KEY and view["app_secret"] == "****"
        r = await api.post(f"/api/broker-accounts/{view['id']}/test", headers=headers)
        assert r.status_code == 200, r.text
        result = r.json()
        assert result["ok"] is True and result["code"] is None
        assert "연결 정상" in result["message"] and "예수금" in result["message"]
        listed = (await api.call("GET", "/api/broker-accounts", headers=headers)).json()
        (mine,) = [a for a in listed["accounts"] if a["id"] == view["id"]]
        assert mine["last_test"]["ok"] is True and mine["account_no"] != ACCOUNT_NO

        # --- trade: order in, fill back, position in the portfolio
        await fund_from_broker(h.hoga, uid, view["id"])
        await traded(fake, SYMBOL)
        r = await api.post(
            "/api/orders",
            json={
                "symbol": SYMBOL,
                "side": "buy",
                "type": "market",
                "qty": 5,
                "account_id": view["id"],
            },
            headers=headers,
        )
        assert r.status_code == 202, r.text
        done = await wait_order(api, headers, r.json()["id"], fake, "FILLED")
        assert done["filled_qty"] == 5 and done["broker_order_id"]
        p = (
            await api.call("GET", f"/api/portfolio?account_id={view['id']}", headers=headers)
        ).json()
        (pos,) = p["positions"]
        assert (pos["symbol"], pos["qty"]) == (SYMBOL, 5)
        assert fake.exchange.books[ACCOUNT_NO].positions[SYMBOL].qty == 5

        # --- bad credentials: each test names the broker's code and message
        cases = [
            # (each its own account number: the same account cannot be linked twice)
            ({"secret": "WRONGSECRET-0000000000", "account_no": "5012345602"}, "kiwoom.8002"),
            ({"key": "UNKNOWNKEY0000000000", "account_no": "5012345603"}, "kiwoom.8001"),
            ({"account_no": "50999999-01"}, "kiwoom.account_mismatch"),
            ({"key": REAL_KEY, "secret": REAL_SECRET, "account_no": "5077777701"}, "kiwoom.8030"),
        ]
        bad_ids = []
        for link, code in cases:
            bad = await link_account(api, headers, fake, **link)
            r = await api.post(f"/api/broker-accounts/{bad['id']}/test", headers=headers)
            assert r.status_code == 200, r.text
            result = r.json()
            assert (result["ok"], result["code"]) == (False, code), result
            assert "키움" in result["message"] and code.split(".")[1] in result["message"]
            bad_ids.append(bad["id"])

        # --- an order on a refused account is rejected before sending; nothing left open
        before = len(fake.exchange.orders)
        for bad_id in bad_ids[:2]:
            await fund_from_broker_safe(h.hoga, uid, bad_id)
            r = await api.post(
                "/api/orders",
                json={
                    "symbol": SYMBOL,
                    "side": "buy",
                    "type": "limit",
                    "qty": 1,
                    "price": done["avg_fill_price"],
                    "account_id": bad_id,
                },
                headers=headers,
            )
            assert r.status_code == 202, r.text
            rejected = await wait_order(api, headers, r.json()["id"], fake, "REJECTED")
            assert rejected["reason_code"] in ("kiwoom.8001", "kiwoom.8002")
            assert "전송되지 않았습니다" in rejected["reason"]
        assert len(fake.exchange.orders) == before
        orders = (await api.call("GET", "/api/orders", headers=headers)).json()["orders"]
        assert {o["status"] for o in orders} <= {"FILLED", "REJECTED"}

        # --- no secret anywhere the user or the operator can see
        tokens = list(fake.tokens)
        assert tokens
        seen = "\n".join(api.bodies) + "\n" + caplog.text
        for secret in (APP_SECRET, REAL_SECRET, "WRONGSECRET-0000000000", APP_KEY, *tokens):
            assert secret not in seen, "a secret leaked into logs or responses"


async def fund_from_broker_safe(hoga: Any, user_id: int, account_id: int) -> None:
    """Fund a refused account in hoga's ledger so the risk gate lets its order through."""
    from hoga.store.db import Actor
    from hoga.store.repos import ledger

    async with hoga.db.tx(Actor.user(user_id)) as conn:
        await ledger.post_cash(conn, user_id, account_id, 10_000_000, "deposit", hoga.clock.now())
