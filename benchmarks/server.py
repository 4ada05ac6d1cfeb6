"""A real ``hoga serve`` process for the benchmarks and standing suites that measure or break it
through HTTP and WebSockets.

``HogaProcess`` keeps its data directory across kills and restarts (the chaos suite kills it
with SIGKILL and starts it again on the same data); ``hoga_server`` is the one-shot form the
benchmarks use (fresh data directory, stopped on exit).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import httpx
from tests.helpers import eventually
from tests.serve_env import serve_env

ADMIN_PASSWORD = "bench-admin-password"


def rss_mb(pid: int) -> float:
    """Resident memory of a process, in MB (Linux)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return round(int(line.split()[1]) / 1024, 1)
    return 0.0


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def open_fds(pid: int) -> int:
    """How many file descriptors a process holds open (Linux)."""
    return len(os.listdir(f"/proc/{pid}/fd"))


def hoga_env(data_dir: Path | str, port: int, **settings: str) -> dict[str, str]:
    """The environment of a ``hoga serve`` on ``data_dir`` and ``port`` with ``HOGA_*``
    ``settings`` (lower-case names without the prefix); the caller's own ``HOGA_*`` is dropped."""
    quiet = {
        "HOGA_ADMIN_PASSWORD": ADMIN_PASSWORD,
        "HOGA_LOG_LEVEL": "warning",
        "HOGA_MAX_USERS": "20",
    }
    given = {f"HOGA_{k.upper()}": v for k, v in settings.items()}
    return serve_env(data_dir, port, **{**quiet, **given})


class LoggedProcess:
    """A process run again and again with its output appended to one log: start, wait until an
    HTTP path answers 200, kill -9 (as when the machine loses power), stop.

    Subclasses say what to run (``command``) and with what environment (``env``)."""

    env: dict[str, str] | None = None

    def __init__(self, name: str, url: str, log_path: Path) -> None:
        self.name = name
        self.url = url
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0
        self.kills = 0

    def command(self) -> list[str]:
        raise NotImplementedError

    @property
    def pid(self) -> int:
        if self.proc is None:
            raise RuntimeError(f"{self.name} is not running")
        return self.proc.pid

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def start(self) -> None:
        with self.log_path.open("ab") as log:
            log.write(f"\n===== {self.name} start #{self.starts + 1} =====\n".encode())
            log.flush()
            self.proc = subprocess.Popen(
                self.command(), env=self.env, stdout=log, stderr=subprocess.STDOUT
            )
        self.starts += 1

    async def wait_answering(self, path: str, within: float) -> None:
        """Until ``path`` answers 200; an exit or the deadline is an error with the log."""
        async with httpx.AsyncClient(timeout=2.0) as http:

            async def ready() -> bool:
                if self.proc is None or self.proc.poll() is not None:
                    raise RuntimeError(f"{self.name} exited:\n{self.tail()}")
                with contextlib.suppress(httpx.HTTPError):
                    return (await http.get(f"{self.url}{path}")).status_code == 200
                return False

            try:
                await eventually(ready, within, path, pause=0.1)
            except AssertionError:
                raise RuntimeError(f"{self.name} did not answer {path}:\n{self.tail()}") from None

    def kill(self) -> None:
        """SIGKILL: no shutdown code runs, as when the machine loses power."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(30)
            self.kills += 1

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


class HogaProcess(LoggedProcess):
    """One ``hoga serve`` on a fixed data directory and port: start, wait, kill -9, start again.

    Output goes to ``log_path`` (appended across restarts, so a chaos run keeps every life of
    the server in one file).
    """

    def __init__(self, env: dict[str, str], log_path: Path) -> None:
        self.port = int(env["HOGA_PORT"])
        super().__init__("hoga serve", f"http://127.0.0.1:{self.port}", log_path)
        self.env = env

    def command(self) -> list[str]:
        return [sys.executable, "-m", "hoga", "serve"]

    async def wait_ready(self, within: float = 120.0) -> None:
        """Until ``/health`` answers 200."""
        await self.wait_answering("/health", within)


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

    async def healthy() -> bool:
        with contextlib.suppress(httpx.HTTPError):
            return (await client.get("/health")).status_code == 200
        return False

    await eventually(healthy, 60, "the server to answer /health", pause=0.1)
    return bearer(await access_token(client, "admin", ADMIN_PASSWORD))


def bearer(token: str) -> dict[str, str]:
    """The Authorization header of an access token."""
    return {"Authorization": f"Bearer {token}"}


async def access_token(client: httpx.AsyncClient, username: str, password: str) -> str:
    """Sign ``username`` in; its access token (an HTTP error if refused)."""
    r = await client.post("/api/auth/login", json={"username": username, "password": password})
    r.raise_for_status()
    token: str = r.json()["access_token"]
    return token


async def new_user(
    client: httpx.AsyncClient,
    admin: dict[str, str],
    username: str,
    password: str,
    tier: str = "premium",
) -> str:
    """Create ``username`` on ``tier`` as the admin (``admin``: its headers) and sign it in;
    its access token."""
    r = await client.post(
        "/api/admin/users",
        headers=admin,
        json={"username": username, "password": password, "tier": tier},
    )
    r.raise_for_status()
    return await access_token(client, username, password)
