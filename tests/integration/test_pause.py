"""A paused server (``hoga serve --paused``, ``hoga pause``, the admin API, a restore): orders
are accepted but held, strategies are stopped with their status kept, and resuming restores
both (issue 11)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from hoga.execution.control import write_pause
from tests.helpers import Harness, eventually, running
from tests.integration.test_strategies_api import _create, _started

SYMBOL = "005930"


def _placed(h: Harness, client_order_id: str) -> int:
    journal = h.hoga.data_dir / "paper" / "journal.jsonl"
    if not journal.exists():
        return 0
    return sum(
        1
        for line in journal.read_text().splitlines()
        if (rec := json.loads(line)).get("t") == "place" and rec.get("c") == client_order_id
    )


async def _held(h: Harness, headers: dict[str, str], order_id: int) -> dict[str, Any]:
    """Wait until the dispatcher has looked at the order's account and held it."""
    order = await h.order(headers, order_id)

    async def looked() -> bool:
        h.hoga.dispatcher.wake_all()
        return order["account_id"] in h.hoga.dispatcher.held

    await eventually(looked, what="the dispatcher to hold the account")
    return await h.order(headers, order_id)


async def test_paused_start_holds_orders_and_strategies_until_an_admin_resumes(
    tmp_path: Path, db_url: str
) -> None:
    async with running(tmp_path, db_url) as h:
        sue = await h.user("sue", "basic")
        strategy = await _create(h, sue, "first", "sma_cross", [SYMBOL])
        r = await h.http.post(f"/api/strategies/{strategy['id']}/start", headers=sue)
        assert r.status_code == 200, r.text
        assert h.hoga.live_strategies.status()["running"] == 1

    async with running(tmp_path, db_url, start_paused=True) as h:
        sue = await h.login("sue")
        admin = await h.admin()
        # The strategy is not running, but keeps its status for the resume.
        assert h.hoga.live_strategies.status()["running"] == 0
        listed = (await h.http.get("/api/strategies", headers=sue)).json()["strategies"]
        assert [s["status"] for s in listed] == ["running"]
        other = await _create(h, sue, "second", "sma_cross", [SYMBOL])
        r = await h.http.post(f"/api/strategies/{other['id']}/start", headers=sue)
        assert r.status_code == 409 and r.json()["error"]["code"] == "server.paused"

        # Orders are accepted into the queue, and held there.
        r = await h.post_order(sue, qty=1, client_order_id="p1")
        assert r.status_code == 202, r.text
        order = await _held(h, sue, r.json()["id"])
        assert order["status"] == "QUEUED"
        assert order["waiting"]["code"] == "server.paused"
        assert _placed(h, "p1") == 0
        status = (await h.http.get("/api/queue-status", headers=sue)).json()
        assert status["paused"] is True
        assert [q["waiting"]["code"] for q in status["queued"]] == ["server.paused"]
        admin_status = (await h.http.get("/api/admin/status", headers=admin)).json()
        assert admin_status["paused"]["paused"] is True
        assert admin_status["paused"]["by"] == "hoga serve --paused"
        ready = await h.http.get("/ready")
        assert ready.status_code == 503
        assert ready.json()["parts"]["dispatcher"]["hold"] == "server.paused"

        r = await h.http.post("/api/admin/resume", headers=admin)
        assert r.status_code == 200 and r.json()["paused"] is False
        done = await h.wait_status(sue, order["id"], "FILLED")
        assert done["waiting"] is None
        assert _placed(h, "p1") == 1
        assert h.hoga.live_strategies.status()["running"] == 1


async def test_a_pause_written_to_the_database_reaches_the_running_server(
    tmp_path: Path, db_url: str
) -> None:
    """What ``hoga pause``/``resume`` and a restore do: write the state; the server applies it."""
    async with running(tmp_path, db_url) as h:
        sue = await h.user("sue", "basic")
        await _started(h, sue, "first", "sma_cross", [SYMBOL])
        assert h.hoga.live_strategies.status()["running"] == 1

        await write_pause(h.hoga.db, h.hoga.clock, True, reason="restored copy", by="test")
        await h.hoga.control.poll()  # the server's watch loop does this every 2 s
        assert h.hoga.control.paused
        assert h.hoga.live_strategies.status()["running"] == 0
        listed = (await h.http.get("/api/strategies", headers=sue)).json()["strategies"]
        assert [s["status"] for s in listed] == ["running"]
        r = await h.post_order(sue, qty=1)
        order = await _held(h, sue, r.json()["id"])
        assert order["waiting"]["code"] == "server.paused"
        assert "restored copy" in order["waiting"]["message"]

        await write_pause(h.hoga.db, h.hoga.clock, False, reason="", by="test")
        await h.hoga.control.poll()
        await h.wait_status(sue, order["id"], "FILLED")
        assert h.hoga.live_strategies.status()["running"] == 1
