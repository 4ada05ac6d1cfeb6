"""Test harness: a HogaApp in-process with a deterministic market, an HTTP client, a live server.

The simulator's run loop is not started: tests drive the market with ``pump`` so every price is
a function of the seed. ``eventually`` waits (bounded) for a condition the event loop will make
true - it never sleeps a fixed time hoping something happened.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import uvicorn

from hoga.app import HogaApp
from hoga.brokers.paper_book import PaperFaults
from hoga.config import Settings
from hoga.domain.clock import Clock
from hoga.net import bind_listener

ADMIN_PASSWORD = "admin-pass-123"
PASSWORD = "correct-horse-9"


def make_settings(tmp_path: Path, db_url: str, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "data_dir": tmp_path / "var",
        "database_url": db_url,
        "admin_password": ADMIN_PASSWORD,
        "sim_seed": 11,
        "sim_ticks_per_second": 50,
        "reconcile_interval": 3600,
        "duplicate_window": 0,
        # Tests point broker accounts at the loopback fakes (issue 12: off by default).
        "allow_custom_broker_urls": True,
        # (0.0.0.0 reaches this machine but does not count as loopback: real-money tests.)
        "broker_url_hosts": ["127.0.0.1", "localhost", "0.0.0.0"],
        # Tests log in to PostgreSQL as the superuser and switch roles per transaction.
        "database_allow_superuser": True,
    }
    values.update(overrides)
    return Settings(**values)


async def eventually(
    check: Callable[[], Awaitable[bool]], within: float = 5.0, what: str = "condition"
) -> None:
    """Wait until ``check()`` is true, re-checking as the event loop runs; fail after ``within`` seconds.

    Re-checks back off from 5 ms to 50 ms: checks that go through the API spend the user's
    per-minute call budget, and a slow machine must not turn a wait into a 429."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    pause = 0.005
    while True:
        if await check():
            return
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(pause)
        pause = min(0.05, pause * 1.5)


class Harness:
    """A started HogaApp plus an HTTP client speaking to it in-process."""

    def __init__(self, hoga: HogaApp) -> None:
        self.hoga = hoga
        self.http = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=hoga.api), base_url="http://hoga.test"
        )

    async def login(
        self, username: str, password: str = PASSWORD, otp: str | None = None
    ) -> dict[str, str]:
        body: dict[str, Any] = {"username": username, "password": password}
        if otp:
            body["otp"] = otp
        r = await self.http.post("/api/auth/login", json=body)
        assert r.status_code == 200, r.text
        return {"Authorization": f"Bearer {r.json()['access_token']}"}

    async def admin(self) -> dict[str, str]:
        return await self.login("admin", ADMIN_PASSWORD)

    async def user(self, name: str, tier: str = "free") -> dict[str, str]:
        await self.hoga.auth.create_user(name, PASSWORD, tier, actor_id=None, ip=None)
        return await self.login(name)

    def pump(self, n: int = 200) -> None:
        """Trade the simulated market ``n`` times."""
        self.hoga.feed.pump(n)  # type: ignore[attr-defined]

    async def trade_until(
        self, check: Callable[[], Awaitable[bool]], what: str, rounds: int = 400
    ) -> None:
        """Pump the market in small steps until ``check`` holds (fills need trades)."""
        for _ in range(rounds):
            await self.hoga.paper.drain()
            if await check():
                return
            self.pump(25)
            await asyncio.sleep(0)
        raise AssertionError(f"market never produced {what}")

    async def order(self, headers: dict[str, str], order_id: int) -> dict[str, Any]:
        r = await self.http.get(f"/api/orders/{order_id}", headers=headers)
        assert r.status_code == 200, r.text
        data: dict[str, Any] = r.json()
        return data

    async def wait_status(
        self, headers: dict[str, str], order_id: int, *statuses: str
    ) -> dict[str, Any]:
        result: dict[str, Any] = {}

        async def check() -> bool:
            nonlocal result
            result = await self.order(headers, order_id)
            return result["status"] in statuses

        await self.trade_until(check, f"order {order_id} in {statuses}")
        return result

    async def close(self) -> None:
        await self.http.aclose()
        await self.hoga.stop()


@contextlib.asynccontextmanager
async def running(
    tmp_path: Path,
    db_url: str,
    *,
    clock: Clock | None = None,
    faults: PaperFaults | None = None,
    start_paused: bool = False,
    **overrides: Any,
) -> AsyncIterator[Harness]:
    hoga = HogaApp(
        make_settings(tmp_path, db_url, **overrides),
        clock=clock,
        paper_faults=faults,
        drive_feed=False,
        **({"start_paused": True} if start_paused else {}),
    )
    await hoga.start()
    h = Harness(hoga)
    try:
        yield h
    finally:
        await h.close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@contextlib.asynccontextmanager
async def live_server(hoga: HogaApp) -> AsyncIterator[str]:
    """Serve ``hoga.api`` with uvicorn on a loopback port; yields the base URL."""
    sock = bind_listener("127.0.0.1", 0)
    port = sock.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(
            hoga.api,
            log_level="warning",
            lifespan="off",
            ws="websockets-sansio",
            access_log=False,
            proxy_headers=False,  # as `hoga serve` (security/proxies.py)
        )
    )
    task = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started:
        await asyncio.sleep(0.01)
        if task.done():
            task.result()
    try:
        yield f"127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task
