"""Helpers for tests that run hoga-bridge (real processes on loopback) with the fake control."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from websockets.asyncio.client import connect

from tests.broker_support import post_account

TOKEN = "bridge-token-0123456789-never-print"
USERS = {"kim": ["5012345611"], "lee": ["5098765411"], "park": ["5055555511"]}


@dataclass
class Bridge:
    """A running ``hoga-bridge --control fake`` process."""

    proc: asyncio.subprocess.Process
    port: int
    state_dir: Path
    settings_file: Path

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    def orders(self, user: str) -> dict[str, dict[str, Any]]:
        """The fake "server"'s orders of ``user`` (what Kiwoom would hold)."""
        path = self.state_dir / f"{user}.json"
        if not path.exists():
            return {}
        orders: dict[str, dict[str, Any]] = json.loads(path.read_text(encoding="utf-8"))["orders"]
        return orders

    async def call(self, op: str, **args: Any) -> dict[str, Any]:
        """One request on a connection of its own (the test's side door into the bridge)."""
        async with connect(self.url) as ws:
            await ws.send(json.dumps({"type": "hello", "version": 1, "token": TOKEN}))
            json.loads(await ws.recv())
            await ws.send(json.dumps({"type": "request", "id": 1, "op": op, **args}))
            while True:
                msg = json.loads(await asyncio.wait_for(ws.recv(), 60))
                if msg.get("type") == "response" and msg.get("id") == 1:
                    return dict(msg)


async def launch_bridge(
    settings: dict[str, Any],
    file: Path,
    *,
    token: str = TOKEN,
    pool_size: int = 1,
    port: int = 0,
    allow_faults: bool = True,
    within: float = 30,
) -> tuple[asyncio.subprocess.Process, int]:
    """Start ``hoga-bridge --control fake`` with the fake control's ``settings`` (written to
    ``file``); returns the process and the port it listens on once it says so."""
    await asyncio.to_thread(file.write_text, json.dumps(settings), encoding="utf-8")
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "hoga_bridge",
        "--port",
        str(port),
        "--control",
        "fake",
        "--fake-settings",
        str(file),
        "--pool-size",
        str(pool_size),
        *(["--allow-faults"] if allow_faults else []),
        env={**os.environ, "HOGA_BRIDGE_TOKEN": token},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
    )
    assert proc.stdout is not None
    line = await asyncio.wait_for(proc.stdout.readline(), within)
    return proc, int(json.loads(line)["listening"])


async def start_bridge(tmp_path: Path, *, port: int = 0, pool_size: int = 1, **fake: Any) -> Bridge:
    state = tmp_path / "bridge-state"
    settings = {"state_dir": str(state), "login_delay": 0.3, "users": USERS, "fill_delay": 0.02}
    settings.update(fake)
    file = tmp_path / "fake-control.json"
    proc, listening = await launch_bridge(settings, file, pool_size=pool_size, port=port)
    return Bridge(proc, listening, state, file)


async def stop_process(proc: asyncio.subprocess.Process, within: float = 10) -> None:
    """Stop a bridge process: SIGTERM, then SIGKILL if it has not exited ``within`` seconds."""
    if proc.returncode is None:
        proc.terminate()
        try:
            await asyncio.wait_for(proc.wait(), within)
        except TimeoutError:
            proc.kill()
            await proc.wait()


async def stop_bridge(bridge: Bridge) -> None:
    await stop_process(bridge.proc)


@contextlib.asynccontextmanager
async def bridge_running(tmp_path: Path, **kw: Any) -> AsyncIterator[Bridge]:
    bridge = await start_bridge(tmp_path, **kw)
    try:
        yield bridge
    finally:
        await stop_bridge(bridge)


async def link_account(
    http: Any, headers: dict[str, str], bridge: Bridge, user: str, token: str = TOKEN
) -> dict[str, Any]:
    """Link ``user``'s OpenAPI+ account behind the bridge through the API; returns the view."""
    return await post_account(
        http,
        headers,
        {
            "broker": "kiwoom_openapi",
            "env": "mock",
            "account_no": USERS[user][0],
            "app_key": user,
            "app_secret": token,
            "base_url": bridge.url,
            "label": "키움 OpenAPI+ 모의",
        },
    )
