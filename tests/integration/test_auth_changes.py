"""Disabling a user, logging out and changing a password take effect at once, whichever
process made the change (issue 12, "a disabled user keeps trading").

The change travels through the database (``auth_changes``): a second ``AdminContext`` on the
same database - what ``hoga user disable`` builds - shares no memory with the server.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
import websockets
from websockets.exceptions import ConnectionClosed

from hoga.domain.errors import Unauthorized
from hoga.domain.orders import OrderIntent, OrderType, Side
from hoga.server.admin import AdminContext
from tests.helpers import PASSWORD, Harness, eventually, live_server, make_settings, running
from tests.integration.test_strategies_api import _started

SYMBOL = "005930"


async def _session(h: Harness, name: str) -> tuple[dict[str, str], str]:
    r = await h.http.post("/api/auth/login", json={"username": name, "password": PASSWORD})
    assert r.status_code == 200, r.text
    token = r.json()["access_token"]
    return {"Authorization": f"Bearer {token}"}, token


async def _signed_up(h: Harness, name: str, tier: str) -> tuple[dict[str, str], str]:
    """Create the user and log in once."""
    await h.hoga.auth.create_user(name, PASSWORD, tier, actor_id=None, ip=None)
    return await _session(h, name)


async def _socket(addr: str, path: str, token: str) -> Any:
    conn = await websockets.connect(f"ws://{addr}{path}")
    await conn.send(json.dumps({"type": "auth", "token": token}))
    msg = json.loads(await asyncio.wait_for(conn.recv(), 5))
    assert msg == {"type": "auth", "ok": True, "user": msg["user"]}, msg
    return conn


async def _closed_with(conn: Any, code: int, within: float = 2.0) -> None:
    """The server closes the socket with ``code`` within ``within`` seconds."""
    try:
        async with asyncio.timeout(within):
            while True:
                await conn.recv()
    except ConnectionClosed:
        pass
    assert conn.close_code == code, conn.close_code


async def _still_open(conn: Any) -> None:
    await conn.send(json.dumps({"type": "ping"}))
    while True:
        msg = json.loads(await asyncio.wait_for(conn.recv(), 5))
        if msg["type"] == "pong":
            return


async def _disable_elsewhere(tmp_path: Path, db_url: str, name: str) -> None:
    """What ``hoga user disable NAME`` does: its own process state, the same database."""
    ctx = AdminContext(make_settings(tmp_path, db_url))
    await ctx.start()
    try:
        user = await ctx.auth.find_user(name)
        await ctx.auth.admin_update(user.id, actor_id=None, ip="cli", is_active=False)
    finally:
        await ctx.close()


async def test_disabling_from_another_process_refuses_tokens_stops_strategies_closes_sockets(
    tmp_path: Path, db_url: str
) -> None:
    async with running(tmp_path, db_url) as h, live_server(h.hoga) as addr:
        headers, token = await _signed_up(h, "amy", "basic")
        _, other_token = await _session(h, "amy")
        events = await _socket(addr, "/ws/events", token)
        quotes = await _socket(addr, "/ws/market-data", other_token)
        sid = await _started(h, headers, "cross", "sma_cross", [SYMBOL], fast=2, slow=3, qty=1)
        assert (await h.http.get("/api/me", headers=headers)).status_code == 200

        await _disable_elsewhere(tmp_path, db_url, "amy")

        async def refused() -> bool:
            r = await h.http.get("/api/me", headers=headers)
            return r.status_code == 401 and r.json()["error"]["code"] == "auth.disabled"

        await eventually(
            refused, within=2.0, what="the token refused as auth.disabled", stretch=False
        )
        await _closed_with(events, 4001)
        await _closed_with(quotes, 4001)
        await _stopped(h, sid)
        view = await h.hoga.strategies.get((await h.hoga.auth.find_user("amy")).id, sid)
        assert view["status"] == "error" and "disabled" in view["last_error"]["message"]
        r = await h.post_order(headers, qty=1)
        assert r.status_code == 401 and r.json()["error"]["code"] == "auth.disabled"
        # Nor can the strategy's code path place one any more.
        user_id = (await h.hoga.auth.find_user("amy")).id
        with pytest.raises(Unauthorized) as refused_order:
            await h.hoga.orders.submit(
                user_id, OrderIntent(symbol=SYMBOL, side=Side.BUY, type=OrderType.MARKET, qty=1)
            )
        assert refused_order.value.code == "auth.disabled"


async def test_disabling_through_the_admin_api_acts_at_once(
    tmp_path: Path, sqlite_url: str
) -> None:
    async with running(tmp_path, sqlite_url) as h, live_server(h.hoga) as addr:
        headers, token = await _signed_up(h, "ben", "basic")
        events = await _socket(addr, "/ws/events", token)
        sid = await _started(h, headers, "cross", "sma_cross", [SYMBOL], fast=2, slow=3, qty=1)
        admin = await h.admin()
        user_id = (await h.hoga.auth.find_user("ben")).id
        r = await h.http.patch(
            f"/api/admin/users/{user_id}", json={"is_active": False}, headers=admin
        )
        assert r.status_code == 200, r.text
        r = await h.http.get("/api/me", headers=headers)
        assert r.status_code == 401 and r.json()["error"]["code"] == "auth.disabled"
        await _closed_with(events, 4001)
        await _stopped(h, sid)


async def test_logout_and_password_change_close_the_ended_sessions_sockets(
    tmp_path: Path, db_url: str
) -> None:
    async with running(tmp_path, db_url) as h, live_server(h.hoga) as addr:
        first, first_token = await _signed_up(h, "cat", "free")
        second, second_token = await _session(h, "cat")
        third, third_token = await _session(h, "cat")
        a = await _socket(addr, "/ws/events", first_token)
        b = await _socket(addr, "/ws/market-data", second_token)
        c = await _socket(addr, "/ws/events", third_token)

        r = await h.http.post("/api/auth/logout", headers=first, json={})
        assert r.status_code == 200, r.text
        await _closed_with(a, 4001)
        await _still_open(b)
        await _still_open(c)

        # A password change ends every other session: their sockets close, this one's stay.
        r = await h.http.post(
            "/api/me/password",
            headers=third,
            json={"current_password": PASSWORD, "new_password": "another-horse-42"},
        )
        assert r.status_code == 200, r.text
        await _closed_with(b, 4001)
        await _still_open(c)
        assert (await h.http.get("/api/me", headers=second)).status_code == 401
        assert (await h.http.get("/api/me", headers=third)).status_code == 200
        await c.close()


async def _stopped(h: Harness, sid: int) -> None:
    """The live driver stops the strategy within two seconds (not stretched for a loaded
    machine: "at once" is the promise under test)."""

    async def gone() -> bool:
        return sid not in h.hoga.live_strategies._runs

    await eventually(gone, within=2.0, what="strategy stop", stretch=False)
