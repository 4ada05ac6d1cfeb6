"""A broker order number can name two orders: Kiwoom's numbers restart every day, and in
cluster mode a user's paper book that moved to another server started numbering afresh. An
execution must never be booked to an order of another symbol or side that happens to carry
the same number (found by the cluster tester: a market buy of 000660 filled a resting limit
buy of 005930 at 60,000 with 000660's price)."""

from __future__ import annotations

from pathlib import Path

from hoga.brokers.base import FillEvent, FillReport
from hoga.domain.orders import OrderStatus, Side
from tests.helpers import running


async def test_a_fill_under_a_reused_number_is_not_booked_to_another_symbols_order(
    tmp_path: Path, db_url: str
) -> None:
    async with running(tmp_path, db_url) as h:
        sue = await h.user("sue", "basic")
        h.pump(200)
        r = await h.post_order(sue, type="limit", price=60_000, qty=1)  # rests far below
        resting = await h.wait_status(sue, r.json()["id"], "ACCEPTED")
        uid = await h.me(sue)
        number = resting["broker_order_id"]
        assert number

        # The broker reports an execution under the same number - for another order.
        fill = FillReport(
            broker_order_id=number,
            fill_id="X1",
            symbol="000660",
            side=Side.BUY,
            qty=1,
            price=197_700,
            ts=h.hoga.clock.time(),
        )
        await h.hoga.orders.on_execution(resting["account_id"], FillEvent(fill))

        order = await h.hoga.orders.get(uid, resting["id"])
        assert order.status == OrderStatus.ACCEPTED and order.filled_qty == 0
        portfolio = (await h.http.get("/api/portfolio", headers=sue)).json()
        assert [p for p in portfolio["positions"] if p["symbol"] == "000660"] == []
        # It waits as an orphan for the order that really has that number.
        assert h.hoga.orders.held_events() == 0
        assert (resting["account_id"], number) in h.hoga.orders.events._orphans
