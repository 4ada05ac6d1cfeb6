"""Browser tests: a real ``hoga serve`` subprocess driven by Debian's chromium through Playwright.

* The server runs on a free loopback port with a fresh data directory (SQLite, the paper broker
  and the simulated market ticking in real time, so paper orders fill).
* Every browser context aborts - and the test then fails on - any request that leaves
  127.0.0.1: the dashboard must work with the internet cut.
* Uncaught page errors fail the test too.
* Each journey saves a screenshot under ``test-artifacts/`` (git-ignored).

Chromium comes from Debian (``apt-get install chromium``); Playwright's own browser download is
never used. Without ``/usr/bin/chromium`` these tests skip - except under ``CI=true``, where
they must run.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import httpx
import pytest

from tests.e2e.conftest import HOGA, server_env
from tests.helpers import ADMIN_PASSWORD, PASSWORD, eventually_sync, free_port

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
IN_CI = os.environ.get("CI", "").lower() == "true"
ROOT = Path(__file__).resolve().parents[3]
ARTIFACTS = ROOT / "test-artifacts"
LOCAL_HOSTS = {"127.0.0.1"}
START_TIMEOUT = 60.0


# --- the server --------------------------------------------------------------------------------


class HogaServer:
    """``hoga serve`` in a subprocess; restartable on the same port and data directory."""

    def __init__(self, data_dir: Path, port: int, log_path: Path, **extra: str) -> None:
        self.data_dir = data_dir
        self.port = port
        self.log_path = log_path
        self.extra = extra
        self.proc: subprocess.Popen[bytes] | None = None
        self.base = f"http://127.0.0.1:{port}"

    def env(self) -> dict[str, str]:
        return server_env(
            self.data_dir,
            self.port,
            HOGA_HOST="127.0.0.1",
            HOGA_ADMIN_PASSWORD=ADMIN_PASSWORD,
            HOGA_MAX_USERS="60",
            HOGA_LOG_LEVEL="warning",
            HOGA_DUPLICATE_WINDOW="0",
            **self.extra,
        )

    def start(self) -> None:
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [*HOGA, "serve"],
            env=self.env(),
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=str(self.data_dir.parent),
        )
        log.close()
        proc = self.proc

        def healthy() -> bool:
            if proc.poll() is not None:
                raise RuntimeError(f"hoga serve exited: {self.log_path.read_text()[-2000:]}")
            with contextlib.suppress(httpx.HTTPError):
                r = httpx.get(f"{self.base}/health", timeout=1.0)
                return r.status_code == 200 and r.json()["status"] == "ok"
            return False

        eventually_sync(healthy, START_TIMEOUT, "hoga serve to start")

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=5)


def _start_server(tmp: Path, **extra: str) -> HogaServer:
    tmp.mkdir(parents=True, exist_ok=True)
    server = HogaServer(tmp / "var", free_port(), tmp / "hoga.log", **extra)
    server.start()
    return server


@pytest.fixture(scope="session")
def hoga_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HogaServer]:
    """One real server for the session's browser tests (each test makes its own users)."""
    server = _start_server(tmp_path_factory.mktemp("hoga-browser"))
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def own_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HogaServer]:
    """A second server that tests may stop and restart. Its access tokens live 30 s (the
    minimum), so the dashboard renews them every few seconds while a test runs."""
    server = _start_server(tmp_path_factory.mktemp("hoga-own"), HOGA_ACCESS_TOKEN_TTL="30")
    try:
        yield server
    finally:
        server.stop()


@dataclass
class FakeBroker:
    """A local server speaking KIS's protocol (``hoga fake-broker kis``) with one account."""

    rest: str
    ws: str
    account_no: str
    app_key: str
    app_secret: str


@pytest.fixture
def fake_kis(tmp_path: Path) -> Iterator[FakeBroker]:
    port = free_port()
    fake = FakeBroker(
        rest=f"http://127.0.0.1:{port}",
        ws=f"ws://127.0.0.1:{port}/tryitout",
        account_no="50999888-01",
        app_key="PSkeyABCDEFGH12345678",
        app_secret="s3cr3t-VALUE-do-not-leak-9876543210",
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("HOGA_")}
    log_path = tmp_path / "fake-kis.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [
                *HOGA,
                "fake-broker",
                "kis",
                "--always-open",
                "--port",
                str(port),
                "--account",
                fake.account_no,
                "--app-key",
                fake.app_key,
                "--app-secret",
                fake.app_secret,
            ],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:

        def started() -> bool:
            if proc.poll() is not None:
                raise RuntimeError(f"fake KIS exited: {log_path.read_text()[-2000:]}")
            return "KIS fake" in log_path.read_text(errors="replace")

        eventually_sync(
            started, START_TIMEOUT, lambda: f"fake KIS to start: {log_path.read_text()[-2000:]}"
        )
        yield fake
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)


class Api:
    """The server's HTTP API, for test setup and for checking what the browser did."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.http = httpx.Client(base_url=base, timeout=10.0)
        self._admin: dict[str, str] | None = None

    def login(self, username: str, password: str = PASSWORD) -> dict[str, str]:
        r = self.http.post("/api/auth/login", json={"username": username, "password": password})
        assert r.status_code == 200, r.text
        return {"Authorization": f"Bearer {r.json()['access_token']}"}

    def admin(self) -> dict[str, str]:
        if self._admin is None:
            self._admin = self.login("admin", ADMIN_PASSWORD)
        return self._admin

    def new_user(self, prefix: str = "u", tier: str = "basic") -> str:
        name = f"{prefix}{uuid.uuid4().hex[:8]}"
        r = self.http.post(
            "/api/admin/users",
            json={"username": name, "password": PASSWORD, "tier": tier},
            headers=self.admin(),
        )
        assert r.status_code == 201, r.text
        return name

    def get(self, path: str, headers: dict[str, str]) -> Any:
        r = self.http.get(path, headers=headers)
        assert r.status_code == 200, r.text
        return r.json()


@pytest.fixture(scope="session")
def api(hoga_server: HogaServer) -> Iterator[Api]:
    client = Api(hoga_server.base)
    yield client
    client.http.close()


# --- the browser ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    # Module scope, not session: sync Playwright runs an event loop in this thread while it is
    # open, and the asyncio tests that follow need the thread to themselves.
    if not Path(CHROMIUM).exists():
        msg = f"{CHROMIUM} is missing (apt-get install -y chromium)"
        if IN_CI:
            pytest.fail(msg + " - CI=true: browser tests must run")
        pytest.skip(msg)
    from playwright.sync_api import expect, sync_playwright

    expect.set_options(timeout=15_000)
    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            b.close()


@dataclass
class Watch:
    """What a browser context tried that it must not: leave loopback, throw."""

    outside: list[str] = field(default_factory=list)
    page_errors: list[str] = field(default_factory=list)
    csp: list[str] = field(default_factory=list)


class Browsing:
    """Opens pages in fresh contexts that stay on loopback; checks that at the end."""

    def __init__(self, browser: Any, base: str) -> None:
        self.browser = browser
        self.base = base
        self.contexts: list[Any] = []
        self.watch = Watch()

    def page(self, *, viewport: dict[str, int] | None = None, **options: Any) -> Any:
        ctx = self.browser.new_context(
            viewport=viewport or {"width": 1280, "height": 900},
            locale="ko-KR",
            timezone_id="Asia/Seoul",
            **options,
        )
        ctx.set_default_timeout(15_000)
        watch = self.watch

        def guard(route: Any) -> None:
            host = urlparse(route.request.url).hostname
            if route.request.url.startswith(("data:", "blob:")) or host in LOCAL_HOSTS:
                route.continue_()
            else:
                watch.outside.append(route.request.url)
                route.abort()

        ctx.route("**/*", guard)
        page = ctx.new_page()
        page.on("pageerror", lambda e: watch.page_errors.append(str(e)))

        def on_console(msg: Any) -> None:
            if "Content Security Policy" in msg.text:
                watch.csp.append(msg.text)

        page.on("console", on_console)

        def on_socket(ws: Any) -> None:
            if urlparse(ws.url).hostname not in LOCAL_HOSTS:
                watch.outside.append(ws.url)

        page.on("websocket", on_socket)
        self.contexts.append(ctx)
        return page

    def close(self) -> None:
        for ctx in self.contexts:
            with contextlib.suppress(Exception):
                ctx.close()


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    report = yield
    if report.when == "call":
        item.stash[FAILED] = report.failed
    return report


FAILED = pytest.StashKey[bool]()


@pytest.fixture
def browsing(
    browser: Any, hoga_server: HogaServer, request: pytest.FixtureRequest
) -> Iterator[Browsing]:
    b = Browsing(browser, hoga_server.base)
    yield b
    if request.node.stash.get(FAILED, False):
        # Keep what the pages looked like when the test failed.
        for i, ctx in enumerate(b.contexts):
            for j, page in enumerate(ctx.pages):
                with contextlib.suppress(Exception):
                    shot(page, f"failed-{request.node.name}-{i}-{j}")
    b.close()
    assert not b.watch.outside, f"requests left 127.0.0.1: {b.watch.outside}"
    assert not b.watch.page_errors, f"uncaught errors in the page: {b.watch.page_errors}"
    assert not b.watch.csp, f"Content-Security-Policy violations: {b.watch.csp}"


def shot(page: Any, name: str) -> Path:
    """Save a full-page screenshot of a journey under test-artifacts/."""
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / f"{re.sub(r'[^a-z0-9_-]+', '-', name.lower())}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def sign_in(page: Any, base: str, username: str, password: str = PASSWORD) -> None:
    """Open the dashboard and sign in (no TOTP); waits for the overview."""
    from playwright.sync_api import expect

    page.goto(base + "/")
    page.get_by_label("아이디").fill(username)
    page.get_by_label("비밀번호").fill(password)
    page.get_by_role("button", name="로그인").click()
    expect(page.get_by_role("heading", name="개요", level=1)).to_be_visible()
    expect(page.locator("#conn")).to_have_attribute("data-state", "open")


def pick_symbol(page: Any, query: str = "005930", name: str = "삼성전자") -> None:
    """Choose a stock in the page's symbol search: type ``query``, click the first suggestion
    named ``name``; waits until the box shows it."""
    from playwright.sync_api import expect

    box = page.get_by_role("combobox", name="종목")
    box.fill(query)
    page.get_by_role("option", name=re.compile(name)).first.click()
    expect(box).to_have_value(re.compile(name))
