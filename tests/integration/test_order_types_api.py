"""Order types, time in force and venue through the HTTP API on a running app (paper broker):
the request fields are stored and shown, the risk gate refuses what no session takes, and in
calendar mode an opening-auction order is accepted before 09:00 and trades at the open.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from sqlalchemy import select

from hoga.domain.clock import KST, ManualClock
from hoga.store import tables as t
from hoga.store.db import SYSTEM
from tests.helpers import eventually, running


async def test_types_tif_and_venue_are_stored_and_shown(tmp_path: Path, db_url: str) -> None:
    async with running(tmp_path, db_url) as h:
        alice = await h.user("alice", "basic")

        async def traded() -> bool:
            tick = h.hoga.market.last("005930")
            return tick is not None and tick.volume > 0 and tick.ask_size >= 3

        await h.trade_until(traded, "a trade of 005930 with size at the ask")
        r = await h.http.post(
            "/api/orders",
            json={
                "symbol": "005930",
                "side": "buy",
                "type": "best",
                "tif": "ioc",
                "venue": "KRX",
                "qty": 3,
            },
            headers=alice,
        )
        assert r.status_code == 202, r.text
        view = r.json()
        assert (view["type"], view["tif"], view["venue"]) == ("best", "ioc", "KRX")
        # IOC: it trades what the book offers at once and the rest is cancelled - never rests.
        done = await h.wait_status(alice, view["id"], "FILLED", "CANCELLED")
        assert done["tif"] == "ioc" and done["filled_qty"] > 0
        async with h.hoga.db.tx(SYSTEM) as conn:
            row = (await conn.execute(select(t.orders).where(t.orders.c.id == view["id"]))).one()
        assert (row.type, row.tif, row.venue) == ("best", "ioc", "KRX")

        # Defaults: a plain limit order is a day order on KRX.
        r = await h.http.post(
            "/api/orders",
            json={"symbol": "005930", "side": "buy", "qty": 1, "price": 60_000},
            headers=alice,
        )
        assert r.status_code == 202, r.text
        assert (r.json()["tif"], r.json()["venue"]) == ("day", "KRX")

        # A client_order_id names one order: the same id with another venue is a conflict.
        body = {"symbol": "005930", "side": "buy", "qty": 1, "price": 60_000}
        r = await h.http.post("/api/orders", json={**body, "client_order_id": "v-1"}, headers=alice)
        assert r.status_code == 202, r.text
        r = await h.http.post(
            "/api/orders",
            json={**body, "client_order_id": "v-1", "venue": "SOR"},
            headers=alice,
        )
        assert r.status_code == 409, r.text
        assert r.json()["error"]["code"] == "order.client_order_id_reused"


async def test_the_gate_refuses_what_no_session_takes(tmp_path: Path, db_url: str) -> None:
    async with running(tmp_path, db_url) as h:
        bob = await h.user("bob", "basic")
        h.pump(300)
        cases = [
            # Demo mode trades around the clock as the continuous session: no off-hours types.
            ({"type": "pre_close"}, "risk.not_in_session"),
            ({"type": "priority", "tif": "ioc"}, "order.bad_tif"),
        ]
        for extra, code in cases:
            body = {"symbol": "005930", "side": "buy", "qty": 1, **extra}
            r = await h.http.post("/api/orders", json=body, headers=bob)
            assert r.status_code == 422, r.text
            assert r.json()["error"]["code"] == code
        # Price rules per type: market-priced types take no price; a venue must be known.
        r = await h.http.post(
            "/api/orders",
            json={"symbol": "005930", "side": "buy", "qty": 1, "type": "best", "price": 70_000},
            headers=bob,
        )
        assert r.status_code == 422
        r = await h.http.post(
            "/api/orders",
            json={"symbol": "005930", "side": "buy", "qty": 1, "price": 70_000, "venue": "NYSE"},
            headers=bob,
        )
        assert r.status_code == 422


async def test_calendar_mode_opening_auction_through_the_api(tmp_path: Path, db_url: str) -> None:
    clock = ManualClock(datetime(2026, 12, 4, 8, 45, tzinfo=KST))
    async with running(tmp_path, db_url, clock=clock, market_mode="calendar") as h:
        carol = await h.user("carol", "basic")
        inst = h.hoga.market.instrument("005930")
        assert inst is not None
        # Before 09:00 a limit order goes into the opening auction (not held as "closed").
        r = await h.http.post(
            "/api/orders",
            json={"symbol": "005930", "side": "buy", "qty": 2, "price": inst.base_price},
            headers=carol,
        )
        assert r.status_code == 202, r.text
        oid = r.json()["id"]

        async def accepted() -> bool:
            return (await h.order(carol, oid))["status"] == "ACCEPTED"

        await eventually(accepted, 10.0, "the auction order at the paper broker")
        # Off-hours types are refused in the opening auction.
        r = await h.http.post(
            "/api/orders",
            json={
                "symbol": "005930",
                "side": "buy",
                "qty": 1,
                "type": "single_price",
                "price": inst.base_price,
            },
            headers=carol,
        )
        assert r.status_code == 422 and r.json()["error"]["code"] == "risk.not_in_session"
        # 09:00: one opening price for the auction.
        clock.set(datetime(2026, 12, 4, 9, 0, 1, tzinfo=KST))
        h.hoga.paper.advance()
        carol = await h.login("carol")  # 15 minutes on: a fresh access token

        async def filled() -> bool:
            await h.hoga.paper.drain()
            return (await h.order(carol, oid))["status"] == "FILLED"

        await eventually(filled, 10.0, "the opening auction fill")
        view = await h.order(carol, oid)
        assert view["avg_fill_price"] == inst.base_price
