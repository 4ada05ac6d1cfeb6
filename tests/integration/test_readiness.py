"""When a broker or its feed is down (issue 11): /ready says so, the admin status flags it,
orders waiting for that broker say why, a market order on a stale quote is refused - and all
of it comes back when the broker does."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hoga.domain.clock import ManualClock
from tests.helpers import Harness, eventually, running
from tests.kis_support import kis_running, kis_user

CHEAP = "034220"


async def test_ready_is_ok_when_every_part_is(tmp_path: Path, db_url: str) -> None:
    async with running(tmp_path, db_url) as h:
        r = await h.http.get("/ready")
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["status"] == "ok"
        assert set(body["parts"]) == {"database", "feed", "dispatcher", "brokers"}
        assert body["parts"]["database"]["status"] == "ok"
        assert body["parts"]["dispatcher"]["status"] == "ok"
        assert {n: b["status"] for n, b in body["parts"]["brokers"].items()} == {
            "paper": "ok",
            "kis": "ok",
            "kiwoom": "ok",
            "kiwoom_openapi": "ok",
        }
        # No token needed, and nothing in it names an account, a user or a version.
        assert "version" not in r.text and "account_id" not in r.text


async def test_a_market_order_on_a_stale_quote_is_refused_and_a_limit_order_is_not(
    tmp_path: Path, sqlite_url: str, clock: ManualClock
) -> None:
    async with running(tmp_path, sqlite_url, clock=clock, max_quote_age=30) as h:
        sue = await h.user("sue", "basic")
        market = {"symbol": "005930", "side": "buy", "type": "market", "qty": 1}
        h.pump(2000)
        r = await h.http.post("/api/orders", headers=sue, json=market)
        assert r.status_code == 202, r.text
        # The feed goes quiet (nothing trades for 31 s of a trading day).
        clock.advance(31)
        sue = await h.login("sue")
        r = await h.http.post("/api/orders", headers=sue, json=market)
        assert r.status_code == 422, r.text
        assert r.json()["error"]["code"] == "risk.stale_quote"
        last = h.hoga.quotes.last("005930")
        assert last is not None
        limit = {**market, "type": "limit", "price": last.price}
        r = await h.http.post("/api/orders", headers=sue, json=limit)
        assert r.status_code == 202, r.text
        # The feed is back: market orders are accepted again.
        h.pump(2000)
        r = await h.http.post("/api/orders", headers=sue, json=market)
        assert r.status_code == 202, r.text


async def _kis_health(h: Harness, admin: dict[str, str], account_id: int) -> dict[str, Any]:
    status = (await h.http.get("/api/admin/status", headers=admin)).json()
    (mine,) = [b for b in status["brokers"] if b["account_id"] == account_id]
    return {"status": status, "account": mine}


async def test_orders_wait_for_a_down_broker_saying_why_and_go_out_when_it_is_back(
    tmp_path: Path, sqlite_url: str
) -> None:
    async with kis_running(tmp_path, sqlite_url, submit_timeout=3.0, kis_request_timeout=1.0) as (
        fake,
        h,
    ):
        alice, _, acct = await kis_user(h, fake, "alice")
        admin = await h.admin()
        first = await h.post_order(
            alice, symbol=CHEAP, type="limit", qty=1, price=12_000, account_id=acct
        )
        assert first.status_code == 202, first.text

        async def accepted(order_id: int) -> bool:
            return (await h.order(alice, order_id))["status"] in ("ACCEPTED", "FILLED")

        await eventually(lambda: accepted(first.json()["id"]), within=30, what="first order")
        assert (await h.http.get("/ready")).json()["parts"]["brokers"]["kis"]["status"] == "ok"

        # The broker goes away.
        await fake.stop()
        orders = []
        for n in range(4):
            r = await h.http.post(
                "/api/orders",
                headers=alice,
                json={
                    "symbol": CHEAP,
                    "side": "buy",
                    "type": "limit",
                    "qty": 1,
                    "price": 12_000,
                    "account_id": acct,
                    "client_order_id": f"down-{n}",
                },
            )
            assert r.status_code == 202, r.text
            orders.append(r.json()["id"])

        async def down() -> bool:
            return bool(h.hoga.health.is_down(acct))

        await eventually(down, within=60, what="the account to be seen down")
        ready = await h.http.get("/ready")
        assert ready.status_code == 503
        body = ready.json()
        assert body["status"] == "degraded"
        assert body["parts"]["brokers"]["kis"]["status"] == "down"
        seen = await _kis_health(h, admin, acct)
        assert seen["account"]["status"] == "down"
        assert seen["account"]["code"] == "kis.unreachable"
        assert seen["status"]["ready"] == "degraded"

        async def waiting_say_why() -> bool:
            h.hoga.dispatcher.wake_all()
            q = (await h.http.get("/api/queue-status", headers=alice)).json()["queued"]
            return bool(q) and all(
                item["waiting"] and item["waiting"]["code"] == "broker.down" for item in q
            )

        await eventually(waiting_say_why, within=30, what="queued orders to say the broker is down")
        waiting = [await h.order(alice, oid) for oid in orders]
        queued = [o for o in waiting if o["status"] == "QUEUED"]
        assert queued and all(o["waiting"]["code"] == "broker.down" for o in queued)
        assert all("kis" in o["waiting"]["message"] for o in queued)

        # The broker comes back: a probe notices, and the held orders go out.
        await fake.start()

        async def all_out() -> bool:
            return all([await accepted(oid) for oid in orders])

        await eventually(all_out, within=60, what="the held orders to go out")
        assert not h.hoga.health.is_down(acct)
        assert (await h.http.get("/ready")).json()["parts"]["brokers"]["kis"]["status"] != "down"
