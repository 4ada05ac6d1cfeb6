"""The order book (contracts.md): ``GET /api/market/orderbook`` and the WS ``orderbook`` channel,
over the simulated market, through the real API and a loopback WebSocket."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import websockets

from hoga.domain import krx
from tests.helpers import live_server, running


async def _recv(conn: Any, within: float = 5.0) -> dict[str, Any]:
    return json.loads(await asyncio.wait_for(conn.recv(), within))  # type: ignore[no-any-return]


def _check_book(body: dict[str, Any], symbol: str, kind: str) -> None:
    assert body["symbol"] == symbol
    assert set(body) >= {"ts", "asks", "bids", "total_ask_qty", "total_bid_qty", "last"}
    asks = [a["price"] for a in body["asks"]]
    bids = [b["price"] for b in body["bids"]]
    assert 1 <= len(asks) <= 10 and 1 <= len(bids) <= 10
    assert asks == sorted(asks) and bids == sorted(bids, reverse=True)
    assert bids[0] < asks[0]
    for p in asks + bids:
        assert p % krx.tick_size(p, kind) == 0
    assert all(level["qty"] > 0 for level in body["asks"] + body["bids"])
    assert body["total_ask_qty"] >= sum(a["qty"] for a in body["asks"])
    assert body["total_bid_qty"] >= sum(b["qty"] for b in body["bids"])


async def test_rest_orderbook_has_ten_levels_on_the_grid_and_404s_unknown(
    tmp_path: Path, sqlite_url: str
) -> None:
    async with running(tmp_path, sqlite_url) as h:
        headers = await h.user("ob1")
        h.pump(300)
        r = await h.http.get("/api/market/orderbook?symbol=005930", headers=headers)
        assert r.status_code == 200, r.text
        body = r.json()
        _check_book(body, "005930", "stock")
        assert len(body["asks"]) == 10 and len(body["bids"]) == 10
        assert isinstance(body["last"], int) and body["last"] > 0
        assert body["ts"].endswith("+09:00")
        r = await h.http.get("/api/market/orderbook?symbol=999999", headers=headers)
        assert r.status_code == 404 and r.json()["error"]["code"] == "market.unknown_symbol"
        r = await h.http.get("/api/market/orderbook?symbol=abc", headers=headers)
        assert r.status_code == 404
        r = await h.http.get("/api/market/orderbook?symbol=005930")
        assert r.status_code == 401


async def test_ws_orderbook_channel_pushes_books_only_to_who_asked(
    tmp_path: Path, sqlite_url: str
) -> None:
    async with running(tmp_path, sqlite_url) as h, live_server(h.hoga) as addr:
        token = (await h.user("ob2"))["Authorization"].split()[1]
        url = f"ws://{addr}/ws/market-data?token={token}"
        async with websockets.connect(url) as books, websockets.connect(url) as trades:
            assert (await _recv(books))["type"] == "auth"
            assert (await _recv(trades))["type"] == "auth"
            await books.send(
                json.dumps({"type": "subscribe", "symbols": ["005930"], "channels": ["orderbook"]})
            )
            ack = await _recv(books)
            assert ack["type"] == "subscribed"
            assert ack["channels"] == {"trades": [], "orderbook": ["005930"]}
            await trades.send(json.dumps({"type": "subscribe", "symbols": ["005930"]}))
            assert (await _recv(trades))["channels"]["trades"] == ["005930"]
            await books.send(json.dumps({"type": "subscribe", "symbols": ["x"], "channels": []}))
            while (msg := await _recv(books))["type"] == "orderbook":
                pass  # the book as it stands comes right after the ack
            assert msg["code"] == "ws.bad_channels"

            got_books: list[dict[str, Any]] = []
            got_kinds: set[str] = set()
            deadline = time.monotonic() + 20
            while len(got_books) < 3 or "quote" not in got_kinds:
                assert time.monotonic() < deadline, "no order books pushed"
                h.pump(100)
                for conn, sink in ((books, got_books), (trades, None)):
                    try:
                        while True:
                            msg = json.loads(await asyncio.wait_for(conn.recv(), 0.02))
                            if sink is not None:
                                assert msg["type"] == "orderbook", msg
                                sink.append(msg)
                            else:
                                got_kinds.add(msg["type"])
                    except TimeoutError:
                        pass
            assert got_kinds == {"quote"}  # the default channel carries no books
            for msg in got_books:
                _check_book(msg, "005930", "stock")
            await books.send(
                json.dumps(
                    {"type": "unsubscribe", "symbols": ["005930"], "channels": ["orderbook"]}
                )
            )
            while (msg := await _recv(books))["type"] == "orderbook":
                pass
            assert msg["type"] == "unsubscribed"
            assert h.hoga.hub.refcount("005930") == 1
