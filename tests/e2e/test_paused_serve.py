"""``hoga serve --paused`` and ``hoga pause``/``resume`` reaching a running server through the
database (issue 11)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.conftest import login, start_server
from tests.helpers import ADMIN_PASSWORD, eventually_sync

# Several server starts on a loaded 2-core machine take longer than the default 120 s.
pytestmark = pytest.mark.timeout(360)


def _scenario(data: Path) -> None:
    srv = start_server(data, "paused.log", "--paused", HOGA_ADMIN_PASSWORD=ADMIN_PASSWORD)
    try:
        assert "PAUSED" in srv.output()
        headers = login(srv.url)
        r = httpx.post(
            f"{srv.url}/api/orders",
            headers=headers,
            json={"symbol": "005930", "side": "buy", "type": "market", "qty": 2},
        )
        assert r.status_code == 202, r.text
        order_id = r.json()["id"]

        def waiting() -> dict[str, Any] | None:
            q = httpx.get(f"{srv.url}/api/queue-status", headers=headers).json()["queued"]
            return q[0]["waiting"] if q and q[0]["waiting"] else None

        assert eventually_sync(waiting, 60.0, "a held order")["code"] == "server.paused"
        status = httpx.get(f"{srv.url}/api/admin/status", headers=headers).json()
        assert status["paused"]["paused"] is True

        res = srv.cli("resume")
        assert "the running server" in res.stdout and "applied" in res.stdout, res.stdout

        def filled() -> bool:
            o = httpx.get(f"{srv.url}/api/orders/{order_id}", headers=headers).json()
            return bool(o["status"] == "FILLED")

        eventually_sync(filled, 60.0, "the held order to go out and fill")
        status = httpx.get(f"{srv.url}/api/admin/status", headers=headers).json()
        assert status["paused"]["paused"] is False

        res = srv.cli("pause", "--reason", "nightly restore drill")
        assert "applied" in res.stdout, res.stdout
        status = httpx.get(f"{srv.url}/api/admin/status", headers=headers).json()
        assert status["paused"]["reason"] == "nightly restore drill"
        assert srv.stop() == 0
    finally:
        if srv.proc.poll() is None:
            srv.proc.kill()
    # Paused in the database: the next start is paused without the flag.
    again = start_server(data, "again.log")
    try:
        assert "PAUSED" in again.output()
    finally:
        again.stop()
    res = again.cli("resume")
    assert "no server is running" in res.stdout, res.stdout


async def test_serve_paused_then_cli_resume_and_pause_reach_the_running_server(
    tmp_path: Path,
) -> None:
    await asyncio.to_thread(_scenario, tmp_path / "var")
