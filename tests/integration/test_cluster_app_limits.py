"""Two hoga servers in cluster mode on one PostgreSQL database and one NATS: a lock-out, a
revoked session, a pause and a user's API budget made on one hold on the other (issue 18).

Where cluster mode's own server guard has not arrived yet (cluster-core), the single-server
guard is replaced by one that admits peers; everything else is the real server, with its own
NATS connection on this test's prefix.
"""

from __future__ import annotations

import base64
import contextlib
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from hoga.app import HogaApp
from tests.cluster_support import NATS_URL, Buses, buses
from tests.helpers import PASSWORD, Harness, eventually, make_settings

pytestmark = pytest.mark.postgres


class AdmitAll:
    """A ``ServerGuard`` that lets every server in (cluster mode's guard stands in here)."""

    async def acquire(self) -> None:
        return None

    async def check(self) -> bool:
        return True

    async def release(self) -> None:
        return None


@contextlib.asynccontextmanager
async def two_servers(tmp_path: Path, pg_url: str, b: Buses) -> AsyncIterator[list[Harness]]:
    await b.new("probe")  # skips (or fails under CI) without NATS
    shared: dict[str, Any] = {
        "cluster_nats_url": NATS_URL,
        "cluster_prefix": b.prefix,
        "jwt_secret": base64.b64encode(os.urandom(48)).decode(),
        "master_key": base64.b64encode(os.urandom(32)).decode(),
    }
    started: list[Harness] = []
    try:
        for name in ("a", "b"):
            app = HogaApp(
                make_settings(tmp_path / name, pg_url, cluster_instance_id=name, **shared),
                drive_feed=False,
            )
            if getattr(app, "cluster", None) is None:  # no cluster guard on this branch yet
                app.guard = AdmitAll()
            # Sign-in changes must travel by the nudge: the outbox poll is made too slow to help.
            app.auth_watch.interval = 60.0
            await app.start()
            started.append(Harness(app))
        yield started
    finally:
        for h in reversed(started):
            await h.close()


async def _me(h: Harness, headers: dict[str, str]) -> int:
    return (await h.http.get("/api/me", headers=headers)).status_code


async def test_limits_made_on_one_server_hold_on_the_other(tmp_path: Path, pg_url: str) -> None:
    async with buses() as b, two_servers(tmp_path, pg_url, b) as (a, c):
        sue = await a.user("sue", "basic")
        assert await _me(c, sue) == 200, "a token from one server works on the other"

        # A lock-out on a is a lock-out on c, even for the right password.
        for _ in range(5):
            r = await a.http.post("/api/auth/login", json={"username": "bob", "password": "x"})
            assert r.status_code == 401
        r = await a.http.post("/api/auth/login", json={"username": "bob", "password": "x"})
        assert r.json()["error"]["code"] == "auth.locked"

        async def locked_on_c() -> bool:
            r = await c.http.post("/api/auth/login", json={"username": "bob", "password": "y"})
            return bool(r.json()["error"]["code"] == "auth.locked")

        await eventually(locked_on_c, within=2.0, what="the lock-out to reach server c")

        # A session ended on a is refused on c within the nudge's bound.
        r = await a.http.post("/api/auth/logout", headers=sue)
        assert r.status_code in (200, 204), r.text

        async def refused_on_c() -> bool:
            return await _me(c, sue) == 401

        await eventually(refused_on_c, within=2.0, what="c to refuse the revoked token")

        # The admin's status names the server, the cluster's members and the users it owns.
        admin = await a.admin()
        status = (await a.http.get("/api/admin/status", headers=admin)).json()["cluster"]
        assert status["instance"] == a.hoga.cluster.instance_id and status["connected"]
        assert set(status["members"]) <= {a.hoga.cluster.instance_id, c.hoga.cluster.instance_id}
        assert status["users"] == sorted(a.hoga.cluster.ownership.started)

        # The kill switch on a holds c's sends.
        r = await a.http.post("/api/admin/pause", json={"reason": "drill"}, headers=admin)
        assert r.status_code == 200, r.text

        async def c_paused() -> bool:
            hold = c.hoga.gate.server_hold()
            return hold is not None and hold.code == "server.paused"

        await eventually(c_paused, within=2.0, what="c to hold its sends")
        ann = await c.user("ann", "basic")
        r = await c.http.post(
            "/api/orders",
            headers=ann,
            json={"symbol": "005930", "side": "buy", "type": "market", "qty": 1},
        )
        assert r.status_code in (200, 201, 202), r.text
        order = r.json()

        async def held() -> bool:
            c.hoga.dispatcher.wake_all()
            got = (await c.http.get(f"/api/orders/{order['id']}", headers=ann)).json()
            waiting = got.get("waiting") or {}
            return bool(got["status"] == "QUEUED" and waiting.get("code") == "server.paused")

        await eventually(held, within=3.0, what="c to hold the order")

        # One user's API budget is spent across both servers.
        uid = (await c.http.get("/api/me", headers=ann)).json()["id"]
        await a.hoga.auth.admin_update(uid, actor_id=None, ip=None, api_calls_per_minute=12)
        ann_a = await a.login("ann", PASSWORD)

        async def per_minute_seen() -> bool:
            return (await c.hoga.auth.user(uid)).api_calls_per_minute == 12

        await eventually(per_minute_seen, within=2.0, what="c to see the new budget")
        codes = [await _me(a, ann_a) for _ in range(6)] + [await _me(c, ann) for _ in range(10)]
        assert codes.count(429) >= 4 and codes.count(200) <= 12, codes
