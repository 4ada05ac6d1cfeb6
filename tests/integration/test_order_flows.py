"""Order pipeline behaviour: broker outcomes, kill switches, the loss limit, events, previews."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import websockets

from hoga.brokers.base import OrderStatusReport
from hoga.brokers.paper_book import PaperFaults
from hoga.domain import krx
from hoga.domain.orders import OrderStatus, OrderType, Side
from tests.helpers import eventually, live_server, running, running_unanswered


async def test_broker_rejection_and_throttling(tmp_path: Path, sqlite_url: str) -> None:
    faults = PaperFaults(reject_next=1)
    async with running(tmp_path, sqlite_url, faults=faults) as h:
        u = await h.user("ann", "basic")
        h.pump(300)
        r = await h.post_order(u, type="limit", qty=1, price=60_000)
        rejected = await h.wait_status(u, r.json()["id"], "REJECTED")
        assert rejected["reason_code"] == "paper.fault"
        assert rejected["reserved_cash"] == 0
        # Throttled twice ("not processed"), then accepted: sent again, never duplicated.
        faults.not_processed_next = 2
        r = await h.post_order(u, type="limit", qty=1, price=60_100)
        accepted = await h.wait_status(u, r.json()["id"], "ACCEPTED")
        history = [x["status"] for x in accepted["history"]]
        assert history.count("SUBMITTING") == 3
        assert history.count("QUEUED") == 3
        account = accepted["account_id"]
        assert h.hoga.paper.placements(account) == 1


async def test_unknown_outcome_is_reconciled_not_resent(tmp_path: Path, db_url: str) -> None:
    async with running_unanswered(tmp_path, db_url) as h:
        h.hoga.reconciler.unknown_grace = 0.5
        u = await h.user("bea", "basic")
        h.pump(300)
        done = await h.filled_through_unknown(u, symbol="000660", qty=3)
        assert h.hoga.paper.placements(done["account_id"]) == 1
        p = (await h.http.get("/api/portfolio", headers=u)).json()
        assert next(x for x in p["positions"] if x["symbol"] == "000660")["qty"] == 3


async def test_kill_switch_halts_and_reducing_allows_only_sells(
    tmp_path: Path, sqlite_url: str
) -> None:
    async with running(tmp_path, sqlite_url) as h:
        admin = await h.admin()
        u = await h.user("cal", "basic")
        h.pump(300)
        r = await h.post_order(u, qty=2)
        await h.wait_status(u, r.json()["id"], "FILLED")
        assert (
            await h.http.put("/api/admin/kill-switch", headers=u, json={"state": "HALTED"})
        ).status_code == 403
        r = await h.http.put("/api/admin/kill-switch", headers=admin, json={"state": "HALTED"})
        assert r.json()["state"] == "HALTED"
        r = await h.post_order(u, side="sell", qty=1)
        assert r.json()["error"]["code"] == "risk.halted"
        await h.http.put("/api/admin/kill-switch", headers=admin, json={"state": "REDUCING"})
        r = await h.post_order(u, qty=1)
        assert r.json()["error"]["code"] == "risk.reducing_only"
        r = await h.post_order(u, side="sell", qty=1)
        assert r.status_code == 202
        q = (await h.http.get("/api/queue-status", headers=u)).json()
        assert q["server_state"] == "REDUCING"
        # The server state survives a restart of the order service's view.
        assert await h.hoga.orders.load_server_state() == "REDUCING"


async def test_daily_loss_limit_switches_the_user_to_reducing(
    tmp_path: Path, sqlite_url: str
) -> None:
    async with running(tmp_path, sqlite_url, daily_loss_limit=1) as h:
        u = await h.user("dee", "basic")
        h.pump(300)
        r = await h.post_order(u, qty=1)
        await h.wait_status(u, r.json()["id"], "FILLED")
        # The buy's commission alone is a realised loss of at least 1 won.
        r = await h.post_order(u, qty=1)
        assert r.status_code == 422
        assert r.json()["error"]["code"] == "risk.daily_loss"
        me = (await h.http.get("/api/me", headers=u)).json()
        assert me["trading_state"] == "REDUCING"
        r = await h.post_order(u, side="sell", qty=1)
        assert r.status_code == 202


async def test_preview_shows_costs_and_the_gates_answer(tmp_path: Path, sqlite_url: str) -> None:
    async with running(tmp_path, sqlite_url) as h:
        u = await h.user("eli", "basic")
        r = await h.http.post(
            "/api/orders/preview",
            headers=u,
            json={"symbol": "005930", "side": "buy", "type": "limit", "qty": 10, "price": 71_500},
        )
        p = r.json()
        assert p["ok"] is True
        assert p["amount"] == 715_000
        assert p["commission"] == krx.commission(715_000)
        assert p["limits"] == {"base": 71_500, "lower": 50_100, "upper": 92_900}
        assert (p["tick_size"], p["price_up"], p["price_down"]) == (100, 71_600, 71_400)
        r = await h.http.post(
            "/api/orders/preview",
            headers=u,
            json={"symbol": "005930", "side": "buy", "type": "limit", "qty": 10, "price": 71_550},
        )
        assert r.json()["ok"] is False and r.json()["code"] == "risk.off_tick"
        assert (await h.http.get("/api/orders", headers=u)).json()["orders"] == []


async def test_events_stream_carries_the_users_own_orders_and_fills(
    tmp_path: Path, sqlite_url: str
) -> None:
    async with running(tmp_path, sqlite_url) as h, live_server(h.hoga) as addr:
        u = await h.user("fox", "basic")
        other = await h.user("gem", "basic")
        token = u["Authorization"].split()[1]
        async with websockets.connect(f"ws://{addr}/ws/events?token={token}") as ws:
            assert json.loads(await ws.recv())["type"] == "auth"
            h.pump(300)
            await h.post_order(other, qty=1)
            r = await h.post_order(u, qty=2)
            oid = r.json()["id"]
            seen: list[dict[str, object]] = []

            async def got_fill() -> bool:
                h.pump(20)
                await h.hoga.paper.drain()
                try:
                    while True:
                        seen.append(json.loads(await asyncio.wait_for(ws.recv(), 0.01)))
                except TimeoutError:
                    pass
                return any(e["type"] == "fill" for e in seen)

            await eventually(got_fill, within=10, what="fill event")
        orders = [e["order"] for e in seen if e["type"] == "order"]
        assert orders and all(o["id"] == oid for o in orders)  # type: ignore[index]
        statuses = [o["status"] for o in orders]  # type: ignore[index]
        assert statuses[0] == "QUEUED"
        fill = next(e["fill"] for e in seen if e["type"] == "fill")
        assert fill["order_id"] == oid  # type: ignore[index]


async def test_reconciled_executions_match_the_brokers_amount_to_the_won(
    tmp_path: Path, sqlite_url: str
) -> None:
    """A status report counting executions no fill report itemised: hoga books them so the
    order's amount equals the broker's exactly, even when the average price is fractional, and
    seeing the same report again books nothing."""
    async with running(tmp_path, sqlite_url) as h:
        u = await h.user("dan", "basic")
        h.pump(300)
        quote = (await h.http.get("/api/market/quotes?symbols=005930", headers=u)).json()
        last = quote["quotes"][0]["price"]
        price = krx.step_price(krx.round_to_tick(int(last * 0.9)), -1)
        r = await h.post_order(u, type="limit", qty=3, price=price)
        accepted = await h.wait_status(u, r.json()["id"], "ACCEPTED")
        uid = (await h.hoga.auth.find_user("dan")).id
        order = await h.hoga.orders.get(uid, accepted["id"])
        amount = 3 * price - 2  # an average of price - 2/3 won
        report = OrderStatusReport(
            broker_order_id=accepted["broker_order_id"],
            symbol="005930",
            side=Side.BUY,
            type=OrderType.LIMIT,
            qty=3,
            price=price,
            filled_qty=3,
            status=OrderStatus.FILLED,
            ts=h.hoga.clock.time(),
            avg_price=amount // 3,
            filled_amount=amount,
        )
        for _ in range(2):
            await h.hoga.reconciler.converge(order, report)
            order = await h.hoga.orders.get(uid, order.id)
        done = await h.order(u, order.id)
        assert done["filled_qty"] == 3
        assert sorted((f["qty"], f["price"]) for f in done["fills"]) == [
            (1, price),
            (2, price - 1),
        ]
        assert sum(f["qty"] * f["price"] for f in done["fills"]) == amount
