"""``/ws/market-data`` over a real loopback WebSocket."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import pytest
import websockets
from websockets.exceptions import ConnectionClosed

from hoga.api import ws as ws_api
from hoga.domain import krx
from hoga.domain.clock import ManualClock
from tests.helpers import Harness, eventually, live_server, running


async def _recv(conn: Any, within: float = 5.0) -> dict[str, Any]:
    return json.loads(await asyncio.wait_for(conn.recv(), within))  # type: ignore[no-any-return]


async def _control(conn: Any, within: float = 5.0) -> dict[str, Any]:
    """The next message that is not a quote."""
    while True:
        msg = await _recv(conn, within)
        if msg["type"] != "quote":
            return msg


async def _drain_until_closed(conn: Any) -> None:
    for _ in range(50):
        await _recv(conn, within=10)


async def _quotes_until(
    h: Harness, conn: Any, want: set[str], within: float = 20.0
) -> dict[str, dict[str, Any]]:
    got: dict[str, dict[str, Any]] = {}

    async def complete() -> bool:
        return want <= got.keys()

    async def receive() -> None:
        h.pump(200)
        try:
            while True:
                msg = json.loads(await asyncio.wait_for(conn.recv(), 0.02))
                if msg["type"] == "quote":
                    got[msg["symbol"]] = msg
        except TimeoutError:
            pass

    await eventually(
        complete, within, lambda: f"quotes for {sorted(want - got.keys())[:10]}", step=receive
    )
    return got


async def test_authenticated_client_gets_quotes_for_100_symbols_on_the_grid(
    tmp_path: Path, sqlite_url: str
) -> None:
    async with running(tmp_path, sqlite_url) as h, live_server(h.hoga) as addr:
        headers = await h.user("ws1", "basic")
        token = headers["Authorization"].split()[1]
        symbols = [i.symbol for i in h.hoga.universe.instruments][:100]
        async with websockets.connect(f"ws://{addr}/ws/market-data") as conn:
            await conn.send(json.dumps({"type": "auth", "token": token}))
            assert (await _recv(conn))["type"] == "auth"
            await conn.send(json.dumps({"type": "subscribe", "symbols": symbols}))
            ack = await _recv(conn)
            assert ack["type"] == "subscribed" and len(ack["symbols"]) == 100
            quotes = await _quotes_until(h, conn, set(symbols))
        for sym, q in quotes.items():
            inst = h.hoga.universe.get(sym)
            assert inst is not None
            assert krx.is_valid_price(q["price"], q["base_price"], inst.kind), q
            assert {"symbol", "price", "volume", "ts"} <= q.keys()


async def test_unauthenticated_and_bad_tokens_are_refused(tmp_path: Path, sqlite_url: str) -> None:
    async with running(tmp_path, sqlite_url) as h, live_server(h.hoga) as addr:
        async with websockets.connect(f"ws://{addr}/ws/market-data") as conn:
            await conn.send(json.dumps({"type": "subscribe", "symbols": ["005930"]}))
            msg = await _recv(conn)
            assert msg["type"] == "error" and msg["code"] == "auth.missing_token"
            with pytest.raises(ConnectionClosed) as closed:
                await _recv(conn)
            assert closed.value.rcvd is not None and closed.value.rcvd.code == 4001
        async with websockets.connect(f"ws://{addr}/ws/market-data?token=nonsense") as conn:
            assert (await _recv(conn))["code"] == "token.invalid"


async def test_bad_messages_and_caps_get_clear_errors_and_the_socket_lives(
    tmp_path: Path, sqlite_url: str
) -> None:
    async with (
        running(tmp_path, sqlite_url, ws_max_symbols=5, ws_max_connections=1) as h,
        live_server(h.hoga) as addr,
    ):
        token = (await h.user("ws2"))["Authorization"].split()[1]
        async with websockets.connect(f"ws://{addr}/ws/market-data?token={token}") as conn:
            await _control(conn)
            await conn.send("not json")
            assert (await _control(conn))["code"] == "ws.bad_message"
            await conn.send(json.dumps({"type": "dance"}))
            assert (await _control(conn))["code"] == "ws.unknown_type"
            await conn.send(
                json.dumps({"type": "subscribe", "symbols": ["999999", "00593A", "005930"]})
            )
            err = await _control(conn)
            assert err["code"] == "market.unknown_symbol" and err["symbols"] == ["999999", "00593A"]
            assert (await _control(conn))["symbols"] == ["005930"]
            await conn.send(
                json.dumps(
                    {
                        "type": "subscribe",
                        "symbols": [i.symbol for i in h.hoga.universe.instruments][:10],
                    }
                )
            )
            err = await _control(conn)
            assert err["code"] == "ws.too_many_symbols"
            assert len((await _control(conn))["symbols"]) == 5
            # A second connection of the same user goes over the per-user cap.
            async with websockets.connect(f"ws://{addr}/ws/market-data?token={token}") as second:
                await _control(second)
                msg = await _control(second)
                assert msg["code"] == "ws.too_many_connections"
            await conn.send(json.dumps({"type": "ping"}))
            assert (await _control(conn))["type"] == "pong"


async def _backlog(conn: Any) -> int:
    n = 0
    try:
        while True:
            msg = json.loads(await asyncio.wait_for(conn.recv(), 0.3))
            n += msg["type"] == "quote"
    except TimeoutError:
        return n


async def test_a_slow_client_neither_backlogs_nor_slows_a_fast_one(
    tmp_path: Path, sqlite_url: str
) -> None:
    async with running(tmp_path, sqlite_url) as h, live_server(h.hoga) as addr:
        token = (await h.user("ws3", "basic"))["Authorization"].split()[1]
        symbols = [i.symbol for i in h.hoga.universe.instruments][:20]
        produced = 0

        def count(_: object) -> None:
            nonlocal produced
            produced += 1

        h.hoga.hub.subscribe(symbols, count, owner="test")
        url = f"ws://{addr}/ws/market-data?token={token}"
        async with (
            websockets.connect(url, max_queue=1) as slow1,
            websockets.connect(url, max_queue=1) as slow2,
            websockets.connect(url) as fast,
        ):
            for c in (slow1, slow2, fast):
                await _recv(c)
                await c.send(json.dumps({"type": "subscribe", "symbols": symbols}))
                await _control(c)
            delays: list[float] = []
            backlogs: list[tuple[int, int]] = []
            for rnd in range(1, 121):
                h.pump(500)
                await asyncio.sleep(0)
                try:
                    while True:
                        msg = json.loads(await asyncio.wait_for(fast.recv(), 0.05))
                        if msg["type"] == "quote":
                            last = h.hoga.hub.last(msg["symbol"])
                            assert last is not None
                            delays.append(time.time() - last.recv_ts)
                except TimeoutError:
                    pass
                if rnd == 40:
                    backlogs.append((produced, await _backlog(slow1)))
            backlogs.append((produced, await _backlog(slow2)))
            await slow2.send(json.dumps({"type": "ping"}))
            conflated = (await _control(slow2))["stats"]["conflated"]
        delays.sort()
        assert len(delays) > 500
        assert delays[len(delays) // 2] < 0.25  # the fast client kept up throughout
        # The server keeps at most one quote per symbol for a reader that does not keep up
        # (conflation); what reaches the slow reader later is what the operating system's
        # socket buffers held plus those latest quotes - less than the market produced.
        for produced_then, backlog in backlogs:
            assert backlog < produced_then / 2
        assert conflated > 1000


async def test_expired_token_mid_stream_is_told_then_closed(
    tmp_path: Path, sqlite_url: str, clock: ManualClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ws_api, "EXPIRY_GRACE", 0.5)
    async with running(tmp_path, sqlite_url, clock=clock) as h, live_server(h.hoga) as addr:
        token = (await h.user("ws4"))["Authorization"].split()[1]
        async with websockets.connect(f"ws://{addr}/ws/market-data?token={token}") as conn:
            await _recv(conn)
            clock.advance(3600)
            msg = await _recv(conn, within=10)
            while msg["type"] != "error":
                msg = await _recv(conn, within=10)
            assert msg["code"] == "token.expired"
            clock.advance(1)
            with pytest.raises(ConnectionClosed) as closed:
                await _drain_until_closed(conn)
            assert closed.value.rcvd is not None and closed.value.rcvd.code == 4001
