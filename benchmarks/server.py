"""A real ``hoga serve`` process for the benchmarks that measure through HTTP and WebSockets."""

from __future__ import annotations

import asyncio
import contextlib
import os
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


@contextlib.contextmanager
def hoga_server(port: int, **settings: str) -> Iterator[subprocess.Popen[bytes]]:
    """Run ``hoga serve`` on 127.0.0.1:``port`` with a fresh data directory and the given
    ``HOGA_*`` settings (the caller's own ``HOGA_*`` environment is ignored); stopped on exit."""
    with tempfile.TemporaryDirectory() as tmp:
        env = {k: v for k, v in os.environ.items() if not k.startswith("HOGA_")}
        env.update(
            HOGA_DATA_DIR=tmp,
            HOGA_PORT=str(port),
            HOGA_ADMIN_PASSWORD=ADMIN_PASSWORD,
            HOGA_LOG_LEVEL="warning",
            HOGA_MAX_USERS="20",
        )
        env.update({f"HOGA_{k.upper()}": v for k, v in settings.items()})
        proc = subprocess.Popen(
            [sys.executable, "-m", "hoga", "serve"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            yield proc
        finally:
            proc.terminate()
            proc.wait(15)


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
