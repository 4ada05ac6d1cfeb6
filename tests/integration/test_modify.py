"""Modify (정정) through the pipeline, over the HTTP API on the paper broker: the risk gate,
the queue and dispatcher, the MODIFY_PENDING state, the broker's answers, a restart."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hoga.brokers.paper import PaperFaults
from hoga.domain import krx
from tests.helpers import Harness, running

SYMBOL = "005930"


async def _resting_buy(h: Harness, headers: dict[str, str], qty: int, price: int) -> dict[str, Any]:
    r = await h.post_order(headers, type="limit", qty=qty, price=price)
    assert r.status_code == 202, r.text
    return await h.wait_status(headers, r.json()["id"], "ACCEPTED")


async def test_modify_reprices_and_resizes_a_resting_order(tmp_path: Path, db_url: str) -> None:
    async with running(tmp_path, db_url) as h:
        amy = await h.user("amy", "basic")
        h.pump(300)
        order = await _resting_buy(h, amy, 3, 60_000)
        assert order["modify_pending"] is False
        oid = order["id"]
        r = await h.http.patch(f"/api/orders/{oid}", json={"price": 60_100}, headers=amy)
        assert r.status_code == 202, r.text
        assert r.json()["status"] in ("MODIFY_PENDING", "ACCEPTED")

        async def modified() -> bool:
            o = await h.order(amy, oid)
            return o["status"] == "ACCEPTED" and o["price"] == 60_100

        await h.trade_until(modified, "the modify to be confirmed", within=10)
        done = await h.order(amy, oid)
        assert done["qty"] == 3 and done["modify_pending"] is False
        assert done["reserved_cash"] == 3 * 60_100 + krx.commission(3 * 60_100)
        assert any(e["detail"] == "modified" for e in done["history"])
        assert any(e["status"] == "MODIFY_PENDING" for e in done["history"])
        p = (await h.http.get("/api/portfolio", headers=amy)).json()
        assert p["reserved_cash"] == done["reserved_cash"]

        # The total quantity down to 2: the reserve follows.
        r = await h.http.patch(f"/api/orders/{oid}", json={"quantity": 2}, headers=amy)
        assert r.status_code == 202, r.text

        async def resized() -> bool:
            o = await h.order(amy, oid)
            return o["status"] == "ACCEPTED" and o["qty"] == 2

        await h.trade_until(resized, "the resize to be confirmed", within=10)
        done = await h.order(amy, oid)
        assert done["reserved_cash"] == 2 * 60_100 + krx.commission(2 * 60_100)
        # The paper broker's book agrees.
        ref = await h.hoga.orders.account_ref(done["account_id"])
        assert ref is not None
        (rep,) = [
            x
            for x in await h.hoga.paper.order_reports(ref, krx.trading_date(h.hoga.clock.now()))
            if x.broker_order_id == done["broker_order_id"]
        ]
        assert (rep.qty, rep.price) == (2, 60_100)


async def test_a_crossing_price_executes(tmp_path: Path, sqlite_url: str) -> None:
    async with running(tmp_path, sqlite_url) as h:
        bo = await h.user("bob", "basic")
        h.pump(300)
        order = await _resting_buy(h, bo, 1, 60_000)
        inst = h.hoga.quotes.instrument(SYMBOL)
        assert inst is not None
        upper = krx.price_limits(inst.base_price, inst.kind)[1]
        r = await h.http.patch(f"/api/orders/{order['id']}", json={"price": upper}, headers=bo)
        assert r.status_code == 202, r.text
        done = await h.wait_status(bo, order["id"], "FILLED")
        assert done["filled_qty"] == 1 and done["reserved_cash"] == 0
        assert done["fills"][0]["price"] <= upper


async def test_bad_modifies_are_refused_and_change_nothing(tmp_path: Path, sqlite_url: str) -> None:
    async with running(tmp_path, sqlite_url, paper_initial_cash=200_000) as h:
        cy = await h.user("cyd", "basic")
        dee = await h.user("dee", "basic")
        h.pump(300)
        order = await _resting_buy(h, cy, 3, 60_000)
        oid = order["id"]
        for body in ({}, {"price": None, "quantity": None}, {"quantity": 0}, {"price": -5}):
            r = await h.http.patch(f"/api/orders/{oid}", json=body, headers=cy)
            assert r.status_code == 422, (body, r.text)
            assert r.json()["error"]["code"] == "order.invalid_modify"
        r = await h.http.patch(f"/api/orders/{oid}", json={"quantity": 3}, headers=cy)
        assert r.status_code == 422  # nothing to change
        r = await h.http.patch(f"/api/orders/{oid}", json={"price": "1"}, headers=cy)
        assert r.status_code == 422
        # A modify never adds shares (domain.orders.check_modify; brokers cannot either).
        r = await h.http.patch(f"/api/orders/{oid}", json={"quantity": 4}, headers=cy)
        assert r.status_code == 422, r.text
        assert r.json()["error"]["code"] == "order.invalid_modify"
        # The risk gate weighs the order as it would stand: 3 shares at 67,000 need more cash
        # than there is.
        r = await h.http.patch(f"/api/orders/{oid}", json={"price": 67_000}, headers=cy)
        assert r.status_code == 422, r.text
        err = r.json()["error"]
        assert err["code"] == "order.invalid_modify"
        assert err["details"]["reason_code"] == "risk.insufficient_cash"
        # ... but the same cash re-prices the order it already holds it for.
        r = await h.http.patch(f"/api/orders/{oid}", json={"price": 61_000}, headers=cy)
        assert r.status_code == 202, r.text
        # Off the tick grid: the gate's refusal.
        r2 = await h.http.patch(f"/api/orders/{oid}", json={"price": 61_001}, headers=cy)
        assert r2.status_code in (409, 422)
        # Someone else's order does not exist.
        r = await h.http.patch(f"/api/orders/{oid}", json={"price": 61_000}, headers=dee)
        assert r.status_code == 404
        done = await h.wait_status(cy, oid, "ACCEPTED")
        assert done["price"] == 61_000 and done["qty"] == 3
        # A closed order cannot be modified.
        r = await h.http.delete(f"/api/orders/{oid}", headers=cy)
        assert r.status_code == 202
        await h.wait_status(cy, oid, "CANCELLED")
        r = await h.http.patch(f"/api/orders/{oid}", json={"price": 60_000}, headers=cy)
        assert r.status_code == 409
        assert r.json()["error"]["code"] == "order.not_modifiable"


async def test_a_refused_modify_leaves_the_order_working_unchanged(
    tmp_path: Path, sqlite_url: str
) -> None:
    faults = PaperFaults()
    async with running(tmp_path, sqlite_url, faults=faults) as h:
        ed = await h.user("eddy", "basic")
        h.pump(300)
        order = await _resting_buy(h, ed, 2, 60_000)
        faults.reject_next = 1
        r = await h.http.patch(f"/api/orders/{order['id']}", json={"price": 60_500}, headers=ed)
        assert r.status_code == 202, r.text

        async def refused() -> bool:
            o = await h.order(ed, order["id"])
            return o["status"] == "ACCEPTED" and o["reason_code"] == "paper.fault"

        await h.trade_until(refused, "the refusal to be recorded", within=10)
        done = await h.order(ed, order["id"])
        assert (done["price"], done["qty"]) == (60_000, 2)
        assert done["reserved_cash"] == 2 * 60_000 + krx.commission(2 * 60_000)
        assert any(e["detail"] == "modify refused: paper.fault" for e in done["history"])


async def test_a_modify_pending_at_restart_leaves_the_order_unchanged(
    tmp_path: Path, sqlite_url: str
) -> None:
    async with running(tmp_path, sqlite_url) as h:
        fi = await h.user("fiona", "basic")
        h.pump(300)
        order = await _resting_buy(h, fi, 2, 60_000)
        await h.hoga.dispatcher.stop()  # nothing goes out any more
        r = await h.http.patch(f"/api/orders/{order['id']}", json={"price": 60_500}, headers=fi)
        assert r.status_code == 202, r.text
        assert r.json()["status"] == "MODIFY_PENDING" and r.json()["modify_pending"] is True
        # Cancelling now would race the modify.
        r = await h.http.delete(f"/api/orders/{order['id']}", headers=fi)
        assert r.status_code == 409 and r.json()["error"]["code"] == "order.in_flight"
    async with running(tmp_path, sqlite_url) as h:
        fi = await h.login("fiona")
        done = await h.order(fi, order["id"])
        assert done["status"] == "ACCEPTED"
        assert (done["price"], done["qty"]) == (60_000, 2)
        assert done["reserved_cash"] == 2 * 60_000 + krx.commission(2 * 60_000)
        assert any(e["detail"] == "modify not applied" for e in done["history"])


async def test_order_answers_match_their_declared_models(tmp_path: Path, sqlite_url: str) -> None:
    """The OpenAPI document declares the order endpoints' answers and error statuses, and what
    the server answers validates against the declared models."""
    from hoga.api.schemas import DeniedOrder, OrderDetail, OrderList, OrderView

    async with running(tmp_path, sqlite_url, paper_initial_cash=100_000) as h:
        gil = await h.user("gil", "basic")
        doc = (await h.http.get("/api/openapi.json")).json()
        item = doc["paths"]["/api/orders/{order_id}"]
        assert item["patch"]["responses"]["202"]["content"]["application/json"]["schema"]
        assert {"404", "409", "422"} <= set(item["patch"]["responses"])
        assert {"404", "409"} <= set(item["delete"]["responses"])
        assert "OrderDetail" in str(item["get"]["responses"]["200"])
        h.pump(300)
        order = await _resting_buy(h, gil, 1, 60_000)
        OrderView.model_validate(order)
        OrderDetail.model_validate(await h.order(gil, order["id"]))
        listed = await h.http.get("/api/orders", headers=gil)
        OrderList.model_validate(listed.json())
        r = await h.http.patch(f"/api/orders/{order['id']}", json={"price": 60_100}, headers=gil)
        assert OrderView.model_validate(r.json()).modify_pending in (True, False)
        denied = await h.post_order(gil, type="limit", qty=50, price=60_000)
        assert denied.status_code == 422
        assert DeniedOrder.model_validate(denied.json()).order.status == "DENIED"
