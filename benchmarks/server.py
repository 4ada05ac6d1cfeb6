"""A real ``hoga serve`` process for the benchmarks and standing suites that measure or break it
through HTTP and WebSockets.

``HogaProcess`` keeps its data directory across kills and restarts (the chaos suite kills it
with SIGKILL and starts it again on the same data); ``hoga_server`` is the one-shot form the
benchmarks use (fresh data directory, stopped on exit).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import httpx

ADMIN_PASSWORD = "bench-admin-password"


def rss_mb(pid: int) -> float:
    """Resident memory of a process, in MB (Linux)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return round(int(line.split()[1]) / 1024, 1)
    return 0.0


def open_fds(pid: int) -> int:
    """How many file descriptors a process holds open (Linux)."""
    return len(os.listdir(f"/proc/{pid}/fd"))


def hoga_env(data_dir: Path | str, port: int, **settings: str) -> dict[str, str]:
    """The environment of a ``hoga serve`` on ``data_dir`` and ``port`` with ``HOGA_*``
    ``settings`` (lower-case names without the prefix); the caller's own ``HOGA_*`` is dropped."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("HOGA_")}
    env.update(
        HOGA_DATA_DIR=str(data_dir),
        HOGA_PORT=str(port),
        HOGA_ADMIN_PASSWORD=ADMIN_PASSWORD,
        HOGA_LOG_LEVEL="warning",
        HOGA_MAX_USERS="20",
        PYTHONUNBUFFERED="1",
        # The chaos and soak runs point accounts at loopback fakes (off by default).
        HOGA_ALLOW_CUSTOM_BROKER_URLS="true",
        HOGA_BROKER_URL_HOSTS="127.0.0.1,localhost",
        # The PostgreSQL runs log in as the superuser (production uses role logins).
        HOGA_DATABASE_ALLOW_SUPERUSER="true",
    )
    env.update({f"HOGA_{k.upper()}": v for k, v in settings.items()})
    return env


class HogaProcess:
    """One ``hoga serve`` on a fixed data directory and port: start, wait, kill -9, start again.

    Output goes to ``log_path`` (appended across restarts, so a chaos run keeps every life of
    the server in one file).
    """

    def __init__(self, env: dict[str, str], log_path: Path) -> None:
        self.env = env
        self.port = int(env["HOGA_PORT"])
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0

    @property
    def pid(self) -> int:
        if self.proc is None:
            raise RuntimeError("hoga serve is not running")
        return self.proc.pid

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def start(self) -> None:
        with self.log_path.open("ab") as log:
            log.write(f"\n===== hoga serve start #{self.starts + 1} =====\n".encode())
            log.flush()
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "hoga", "serve"],
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        self.starts += 1

    async def wait_ready(self, within: float = 120.0) -> None:
        """Until ``/health`` answers 200; an exit or the deadline is an error with the log."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        async with httpx.AsyncClient(timeout=2.0) as http:
            while True:
                if self.proc is None or self.proc.poll() is not None:
                    raise RuntimeError(f"hoga serve exited:\n{self.tail()}")
                with contextlib.suppress(httpx.HTTPError):
                    if (await http.get(f"{self.url}/health")).status_code == 200:
                        return
                if loop.time() > deadline:
                    raise RuntimeError(f"hoga serve did not answer /health:\n{self.tail()}")
                await asyncio.sleep(0.1)

    def kill(self) -> None:
        """SIGKILL: no shutdown code runs, as when the machine loses power."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(30)

    def stop(self, within: float = 20.0) -> int | None:
        """SIGINT and wait (SIGKILL after ``within`` seconds); the exit code."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(within)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        return self.proc.returncode

    def tail(self, lines: int = 40) -> str:
        try:
            text = self.log_path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])


@contextlib.contextmanager
def hoga_server(port: int, **settings: str) -> Iterator[subprocess.Popen[bytes]]:
    """Run ``hoga serve`` on 127.0.0.1:``port`` with a fresh data directory and the given
    ``HOGA_*`` settings (the caller's own ``HOGA_*`` environment is ignored); stopped on exit."""
    with tempfile.TemporaryDirectory() as tmp:
        server = HogaProcess(hoga_env(tmp, port, **settings), Path(tmp) / "server.log")
        server.start()
        assert server.proc is not None
        try:
            yield server.proc
        finally:
            server.proc.terminate()
            try:
                server.proc.wait(15)
            except subprocess.TimeoutExpired:
                # A server still draining a long load on a busy machine; the figures are taken.
                server.proc.kill()
                server.proc.wait(15)


async def admin_headers(client: httpx.AsyncClient) -> dict[str, str]:
    """Wait (at most a minute) for the server to answer ``/health``, then sign in as admin."""
    for _ in range(600):
        try:
            if (await client.get("/health")).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        await asyncio.sleep(0.1)
    tok = (
        await client.post("/api/auth/login", json={"username": "admin", "password": ADMIN_PASSWORD})
    ).json()
    return {"Authorization": f"Bearer {tok['access_token']}"}
