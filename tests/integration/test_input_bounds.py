"""Bad input never reaches the database or the log (issue 12): every integer the API accepts
is bounded by its schema, bodies are capped while they are read, an unhandled error is a
plain 500 whose log line names no SQL, binary WebSocket frames are refused with a close code,
and the API docs are served locally under a CSP."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import websockets
from websockets.exceptions import ConnectionClosed

from hoga.api.bounds import MAX_CSV_UPLOAD, MAX_ID, MAX_JSON_BODY
from hoga.api.guard import OuterGuard
from tests.helpers import live_server, running

BIG = 2**63


def _integers(schema: Any, where: str, doc: dict[str, Any]) -> Iterator[tuple[str, Any]]:
    """Every integer sub-schema of ``schema`` (following $refs), with where it sits."""
    if isinstance(schema, dict):
        if "$ref" in schema:
            name = schema["$ref"].rsplit("/", 1)[-1]
            yield from _integers(doc["components"]["schemas"][name], f"{where}->{name}", doc)
            return
        if schema.get("type") == "integer":
            yield where, schema
        for key in ("properties",):
            for prop, sub in schema.get(key, {}).items():
                yield from _integers(sub, f"{where}.{prop}", doc)
        for key in ("anyOf", "oneOf", "allOf"):
            for sub in schema.get(key, []):
                yield from _integers(sub, where, doc)
        if "items" in schema:
            yield from _integers(schema["items"], f"{where}[]", doc)


async def test_every_integer_input_has_bounds_in_the_openapi_document(
    tmp_path: Path, sqlite_url: str
) -> None:
    async with running(tmp_path, sqlite_url) as h:
        doc = (await h.http.get("/api/openapi.json")).json()
        unbounded = []
        for path, item in doc["paths"].items():
            for method, op in item.items():
                for p in op.get("parameters", []):
                    for where, s in _integers(p.get("schema", {}), f"{p['name']}", doc):
                        if "maximum" not in s or (
                            "minimum" not in s and "exclusiveMinimum" not in s
                        ):
                            unbounded.append(f"{method.upper()} {path} {where}")
                body = op.get("requestBody", {}).get("content", {}).get("application/json", {})
                for where, s in _integers(body.get("schema", {}), "body", doc):
                    if "maximum" not in s:
                        unbounded.append(f"{method.upper()} {path} {where}")
        assert not unbounded, "integers without bounds:\n" + "\n".join(unbounded)


async def test_huge_ids_are_404_or_422_never_500(tmp_path: Path, sqlite_url: str) -> None:
    async with running(tmp_path, sqlite_url) as h:
        amy = await h.user("amy")
        admin = await h.admin()
        for method, path in [
            ("GET", "/api/orders/{}"),
            ("DELETE", "/api/orders/{}"),
            ("GET", "/api/broker-accounts/{}"),
            ("POST", "/api/broker-accounts/{}/test"),
            ("GET", "/api/strategies/{}"),
            ("POST", "/api/strategies/{}/start"),
            ("GET", "/api/backtests/{}"),
            ("GET", "/api/portfolio?account_id={}"),
            ("GET", "/api/fills?order_id={}"),
        ]:
            r = await h.http.request(method, path.format(BIG), headers=amy)
            assert r.status_code == 422, (path, r.text)
            assert r.json()["error"]["code"] == "validation_error"
            r = await h.http.request(method, path.format(MAX_ID), headers=amy)
            assert r.status_code in (404, 200), (path, r.text)
        r = await h.post_order(amy, type="limit", qty=BIG, price=1)
        assert r.status_code == 422, r.text
        r = await h.http.patch("/api/admin/users/1", json={"max_order_value": BIG}, headers=admin)
        assert r.status_code == 422, r.text
        # An empty change was an SQL syntax error (500).
        r = await h.http.patch("/api/admin/users/1", json={}, headers=admin)
        assert r.status_code == 200, r.text


async def _chunks(size: int, chunk: int = 64 * 1024) -> AsyncIterator[bytes]:
    sent = 0
    yield b'{"username": "'
    while sent < size:
        yield b"x" * chunk
        sent += chunk
    yield b'", "password": "x"}'


async def test_bodies_are_capped_while_read(tmp_path: Path, sqlite_url: str) -> None:
    async with running(tmp_path, sqlite_url) as h, live_server(h.hoga) as addr:
        amy = await h.user("amy")
        async with httpx.AsyncClient(base_url=f"http://{addr}") as http:
            # Declared too large: refused before the body is read.
            r = await http.post(
                "/api/auth/login",
                content=b"{" + b" " * (MAX_JSON_BODY + 1) + b"}",
                headers={"Content-Type": "application/json"},
            )
            assert r.status_code == 413 and r.json()["error"]["code"] == "request.too_large"
            # Streamed without a length: cut off once the cap is passed.
            r = await http.post(
                "/api/auth/login",
                content=_chunks(2 * MAX_JSON_BODY),
                headers={"Content-Type": "application/json"},
            )
            assert r.status_code == 413 and r.json()["error"]["code"] == "request.too_large"
            # A backtest's CSV may be larger than a JSON body, up to its own cap.
            rows = "time,open,high,low,close,volume\n" + "2026-01-05 09:00,1,1,1,1,1\n" * (
                (MAX_JSON_BODY * 2) // 27
            )
            body = {"kind": "sma_cross", "symbol": "005930", "source": "csv", "csv": rows}
            r = await http.post("/api/backtests", json=body, headers=amy)
            assert r.status_code != 413, r.text
            body["csv"] = "x" * (MAX_CSV_UPLOAD + 1)
            r = await http.post("/api/backtests", json=body, headers=amy)
            assert r.status_code == 413 and r.json()["error"]["code"] == "request.too_large"


@pytest.fixture
def boom_app() -> OuterGuard:
    async def boom(scope: Any, receive: Any, send: Any) -> None:
        raise RuntimeError("UPDATE users SET password_hash = 'argon2-secret' WHERE id = 7")

    return OuterGuard(boom)


async def test_unhandled_errors_are_a_plain_500_and_the_log_names_no_sql(
    boom_app: OuterGuard, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    transport = httpx.ASGITransport(app=boom_app, raise_app_exceptions=True)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
        r = await http.get("/boom", headers={"X-Request-Id": "req-42"})
    assert r.status_code == 500
    assert r.json()["error"]["code"] == "internal"
    assert r.headers["x-request-id"] == "req-42"
    text = caplog.text + "".join(str(rec.exc_info) for rec in caplog.records)
    assert "RuntimeError" in text and "req-42" in text
    assert "UPDATE" not in text and "argon2-secret" not in text


async def test_binary_websocket_frames_close_with_1003(tmp_path: Path, sqlite_url: str) -> None:
    async with running(tmp_path, sqlite_url) as h, live_server(h.hoga) as addr:
        r = await h.http.post(
            "/api/auth/login", json={"username": "admin", "password": "admin-pass-123"}
        )
        token = r.json()["access_token"]
        for path in ("/ws/events", "/ws/market-data"):
            # Before authenticating, and after.
            conn = await websockets.connect(f"ws://{addr}{path}")
            await conn.send(b"\x00\x01binary")
            await _closed(conn, 1003)
            conn = await websockets.connect(f"ws://{addr}{path}")
            await conn.send(json.dumps({"type": "auth", "token": token}))
            assert json.loads(await asyncio.wait_for(conn.recv(), 5))["ok"] is True
            await conn.send(b"\xff\xfe")
            await _closed(conn, 1003)


async def _closed(conn: Any, code: int) -> None:
    try:
        async with asyncio.timeout(5):
            while True:
                await conn.recv()
    except ConnectionClosed:
        pass
    assert conn.close_code == code and conn.close_reason


async def test_api_docs_are_served_locally_under_a_csp(tmp_path: Path, sqlite_url: str) -> None:
    async with running(tmp_path, sqlite_url) as h:
        r = await h.http.get("/api/docs")
        assert r.status_code == 200
        csp = r.headers["content-security-policy"]
        assert "script-src 'self'" in csp and "default-src 'self'" in csp
        assert "cdn" not in r.text.lower() and "https://" not in r.text
        assert "<script>" not in r.text  # no inline script: the CSP would refuse it
        for asset in ("swagger-ui-bundle.js", "swagger-ui.css", "init.js"):
            r = await h.http.get(f"/api/docs/assets/{asset}")
            assert r.status_code == 200, asset
        assert (await h.http.get("/api/docs/assets/../../etc/passwd")).status_code == 404
        assert (await h.http.get("/api/openapi.json")).status_code == 200


async def test_a_server_error_under_uvicorn_logs_no_statement_or_traceback(
    tmp_path: Path, sqlite_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    async with running(tmp_path, sqlite_url) as h, live_server(h.hoga) as addr:
        amy = await h.user("amy")

        async def broken(user_id: int) -> Any:
            raise RuntimeError("SELECT * FROM refresh_tokens WHERE token_hash = 'secret-hash'")

        h.hoga.auth.list_sessions = broken  # type: ignore[method-assign]
        async with httpx.AsyncClient(base_url=f"http://{addr}") as http:
            r = await http.get("/api/me/sessions", headers=amy)
        assert r.status_code == 500 and r.json()["error"]["code"] == "internal"
        rid = r.headers["x-request-id"]
    assert f"unhandled RuntimeError on GET /api/me/sessions (request {rid})" in caplog.text
    assert "secret-hash" not in caplog.text and "SELECT" not in caplog.text
    assert not [rec for rec in caplog.records if rec.exc_info], "a traceback was logged"
