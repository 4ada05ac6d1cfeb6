"""A real ``hoga serve`` process for black-box tests: fresh data dir, free port, captured output."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from tests.helpers import ADMIN_PASSWORD, eventually_sync, free_port, scaled
from tests.serve_env import serve_env

HOGA = [sys.executable, "-m", "hoga"]


@dataclass
class Server:
    """A running ``hoga serve``; ``output()`` is everything it printed so far."""

    proc: subprocess.Popen[bytes]
    url: str
    data_dir: Path
    env: dict[str, str]
    log_path: Path
    extra: dict[str, str] = field(default_factory=dict)

    def output(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def cli(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """Run another ``hoga`` command against the same data dir and database."""
        res = subprocess.run(
            [*HOGA, *args], env=self.env, capture_output=True, text=True, timeout=60
        )
        if check and res.returncode != 0:
            raise AssertionError(f"hoga {' '.join(args)} failed: {res.stderr}")
        return res

    def stop(self, sig: int = signal.SIGINT, within: float = 10.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        return self.proc.wait(scaled(within))  # a loaded machine shuts down slower


def server_env(data_dir: Path, port: int, **extra: str) -> dict[str, str]:
    # The PostgreSQL URL of the test run is the one HOGA_* variable a child keeps.
    pg = {k: v for k, v in os.environ.items() if k == "HOGA_TEST_PG_URL"}
    fast = {"HOGA_SIM_TICKS_PER_SECOND": "400", "HOGA_LOG_LEVEL": "info"}
    return serve_env(data_dir, port, **{**pg, **fast, **extra})


def start_server(data_dir: Path, log_name: str = "server.log", *args: str, **extra: str) -> Server:
    port = free_port()
    env = server_env(data_dir, port, **extra)
    log_path = data_dir.parent / log_name
    log = log_path.open("wb")
    proc = subprocess.Popen([*HOGA, "serve", *args], env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    # Start-up builds the KRX calendar: seconds when idle, over a minute on a loaded machine.

    def healthy() -> Server | None:
        if proc.poll() is not None:
            raise AssertionError(
                f"hoga serve exited with {proc.returncode}:\n{log_path.read_text()}"
            )
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                return Server(proc, url, data_dir, env, log_path)
        return None

    try:
        return eventually_sync(healthy, 180, "hoga serve to answer /health")
    except AssertionError:
        proc.kill()
        raise AssertionError(
            f"hoga serve did not answer /health:\n{log_path.read_text()}"
        ) from None


def login(url: str, username: str = "admin", password: str = ADMIN_PASSWORD) -> dict[str, str]:
    """Log in to a served hoga over HTTP; returns the Authorization header."""
    r = httpx.post(f"{url}/api/auth/login", json={"username": username, "password": password})
    assert r.status_code == 200, r.text
    return {"Authorization": f"Bearer {r.json()['access_token']}"}


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    srv = start_server(tmp_path / "var", HOGA_ADMIN_PASSWORD=ADMIN_PASSWORD)
    yield srv
    if srv.proc.poll() is None:
        srv.proc.kill()
        srv.proc.wait(10)
