"""The order pipeline through the HTTP API on a running app (SQLite and PostgreSQL)."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from hoga.domain import krx
from tests.helpers import running


async def test_market_order_fills_and_shows_in_portfolio(tmp_path: Path, db_url: str) -> None:
    async with running(tmp_path, db_url) as h:
        alice = await h.user("alice", "basic")
        h.pump(300)
        r = await h.post_order(alice, qty=7)
        assert r.status_code == 202, r.text
        order = r.json()
        assert order["status"] == "QUEUED"
        assert order["priority"] == "normal"
        done = await h.wait_status(alice, order["id"], "FILLED")
        assert done["filled_qty"] == 7
        fills = done["fills"]
        assert sum(f["qty"] for f in fills) == 7
        for f in fills:
            assert f["commission"] == krx.commission(f["qty"] * f["price"], Decimal("0.00015"))
            assert f["tax"] == 0
        spent = sum(f["qty"] * f["price"] + f["commission"] for f in fills)
        p = (await h.http.get("/api/portfolio", headers=alice)).json()
        assert p["cash"] == 10_000_000 - spent
        (pos,) = p["positions"]
        assert pos["symbol"] == "005930" and pos["qty"] == 7
        assert p["equity"] == p["cash"] + pos["qty"] * pos["market_price"]

        # Sell it back: the sell tax comes from domain.krx by date.
        r = await h.post_order(alice, side="sell", qty=7)
        assert r.status_code == 202, r.text
        sold = await h.wait_status(alice, r.json()["id"], "FILLED")
        day = h.hoga.clock.now().date()
        for f in sold["fills"]:
            assert f["tax"] == krx.sell_tax(f["qty"] * f["price"], day, "KOSPI")
        p = (await h.http.get("/api/portfolio", headers=alice)).json()
        assert p["positions"] == []
        # Ledger and running balance agree.
        assert p["cash"] == 10_000_000 - spent + sum(
            f["qty"] * f["price"] - f["commission"] - f["tax"] for f in sold["fills"]
        )


async def test_free_tier_eleventh_order_of_the_day_is_refused(tmp_path: Path, db_url: str) -> None:
    async with running(tmp_path, db_url) as h:
        bob = await h.user("bob", "free")
        h.pump(300)
        for i in range(10):
            r = await h.post_order(
                bob, symbol="000660", type="limit", qty=1, price=150_000 + 100 * i
            )
            assert r.status_code == 202, r.text
        r = await h.post_order(bob, symbol="000660", type="limit", qty=1, price=151_000)
        assert r.status_code == 422
        body = r.json()
        assert body["error"]["code"] == "risk.daily_trade_limit"
        assert body["order"]["status"] == "DENIED"
        q = (await h.http.get("/api/queue-status", headers=bob)).json()
        assert {k: q[k] for k in ("daily_trades", "daily_limit", "remaining")} == {
            "daily_trades": 10,
            "daily_limit": 10,
            "remaining": 0,
        }
        assert {"queue_size", "is_active"} <= q.keys()


async def test_same_client_order_id_twice_is_one_order(tmp_path: Path, db_url: str) -> None:
    async with running(tmp_path, db_url) as h:
        carol = await h.user("carol", "basic")
        body = {
            "symbol": "035720",
            "side": "buy",
            "type": "limit",
            "qty": 2,
            "price": 40_000,
            "client_order_id": "my-key-1",
        }
        a = await h.http.post("/api/orders", json=body, headers=carol)
        b = await h.http.post("/api/orders", json=body, headers=carol)
        assert a.status_code == b.status_code == 202
        assert a.json()["id"] == b.json()["id"]
        listed = (await h.http.get("/api/orders", headers=carol)).json()["orders"]
        assert len(listed) == 1
        # The same key for a different order is refused, not silently merged.
        c = await h.http.post("/api/orders", json={**body, "qty": 3}, headers=carol)
        assert c.status_code == 409
        assert c.json()["error"]["code"] == "order.client_order_id_reused"
        q = (await h.http.get("/api/queue-status", headers=carol)).json()
        assert q["daily_trades"] == 1


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        (
            {"symbol": "999999", "side": "buy", "type": "market", "qty": 1},
            422,
            "order.unknown_symbol",
        ),
        ({"symbol": "59300", "side": "buy", "type": "market", "qty": 1}, 422, "order.bad_symbol"),
        ({"symbol": "005930", "side": "buy", "type": "market", "qty": 0}, 422, "order.bad_qty"),
        ({"symbol": "005930", "side": "buy", "type": "market", "qty": -5}, 422, "order.bad_qty"),
        (
            {"symbol": "005930", "side": "buy", "type": "market", "qty": 1.5},
            422,
            "validation_error",
        ),
        (
            {"symbol": "005930", "side": "buy", "type": "limit", "qty": 1},
            422,
            "order.price_required",
        ),
        (
            {"symbol": "005930", "side": "buy", "type": "market", "qty": 1, "price": 70000},
            422,
            "order.price_not_allowed",
        ),
        (
            {"symbol": "005930", "side": "buy", "type": "limit", "qty": 1, "price": 71_550},
            422,
            "risk.off_tick",
        ),
        (
            {"symbol": "005930", "side": "buy", "type": "limit", "qty": 1, "price": 200_000},
            422,
            "risk.outside_limits",
        ),
        (
            {"symbol": "005930", "side": "buy", "type": "market", "qty": 1, "account_id": 999},
            404,
            "account.not_found",
        ),
        ({"symbol": "005930", "side": "hold", "type": "market", "qty": 1}, 422, "validation_error"),
        (
            {"symbol": "005930", "side": "buy", "type": "market", "qty": 1, "extra": 1},
            422,
            "validation_error",
        ),
    ],
)
async def test_bad_orders_get_a_code_and_nothing_is_queued(
    tmp_path: Path, sqlite_url: str, body: dict[str, object], status: int, code: str
) -> None:
    async with running(tmp_path, sqlite_url) as h:
        dave = await h.user("dave", "basic")
        r = await h.http.post("/api/orders", json=body, headers=dave)
        assert r.status_code == status, r.text
        assert r.json()["error"]["code"] == code
        assert r.json()["error"]["message"]
        assert h.hoga.queue.size() == 0
        q = (await h.http.get("/api/queue-status", headers=dave)).json()
        assert q["daily_trades"] == 0


async def test_malformed_json_is_a_400(tmp_path: Path, sqlite_url: str) -> None:
    async with running(tmp_path, sqlite_url) as h:
        eve = await h.user("eve")
        r = await h.http.post(
            "/api/orders", content=b"{not json", headers={**eve, "content-type": "application/json"}
        )
        assert r.status_code == 400
        assert r.json()["error"]["code"] == "malformed_json"


async def test_cancel_a_resting_limit_order(tmp_path: Path, db_url: str) -> None:
    async with running(tmp_path, db_url) as h:
        fay = await h.user("fay", "basic")
        h.pump(300)
        r = await h.post_order(fay, type="limit", qty=1, price=60_000)
        oid = r.json()["id"]
        await h.wait_status(fay, oid, "ACCEPTED")
        reserved = (await h.http.get("/api/portfolio", headers=fay)).json()["reserved_cash"]
        assert reserved == 60_000 + krx.commission(60_000)
        r = await h.http.delete(f"/api/orders/{oid}", headers=fay)
        assert r.status_code == 202
        assert r.json()["status"] in ("CANCEL_PENDING", "CANCELLED")
        done = await h.wait_status(fay, oid, "CANCELLED")
        assert done["reserved_cash"] == 0
        assert (await h.http.get("/api/portfolio", headers=fay)).json()["reserved_cash"] == 0
        again = await h.http.delete(f"/api/orders/{oid}", headers=fay)
        assert again.status_code == 409
        assert again.json()["error"]["code"] == "order.not_open"


async def test_insufficient_cash_and_shares_are_denied(tmp_path: Path, sqlite_url: str) -> None:
    async with running(tmp_path, sqlite_url, paper_initial_cash=100_000) as h:
        gus = await h.user("gus", "basic")
        h.pump(200)
        r = await h.post_order(gus, type="limit", qty=2, price=71_500)
        assert r.status_code == 422
        assert r.json()["error"]["code"] == "risk.insufficient_cash"
        r = await h.post_order(gus, side="sell", qty=1)
        assert r.json()["error"]["code"] == "risk.insufficient_shares"
