"""A disabled user does not trade: orders still waiting in the queue are withdrawn when the
operator disables the user, and a restart never sends a disabled user's queued orders (found
after issue 12: a queued order went out as soon as its account's turn came)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from hoga.domain.orders import OrderStatus
from hoga.server.admin import AdminContext
from tests.helpers import Harness, eventually, make_settings, running

SYMBOL = "005930"


def _placed(h: Harness) -> int:
    journal = h.hoga.data_dir / "paper" / "journal.jsonl"
    if not journal.exists():
        return 0
    return sum(
        1 for line in journal.read_text().splitlines() if json.loads(line).get("t") == "place"
    )


async def _queued_order(h: Harness, headers: dict[str, str]) -> dict[str, Any]:
    r = await h.http.post(
        "/api/orders",
        headers=headers,
        json={"symbol": SYMBOL, "side": "buy", "type": "limit", "price": 70000, "qty": 1},
    )
    assert r.status_code == 202, r.text
    order: dict[str, Any] = r.json()
    assert order["status"] == "QUEUED"
    return order


async def test_disabling_a_user_withdraws_their_queued_orders(tmp_path: Path, db_url: str) -> None:
    async with running(tmp_path, db_url, start_paused=True) as h:
        sue = await h.user("sue", "basic")
        bob = await h.user("bob", "basic")
        sue_id = (await h.http.get("/api/me", headers=sue)).json()["id"]
        bob_id = (await h.http.get("/api/me", headers=bob)).json()["id"]
        mine = [await _queued_order(h, sue) for _ in range(2)]
        bobs = await _queued_order(h, bob)
        admin = await h.admin()

        r = await h.http.patch(
            f"/api/admin/users/{sue_id}", headers=admin, json={"is_active": False}
        )
        assert r.status_code == 200, r.text

        async def withdrawn() -> bool:
            orders = [await h.hoga.orders.get(sue_id, o["id"]) for o in mine]
            return all(o.status == OrderStatus.CANCELLED for o in orders)

        await eventually(withdrawn, what="sue's queued orders to be withdrawn")
        order = await h.hoga.orders.get(sue_id, mine[0]["id"])
        assert order.reason_code == "user.disabled"
        assert [i.user_id for i in h.hoga.orders.core.queue.items()] == [bob_id]

        # Resuming sends bob's order and nothing of sue's.
        await h.http.post("/api/admin/resume", headers=admin)
        await h.wait_status(bob, bobs["id"], "ACCEPTED", "FILLED", "PARTIALLY_FILLED")
        assert _placed(h) == 1


async def test_a_restart_never_sends_a_disabled_users_queued_order(
    tmp_path: Path, db_url: str
) -> None:
    async with running(tmp_path, db_url, start_paused=True) as h:
        sue = await h.user("sue", "basic")
        sue_id = (await h.http.get("/api/me", headers=sue)).json()["id"]
        order = await _queued_order(h, sue)
    # Disabled from the command line while the server is down (``hoga user disable sue``).
    ctx = AdminContext(make_settings(tmp_path, db_url))
    await ctx.start()
    try:
        user = await ctx.auth.find_user("sue")
        await ctx.auth.admin_update(user.id, actor_id=None, ip="cli", is_active=False)
    finally:
        await ctx.close()

    async with running(tmp_path, db_url) as h:
        got = await h.hoga.orders.get(sue_id, order["id"])
        assert got.status == OrderStatus.CANCELLED
        assert got.reason_code == "user.disabled"
        assert h.hoga.orders.core.queue.size() == 0
        assert _placed(h) == 0
