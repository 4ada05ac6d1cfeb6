"""Cluster mode's seams in the single-server parts, on a running app without NATS: a strategy
started or stopped through a server that does not own its user is recorded and handed to the
owner, whose ``sync_user`` makes its running set match the database."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hoga.store.db import SYSTEM
from hoga.store.repos import strategies as repo
from tests.helpers import running


async def test_strategy_start_and_stop_through_a_non_owner_reach_the_owner(
    tmp_path: Path, sqlite_url: str
) -> None:
    async with running(tmp_path, sqlite_url) as h:
        alice = await h.user("alice", "basic")
        uid = (await h.http.get("/api/me", headers=alice)).json()["id"]
        runner = h.hoga.live_strategies
        owned = {"here": False}
        handed: list[int] = []
        runner.owns = lambda user_id: owned["here"]
        runner.on_remote = handed.append
        body: dict[str, Any] = {"name": "x", "kind": "sma_cross", "symbols": ["005930"],
                                "params": {"fast": 2, "slow": 3, "qty": 1}}  # fmt: skip
        sid = (await h.http.post("/api/strategies", json=body, headers=alice)).json()["id"]

        r = await h.http.post(f"/api/strategies/{sid}/start", headers=alice)
        assert r.status_code == 200 and r.json()["status"] == "running"
        assert handed == [uid] and sid not in runner._runs  # not run by the non-owner

        owned["here"] = True  # this server is the owner now: it picks the change up
        await runner.sync_user(uid)
        assert sid in runner._runs

        owned["here"] = False
        r = await h.http.post(f"/api/strategies/{sid}/stop", headers=alice)
        assert r.json()["status"] == "stopped" and handed == [uid, uid]

        # The owner's run of a strategy another server stopped in the database ends on sync.
        owned["here"] = True
        async with h.hoga.db.tx(SYSTEM) as conn:
            await repo.update_row(conn, uid, sid, h.hoga.clock.now(), status="running")
        await runner.sync_user(uid)
        assert sid in runner._runs
        async with h.hoga.db.tx(SYSTEM) as conn:
            await repo.update_row(conn, uid, sid, h.hoga.clock.now(), status="stopped")
        await runner.sync_user(uid)
        assert sid not in runner._runs
