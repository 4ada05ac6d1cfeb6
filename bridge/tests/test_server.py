"""The bridge as a process: hello/token/version, the TLS rule, switches measured, a login
abandoned for another, a crashed worker logged in again, real-time codes re-registered."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from hoga_bridge.server import serve_bridge

TOKEN = "test-token-0123456789abcdef"
ACC = {"kim": ["5012345611"], "lee": ["5098765411"]}


@pytest.fixture
async def bridge(tmp_path: Path) -> AsyncIterator[int]:
    settings = tmp_path / "fake.json"
    settings.write_text(
        json.dumps({"state_dir": str(tmp_path / "state"), "login_delay": 1.0, "users": ACC})
    )
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "hoga_bridge",
        "--port",
        "0",
        "--control",
        "fake",
        "--fake-settings",
        str(settings),
        "--allow-faults",
        env={**os.environ, "HOGA_BRIDGE_TOKEN": TOKEN},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
    )
    assert proc.stdout is not None
    port = int(json.loads(await asyncio.wait_for(proc.stdout.readline(), 30))["listening"])
    try:
        yield port
    finally:
        proc.terminate()
        try:
            await asyncio.wait_for(proc.wait(), 15)
        except TimeoutError:
            proc.kill()
            await proc.wait()


class Client:
    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.n = 0
        self.events: list[dict[str, Any]] = []

    async def call(self, op: str, **args: Any) -> dict[str, Any]:
        self.n += 1
        n = self.n
        await self.ws.send(json.dumps({"type": "request", "id": n, "op": op, **args}))
        return await self.until(lambda m: m.get("type") == "response" and m.get("id") == n)

    async def until(self, pred: Any, within: float = 30.0) -> dict[str, Any]:
        async with asyncio.timeout(within):
            while True:
                msg = json.loads(await self.ws.recv())
                if msg.get("type") == "event":
                    self.events.append(msg)
                if pred(msg):
                    return dict(msg)


async def hello(
    port: int, token: str = TOKEN, version: int = 1
) -> tuple[ClientConnection, dict[str, Any]]:
    ws = await connect(f"ws://127.0.0.1:{port}")
    await ws.send(json.dumps({"type": "hello", "version": version, "token": token}))
    return ws, json.loads(await ws.recv())


async def test_a_wrong_token_or_version_closes_the_connection(bridge: int) -> None:
    ws, _ = await hello(bridge)
    await ws.close()
    for token, version, code in ((TOKEN[:-1] + "x", 1, 4401), (TOKEN, 2, 4400)):
        ws = await connect(f"ws://127.0.0.1:{bridge}")
        await ws.send(json.dumps({"type": "hello", "version": version, "token": token}))
        with pytest.raises(ConnectionClosed) as closed:
            await ws.recv()
        assert closed.value.rcvd is not None and closed.value.rcvd.code == code


async def test_tls_is_required_off_loopback(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOGA_BRIDGE_TOKEN", TOKEN)
    args = argparse.Namespace(
        token_file=None,
        cert=None,
        key=None,
        host="0.0.0.0",
        port=0,
        control="fake",
        fake_settings=None,
        allow_faults=False,
        pool_size=1,
        no_spare=True,
    )
    with pytest.raises(SystemExit, match="TLS"):
        await serve_bridge(args)


async def test_switches_are_measured_and_a_login_can_be_abandoned(bridge: int) -> None:
    ws, welcome = await hello(bridge)
    assert welcome["type"] == "welcome" and welcome["pool"]["size"] == 1
    c = Client(ws)
    first = await c.call("switch", user="kim")
    assert first["ok"] and first["accounts"] == ACC["kim"]
    # lee's login is asked for and abandoned right after (same connection, so in that order):
    # the slot is free for another user at once.
    await ws.send(json.dumps({"type": "request", "id": 101, "op": "switch", "user": "lee"}))
    await ws.send(json.dumps({"type": "request", "id": 102, "op": "abort", "user": "lee"}))
    answers: dict[int, dict[str, Any]] = {}
    while len(answers) < 2:
        msg = await c.until(lambda m: m.get("type") == "response")
        answers[int(msg["id"])] = msg
    assert answers[102]["aborted"] is True
    assert (answers[101]["ok"], answers[101]["kind"]) == (False, "aborted")
    c2 = Client((await hello(bridge))[0])
    status = (await c2.call("status"))["pool"]
    assert status["aborted_logins"] == 1 and status["switches"] == 1
    assert status["switch_seconds_p50"] >= 1.0  # measured: at least the fake's login delay
    back = await c2.call("switch", user="kim")
    assert back["ok"]


async def test_a_crashed_worker_is_logged_in_again_and_quotes_resume(bridge: int) -> None:
    c = Client((await hello(bridge))[0])
    await c.call("subscribe", users=["kim"])
    await c.call("switch", user="kim")
    assert (await c.call("real", codes=["005930"]))["ok"]
    await c.until(lambda m: m.get("event") == "real")
    assert (await c.call("fault", user="kim", name="die"))["ok"]
    await c.until(lambda m: m.get("event") == "session" and m.get("state") == "lost")
    await c.until(lambda m: m.get("event") == "session" and m.get("state") == "logged_in")
    await c.until(lambda m: m.get("event") == "real")  # registered again on the new worker
    status = (await c.call("status"))["pool"]
    assert status["relogins"] == 1


async def test_an_inquiry_can_refuse_to_switch(bridge: int) -> None:
    c = Client((await hello(bridge))[0])
    no = await c.call(
        "tr",
        user="lee",
        tr="opw00001",
        inputs={"계좌번호": ACC["lee"][0]},
        single=["예수금"],
        if_logged_in=True,
    )
    assert (no["ok"], no["kind"]) == (False, "no_session")
    bad = await c.call("order", user="../etc", acc="1", order_type=1, code="005930", qty=1)
    assert bad["kind"] == "bad_request"
