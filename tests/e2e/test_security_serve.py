"""Issue 12 against a real ``hoga serve``: ``hoga user disable`` from a shell reaches the
running server through the database within 2 s (SQLite and PostgreSQL), and forged
``X-Forwarded-For`` headers from a local client change nothing."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import httpx
import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from tests.e2e.conftest import HOGA, Server, login, start_server
from tests.helpers import ADMIN_PASSWORD, eventually_sync

PASSWORD = "bob-password-123"
# Server start-ups take minutes on a loaded machine.
pytestmark = pytest.mark.timeout(360)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def served(request: pytest.FixtureRequest, tmp_path: Path) -> object:
    extra = {"HOGA_ADMIN_PASSWORD": ADMIN_PASSWORD}
    if request.param == "postgres":
        extra["HOGA_DATABASE_URL"] = request.getfixturevalue("pg_url")
    srv = start_server(tmp_path / "var", "server.log", **extra)
    yield srv
    if srv.proc.poll() is None:
        srv.proc.kill()
        srv.proc.wait(10)


def test_cli_disable_reaches_the_running_server_within_two_seconds(served: Server) -> None:
    srv = served
    srv.cli("user", "add", "bob", "--tier", "basic", "--password", PASSWORD)
    bob = login(srv.url, "bob", PASSWORD)
    token = bob["Authorization"].split()[1]
    http = httpx.Client(base_url=srv.url, timeout=10)
    r = http.post(
        "/api/strategies",
        json={
            "name": "x",
            "kind": "sma_cross",
            "symbols": ["005930"],
            "params": {"fast": 2, "slow": 3, "qty": 1},
        },
        headers=bob,
    )
    assert r.status_code == 201, r.text
    sid = r.json()["id"]
    assert http.post(f"/api/strategies/{sid}/start", headers=bob).json()["status"] == "running"
    with connect(f"ws{srv.url[4:]}/ws/events") as ws:
        ws.send(json.dumps({"type": "auth", "token": token}))
        assert json.loads(ws.recv(timeout=10))["ok"] is True

        done = subprocess.run(
            [*HOGA, "user", "disable", "bob"],
            env=srv.env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, done.stderr

        def refused() -> bool:
            r = http.get("/api/me", headers=bob)
            return r.status_code == 401 and r.json()["error"]["code"] == "auth.disabled"

        eventually_sync(
            refused, 2.0, "the token refused (auth.disabled)", pause=0.02, stretch=False
        )
        r = http.post(
            "/api/orders",
            json={"symbol": "005930", "side": "buy", "type": "market", "qty": 1},
            headers=bob,
        )
        assert r.status_code == 401 and r.json()["error"]["code"] == "auth.disabled"

        def socket_closed() -> bool:
            try:
                ws.recv(timeout=0.05)
            except TimeoutError:
                return False
            except ConnectionClosed:
                return True
            return False

        eventually_sync(socket_closed, 2.0, "the WebSocket closed", pause=0.02, stretch=False)
        assert ws.close_code == 4001
    admin = login(srv.url, "admin", ADMIN_PASSWORD)

    def stopped() -> bool:
        errors = http.get("/api/admin/strategy-errors", headers=admin).json()["errors"]
        return any(e["strategy_id"] == sid and e["status"] == "error" for e in errors)

    eventually_sync(stopped, 2.0, "the strategy stopped", pause=0.02, stretch=False)
    assert "Traceback" not in srv.output()


def test_forged_forwarding_headers_are_ignored(tmp_path: Path) -> None:
    srv = start_server(tmp_path / "var", "server.log", HOGA_ADMIN_PASSWORD=ADMIN_PASSWORD)
    try:
        srv.cli("user", "add", "eve", "--password", PASSWORD)
        eve = login(srv.url, "eve", PASSWORD)
        http = httpx.Client(base_url=srv.url, timeout=10)
        # A local client claiming to come from the office network cannot set an allowlist
        # that only the office could pass...
        r = http.put(
            "/api/me/ip-allowlist",
            json={"entries": ["203.0.113.0/24"]},
            headers={**eve, "X-Forwarded-For": "203.0.113.5"},
        )
        assert r.status_code == 422 and r.json()["error"]["code"] == "ip_allowlist.locks_you_out"
        # ...and its real address is what counts against an allowlist.
        r = http.put("/api/me/ip-allowlist", json={"entries": ["127.0.0.1/32"]}, headers=eve)
        assert r.status_code == 200, r.text
        r = http.get("/api/me", headers={**eve, "X-Forwarded-For": "198.51.100.7"})
        assert r.status_code == 200
        # Sign-in locks follow the real address, not the header.
        for n in range(5):
            http.post(
                "/api/auth/login",
                json={"username": "eve", "password": "wrong-password-0"},
                headers={"X-Forwarded-For": f"198.51.100.{n}"},
            )
        r = http.post(
            "/api/auth/login",
            json={"username": "eve", "password": PASSWORD},
            headers={"X-Forwarded-For": "198.51.100.99"},
        )
        assert r.status_code == 429, r.text
    finally:
        srv.stop()
