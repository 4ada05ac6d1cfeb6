"""hoga ↔ hoga-bridge (real processes on loopback) ↔ the fake OpenAPI+ control.

Through hoga's API and order pipeline (risk gate, queue, dispatcher with session scheduling,
reconciliation): link, test, order and fill, modify (adapter level: the pipeline has no modify
yet), cancel, real-time quotes, a worker killed mid-order, a user switch, a bridge restart.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from hoga.brokers.base import BrokerAuthError
from hoga.brokers.kiwoom_openapi import KiwoomOpenApiFeed
from hoga.domain.market import Tick
from tests.helpers import Harness, eventually, running
from tests.openapi_support import (
    TOKEN,
    Bridge,
    bridge_running,
    link_account,
    start_bridge,
    stop_bridge,
)

SYMBOL = "005930"


async def linked(h: Harness, bridge: Bridge, user: str) -> tuple[dict[str, str], int]:
    headers = await h.user(user, "premium")
    acct = await link_account(h.http, headers, bridge, user)
    r = await h.http.post(f"/api/broker-accounts/{acct['id']}/test", headers=headers)
    assert r.status_code == 200 and r.json()["ok"], r.text
    return headers, int(acct["id"])


async def submit(h: Harness, headers: dict[str, str], **body: Any) -> dict[str, Any]:
    h.pump(50)
    return await h.submit(headers, **body)


def settings(**kw: Any) -> dict[str, Any]:
    return {"submit_timeout": 5.0, "max_quote_age": 0, **kw}


async def test_link_order_fill_modify_cancel(tmp_path: Path, sqlite_url: str) -> None:
    async with bridge_running(tmp_path) as bridge, running(tmp_path, sqlite_url, **settings()) as h:
        headers, account_id = await linked(h, bridge, "kim")
        order = await submit(
            h, headers, symbol=SYMBOL, side="buy", type="market", qty=9, account_id=account_id
        )
        filled = await h.until_status(headers, order["id"], "FILLED", within=30.0)
        (theirs,) = bridge.orders("kim").values()
        assert filled["filled_qty"] == theirs["filled"] == 9
        assert filled["broker_order_id"].endswith(theirs["no"])
        assert sum(f["qty"] * f["price"] for f in filled["fills"]) == theirs["amount"]
        assert len(filled["fills"]) >= 2  # the fake fills in pieces: partial fills booked

        # A sell limit far above the fake's market rests; modify it through the pipeline
        # (PATCH -> ModifyRequest), then cancel it through the API.
        resting = await submit(
            h,
            headers,
            symbol=SYMBOL,
            side="sell",
            type="limit",
            qty=4,
            price=92_000,
            account_id=account_id,
        )
        accepted = await h.until_status(headers, resting["id"], "ACCEPTED", within=30.0)
        r = await h.http.patch(
            f"/api/orders/{resting['id']}", json={"price": 91_900}, headers=headers
        )
        assert r.status_code == 202, r.text

        async def repriced() -> bool:
            o = await h.order(headers, resting["id"])
            return bool(o["status"] == "ACCEPTED" and o["price"] == 91_900)

        await eventually(repriced, 30.0, "the modify to be confirmed")
        done = await h.order(headers, resting["id"])
        # The order keeps its number; the broker's modify number is only in its history.
        assert done["broker_order_id"] == accepted["broker_order_id"]
        root_no = accepted["broker_order_id"].split("-")[1]
        (new_no,) = [
            no
            for no, o in bridge.orders("kim").items()
            if o["orig"] == root_no and "정정" in o["kind"]
        ]
        assert bridge.orders("kim")[new_no]["price"] == 91_900
        assert any(new_no in (e["detail"] or "") for e in done["history"])
        r = await h.http.delete(f"/api/orders/{resting['id']}", headers=headers)
        assert r.status_code == 202, r.text
        cancelled = await h.until_status(headers, resting["id"], "CANCELLED", within=30.0)
        assert cancelled["filled_qty"] == 0
        theirs_now = bridge.orders("kim")
        assert theirs_now[new_no]["open"] == 0
        assert any(o["kind"] == "매도취소" and o["orig"] == new_no for o in theirs_now.values())


async def test_real_time_quotes_reach_the_feed(tmp_path: Path, sqlite_url: str) -> None:
    async with bridge_running(tmp_path) as bridge, running(tmp_path, sqlite_url, **settings()) as h:
        headers, account_id = await linked(h, bridge, "kim")
        ref = await h.hoga.accounts.ref_for(await h.me(headers), account_id)
        feed = KiwoomOpenApiFeed(h.hoga.kiwoom_openapi, ref, h.hoga.clock)
        ticks: list[Tick] = []
        session = await feed.open_session(ticks.append, lambda s, e: None)
        await session.subscribe([SYMBOL])

        async def got() -> bool:
            return len(ticks) >= 3

        await eventually(got, 20.0, "real-time ticks")
        t = ticks[-1]
        assert t.symbol == SYMBOL and t.price > 0 and t.ask > t.bid > 0
        await feed.close()


async def test_a_worker_killed_mid_order_is_unknown_then_reconciled_once(
    tmp_path: Path, sqlite_url: str
) -> None:
    async with bridge_running(tmp_path) as bridge, running(tmp_path, sqlite_url, **settings()) as h:
        headers, account_id = await linked(h, bridge, "kim")
        # The worker dies right after SendOrder returned 0: the order is at the "server",
        # its answer never leaves the process.
        assert (await bridge.call("fault", user="kim", name="die_after_send"))["ok"]
        order = await submit(
            h, headers, symbol=SYMBOL, side="buy", type="market", qty=3, account_id=account_id
        )
        settled = await h.until_status(headers, order["id"], "FILLED", within=60.0)
        assert any(x["status"] == "UNKNOWN" for x in settled["history"]), settled["history"]
        # Sent once, never resent: the "server" has exactly one order, hoga its fills.
        (theirs,) = bridge.orders("kim").values()
        assert settled["filled_qty"] == theirs["filled"] == 3
        assert settled["broker_order_id"].endswith(theirs["no"])
        status = (await bridge.call("status"))["pool"]
        assert status["relogins"] >= 1


async def test_orders_of_two_users_switch_the_one_login(tmp_path: Path, sqlite_url: str) -> None:
    async with bridge_running(tmp_path) as bridge, running(tmp_path, sqlite_url, **settings()) as h:
        kim, kim_acct = await linked(h, bridge, "kim")
        lee, lee_acct = await linked(h, bridge, "lee")
        orders = []
        for _ in range(2):
            for headers, acct in ((kim, kim_acct), (lee, lee_acct)):
                orders.append(
                    (
                        headers,
                        await submit(
                            h,
                            headers,
                            symbol=SYMBOL,
                            side="buy",
                            type="market",
                            qty=2,
                            account_id=acct,
                        ),
                    )
                )
        for headers, order in orders:
            await h.until_status(headers, order["id"], "FILLED", within=60.0)
        assert len(bridge.orders("kim")) == 2 and len(bridge.orders("lee")) == 2
        pool = (await bridge.call("status"))["pool"]
        assert pool["size"] == 1 and pool["switches"] >= 2
        assert pool["switch_seconds_p50"] >= 0.3  # measured: at least the login delay
        gw = h.hoga.dispatcher.status()["gateways"]["kiwoom_openapi"]
        assert gw["switches"] >= 1 and gw["sent"] == 4


async def test_a_bridge_restart_is_ridden_out(tmp_path: Path, sqlite_url: str) -> None:
    bridge = await start_bridge(tmp_path)
    try:
        async with running(tmp_path, sqlite_url, **settings()) as h:
            headers, account_id = await linked(h, bridge, "kim")
            first = await submit(
                h, headers, symbol=SYMBOL, side="buy", type="market", qty=2, account_id=account_id
            )
            await h.until_status(headers, first["id"], "FILLED", within=30.0)
            port = bridge.port
            bridge.proc.kill()  # no goodbye: a crash of the whole bridge
            await bridge.proc.wait()
            bridge = await start_bridge(tmp_path, port=port)
            second = await submit(
                h, headers, symbol=SYMBOL, side="buy", type="market", qty=2, account_id=account_id
            )
            done = await h.until_status(headers, second["id"], "FILLED", within=60.0)
            assert len(bridge.orders("kim")) == 2
            assert done["filled_qty"] == 2
    finally:
        await stop_bridge(bridge)


async def test_a_wrong_token_is_an_auth_error_and_never_echoed(
    tmp_path: Path, sqlite_url: str
) -> None:
    async with bridge_running(tmp_path) as bridge, running(tmp_path, sqlite_url, **settings()) as h:
        headers = await h.user("kim", "premium")
        acct = await link_account(h.http, headers, bridge, "kim", token="wrong-token-0123456789")
        r = await h.http.post(f"/api/broker-accounts/{acct['id']}/test", headers=headers)
        body = r.json()
        assert body["ok"] is False and body["code"] == "kiwoom_openapi.unauthorized", body
        assert "wrong-token" not in r.text and TOKEN not in r.text
        ref = await h.hoga.accounts.ref_for(await h.me(headers), acct["id"])
        with pytest.raises(BrokerAuthError) as caught:
            await h.hoga.kiwoom_openapi.test_connection(ref)
        assert "wrong-token" not in str(caught.value)


async def test_linking_needs_a_bridge_address_and_a_login_id(
    tmp_path: Path, sqlite_url: str
) -> None:
    async with running(tmp_path, sqlite_url, **settings()) as h:
        headers = await h.user("kim", "premium")
        base = {
            "broker": "kiwoom_openapi",
            "env": "mock",
            "account_no": "5012345611",
            "app_key": "kim",
            "app_secret": TOKEN,
        }
        for patch, code in (
            ({}, "account.bad_url"),
            ({"base_url": "http://bridge:5943"}, "account.bad_url"),
            ({"base_url": "wss://bridge:5943", "app_key": "kim lee"}, "account.bad_app_key"),
            ({"base_url": "wss://bridge:5943", "app_secret": "short"}, "account.bad_app_secret"),
        ):
            r = await h.http.post("/api/broker-accounts", json={**base, **patch}, headers=headers)
            assert r.status_code == 422, r.text
            assert r.json()["error"]["code"] == code
            assert TOKEN not in r.text
