"""Test harness: a HogaApp in-process with a deterministic market, an HTTP client, a live server.

The simulator's run loop is not started: tests drive the market with ``pump`` so every price is
a function of the seed. ``eventually`` waits (bounded) for a condition the event loop will make
true - it never sleeps a fixed time hoping something happened.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import os
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import httpx
import uvicorn

from hoga.app import HogaApp
from hoga.brokers.paper_book import PaperFaults
from hoga.config import Settings
from hoga.domain.clock import Clock
from hoga.net import bind_listener

T = TypeVar("T")

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


def scaled(seconds: float) -> float:
    """``seconds`` stretched for a loaded machine: bounded waits fail after this long.

    ``HOGA_TEST_TIME_SCALE`` sets the factor; without it the factor follows the load average
    per core (1 on an idle machine, at most 4). Only a failing wait gets slower: a condition
    that holds returns as soon as it is seen."""
    env = os.environ.get("HOGA_TEST_TIME_SCALE")
    if env:
        return seconds * float(env)
    try:
        load = os.getloadavg()[0] / (os.cpu_count() or 1)
    except OSError:  # pragma: no cover - platforms without a load average
        load = 1.0
    return seconds * min(4.0, max(1.0, load))


def _describe(what: str | Callable[[], str]) -> str:
    return what if isinstance(what, str) else what()


async def eventually(
    check: Callable[[], Awaitable[bool]],
    within: float = 5.0,
    what: str | Callable[[], str] = "condition",
    *,
    step: Callable[[], object] | None = None,
    pause: float = 0.05,
    stretch: bool = True,
) -> None:
    """Wait until ``check()`` is true, re-checking as the event loop runs; fail after
    ``scaled(within)`` seconds with ``what`` (a callable is asked at failure time, so it can
    say what was last seen).

    ``step`` runs between checks - e.g. trading a simulated market so a fill can happen.
    Re-checks back off from 5 ms to ``pause`` (50 ms): checks that go through the API spend
    the user's per-minute call budget, and a slow machine must not turn a wait into a 429.
    ``stretch=False`` keeps ``within`` as given, for a deadline that is itself the behaviour
    under test."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + (scaled(within) if stretch else within)
    delay = min(0.005, pause)
    while True:
        if await check():
            return
        if loop.time() > deadline:
            raise AssertionError(f"timed out after {within:g} s waiting for {_describe(what)}")
        if step is not None:
            done = step()
            if inspect.isawaitable(done):
                await done
        await asyncio.sleep(delay)
        delay = min(pause, delay * 1.5)


def eventually_sync(
    check: Callable[[], T | None],
    within: float = 30.0,
    what: str | Callable[[], str] = "condition",
    *,
    pause: float = 0.1,
    stretch: bool = True,
    wait: Callable[[float], object] = time.sleep,
) -> T:
    """``eventually`` for code outside an event loop (real processes, a browser): returns the
    first truthy ``check()`` value. ``check`` may raise AssertionError to stop at once (e.g. a
    process that exited). ``stretch=False`` keeps ``within`` as given, for a deadline that is
    itself the behaviour under test. ``wait(seconds)`` passes the time between looks (a
    browser page's own wait, so its events are handled meanwhile)."""
    deadline = time.monotonic() + (scaled(within) if stretch else within)
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {within:g} s waiting for {_describe(what)}")
        wait(pause)


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
        self, check: Callable[[], Awaitable[bool]], what: str, within: float = 30.0
    ) -> None:
        """Trade the market in small steps until ``check`` holds (fills need trades)."""

        async def drained() -> bool:
            await self.hoga.paper.drain()
            return await check()

        await eventually(
            drained, within, f"the market to produce {what}", step=lambda: self.pump(25), pause=0.01
        )

    async def me(self, headers: dict[str, str]) -> int:
        """The id of the user ``headers`` log in as."""
        uid: int = (await self.get_json("/api/me", headers))["id"]
        return uid

    async def post_order(
        self, headers: dict[str, str], qty: int = 1, **body: Any
    ) -> httpx.Response:
        """POST /api/orders - a market buy of ``qty`` 005930 unless ``body`` says otherwise -
        and return the response as it came (tests of refusals check it themselves). A test of
        the API's own defaults posts its body itself."""
        order = {"symbol": "005930", "side": "buy", "type": "market", "qty": qty, **body}
        return await self.http.post("/api/orders", json=order, headers=headers)

    async def submit(self, headers: dict[str, str], qty: int = 1, **body: Any) -> dict[str, Any]:
        """``post_order`` that the API must accept (202); returns the order's view."""
        r = await self.post_order(headers, qty, **body)
        assert r.status_code == 202, r.text
        data: dict[str, Any] = r.json()
        return data

    async def get_json(self, path: str, headers: dict[str, str]) -> dict[str, Any]:
        """GET ``path``, which must answer 200; its JSON body."""
        r = await self.http.get(path, headers=headers)
        assert r.status_code == 200, r.text
        data: dict[str, Any] = r.json()
        return data

    async def order(self, headers: dict[str, str], order_id: int) -> dict[str, Any]:
        return await self.get_json(f"/api/orders/{order_id}", headers)

    async def until_status(
        self,
        headers: dict[str, str],
        order_id: int,
        *statuses: str,
        within: float = 15.0,
        step: Callable[[], object] | None = None,
    ) -> dict[str, Any]:
        """Wait (bounded) for an order to reach one of ``statuses`` as the API shows it, running
        ``step`` (e.g. trading a broker fake) between looks; returns the order's view."""
        seen: dict[str, Any] = {}

        async def check() -> bool:
            nonlocal seen
            seen = await self.order(headers, order_id)
            return seen["status"] in statuses

        await eventually(
            check, within, lambda: f"order {order_id} in {statuses}, stuck: {seen}", step=step
        )
        return seen

    async def wait_status(
        self, headers: dict[str, str], order_id: int, *statuses: str
    ) -> dict[str, Any]:
        """``until_status`` while trading the simulated market (paper orders need trades)."""
        result: dict[str, Any] = {}

        async def check() -> bool:
            nonlocal result
            result = await self.order(headers, order_id)
            return result["status"] in statuses

        await self.trade_until(check, f"order {order_id} in {statuses}")
        return result

    async def filled_through_unknown(self, headers: dict[str, str], **order: Any) -> dict[str, Any]:
        """``post_order`` under ``running_unanswered``: the paper broker takes the order without
        answering, so it goes UNKNOWN; reconciling its account then finds the broker's fill.
        Returns the order's view, FILLED with UNKNOWN in its history."""
        r = await self.post_order(headers, **order)
        oid = r.json()["id"]
        first = await self.wait_status(
            headers, oid, "UNKNOWN", "ACCEPTED", "PARTIALLY_FILLED", "FILLED"
        )
        # Reconcile explicitly instead of waiting for the timer the UNKNOWN state arms.
        await self.hoga.reconciler.reconcile_account(first["account_id"])
        done = await self.wait_status(headers, oid, "FILLED")
        assert "UNKNOWN" in [x["status"] for x in done["history"]]
        return done

    async def state(self, order_id: int) -> dict[str, Any]:
        """An order as the service sees it (polling the API would spend the user's API budget)."""
        from hoga.store import tables as t
        from hoga.store.db import SYSTEM

        async with self.hoga.db.tx(SYSTEM) as conn:
            row = (await conn.execute(t.orders.select().where(t.orders.c.id == order_id))).first()
        assert row is not None
        (o,) = [o for o in await self.hoga.orders.list_orders(int(row.user_id)) if o.id == order_id]
        return {"status": o.status.value, "filled_qty": o.filled_qty, "reason_code": o.reason_code}

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


def running_unanswered(
    tmp_path: Path, db_url: str, **overrides: Any
) -> contextlib.AbstractAsyncContextManager[Harness]:
    """``running`` with a paper broker that accepts the next order but never answers for it:
    after the 0.3 s submit timeout the order is UNKNOWN until reconciliation settles it."""
    faults = PaperFaults(accept_then_timeout=1)
    return running(tmp_path, db_url, faults=faults, submit_timeout=0.3, **overrides)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@contextlib.asynccontextmanager
async def on_loopback(app: Any, *, force_exit: bool = False, **config: Any) -> AsyncIterator[int]:
    """Serve the ASGI ``app`` with uvicorn on a free loopback port (``config``: more
    ``uvicorn.Config`` options); yields the port once it listens. ``force_exit`` stops
    without waiting for requests in progress (a receiver that may hang on purpose)."""
    sock = bind_listener("127.0.0.1", 0)
    server = uvicorn.Server(
        uvicorn.Config(app, log_level="warning", lifespan="off", access_log=False, **config)
    )
    task = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started:
        await asyncio.sleep(0.01)
        if task.done():
            task.result()
    try:
        yield int(sock.getsockname()[1])
    finally:
        server.should_exit = True
        server.force_exit = force_exit
        await task


@contextlib.asynccontextmanager
async def live_server(hoga: HogaApp) -> AsyncIterator[str]:
    """Serve ``hoga.api`` with uvicorn on a loopback port; yields the base URL."""
    # proxy_headers off as `hoga serve` (security/proxies.py).
    async with on_loopback(hoga.api, ws="websockets-sansio", proxy_headers=False) as port:
        yield f"127.0.0.1:{port}"
