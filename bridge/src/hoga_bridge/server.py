"""The bridge's network face: a WebSocket server speaking JSON to hoga.

Protocol (version ``PROTOCOL_VERSION``):

* The client's first message is ``{"type": "hello", "version": 1, "token": "..."}``. A wrong
  token (compared in constant time) closes the connection with code 4401, another version with
  4400; otherwise the bridge answers ``{"type": "welcome", "version": 1, "pool": {...}}``.
* Requests ``{"type": "request", "id": n, "op": ..., ...}`` are answered with
  ``{"type": "response", "id": n, "ok": true, ...}`` or ``{"ok": false, "kind": ..., "code":
  ..., "message": ...}``. Ops: ``status``; ``switch {user}`` (log a slot in as the user);
  ``prepare {user}`` (the same without taking the working slot; needs ``--pool-size`` ≥ 2);
  ``abort {user}`` (abandon that user's login in progress, for a more urgent one);
  ``subscribe {users}`` (execution notices of those users to this connection); ``real
  {codes}`` (real-time quotes to this connection); ``tr {user, tr, inputs, single, multi,
  pages, if_logged_in}`` (``if_logged_in``: answer ``no_session`` rather than switch);
  ``order {user, acc, order_type, code, qty, price, hoga, orig}``; ``fault`` (tests only,
  with ``--allow-faults``).
* Error kinds a client must tell apart: ``rejected`` (the control or the exchange refused:
  nothing happened), ``not_processed`` (nothing happened, safe to send again after
  ``retry_after``), ``unknown`` (an order may or may not exist: reconcile, never resend),
  ``login_failed``, ``bad_request``.
* Events ``{"type": "event", "event": "chejan" | "msg" | "session", "user": ..., ...}`` and
  ``{"type": "event", "event": "real", "code": ..., "fids": {...}}``.

TLS (``--cert``/``--key``) is required unless the bridge listens on loopback only. The token
comes from ``HOGA_BRIDGE_TOKEN`` or ``--token-file`` and is never logged.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hmac
import ipaddress
import json
import logging
import os
import signal
import ssl
import sys
from pathlib import Path
from typing import Any

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed

from hoga_bridge import PROTOCOL_VERSION
from hoga_bridge.pool import Pool, PoolError

log = logging.getLogger("hoga_bridge")

MAX_MESSAGE = 1 << 20
REQUEST_TIMEOUT = 30.0
#: Real-time frames a slow client may have queued before they are dropped (notices never are).
MAX_QUEUED_REAL = 5000


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class _Client:
    def __init__(self, ws: ServerConnection) -> None:
        self.ws = ws
        self.users: set[str] = set()
        self.real = False
        self.out: asyncio.Queue[dict[str, Any]] = asyncio.Queue()

    def push(self, msg: dict[str, Any]) -> None:
        if msg.get("event") == "real" and self.out.qsize() > MAX_QUEUED_REAL:
            return
        self.out.put_nowait(msg)


class BridgeServer:
    """Serves one pool to authenticated clients; see the module docstring."""

    def __init__(self, pool: Pool, token: str, *, allow_faults: bool = False) -> None:
        if len(token) < 16:
            raise ValueError("the bridge token must be at least 16 characters")
        self.pool = pool
        self._token = token.encode()
        self.allow_faults = allow_faults
        self._clients: set[_Client] = set()
        pool.on_event = self._on_event

    def _on_event(self, user: str | None, msg: dict[str, Any]) -> None:
        out = {**msg, "type": "event", "user": user}
        for client in self._clients:
            if (user is None and client.real) or (user is not None and user in client.users):
                client.push(out)

    async def handle(self, ws: ServerConnection) -> None:
        try:
            hello = json.loads(await asyncio.wait_for(ws.recv(), 10.0))
        except (TimeoutError, ConnectionClosed, json.JSONDecodeError, TypeError):
            await ws.close(4400, "hello expected")
            return
        if not isinstance(hello, dict) or hello.get("type") != "hello":
            await ws.close(4400, "hello expected")
            return
        token = str(hello.get("token", "")).encode()
        if not hmac.compare_digest(token, self._token):
            log.warning("refused a client with a wrong token from %s", ws.remote_address)
            await ws.close(4401, "unauthorized")
            return
        if hello.get("version") != PROTOCOL_VERSION:
            await ws.close(4400, f"protocol version {PROTOCOL_VERSION} only")
            return
        client = _Client(ws)
        self._clients.add(client)
        writer = asyncio.get_running_loop().create_task(self._write(client))
        client.push({"type": "welcome", "version": PROTOCOL_VERSION, "pool": self.pool.status()})
        tasks: set[asyncio.Task[None]] = set()
        try:
            async for raw in ws:
                try:
                    msg = json.loads(raw)
                    if not isinstance(msg, dict) or msg.get("type") != "request":
                        raise ValueError("request expected")
                except ValueError:
                    client.push(
                        {
                            "type": "response",
                            "id": None,
                            "ok": False,
                            "kind": "bad_request",
                            "code": 0,
                            "message": "malformed message",
                        }
                    )
                    continue
                task = asyncio.get_running_loop().create_task(self._serve(client, msg))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
        except ConnectionClosed:
            pass
        finally:
            self._clients.discard(client)
            writer.cancel()
            for task in tasks:
                task.cancel()

    async def _write(self, client: _Client) -> None:
        with contextlib.suppress(ConnectionClosed):
            while True:
                msg = await client.out.get()
                await client.ws.send(json.dumps(msg, ensure_ascii=False))

    async def _serve(self, client: _Client, msg: dict[str, Any]) -> None:
        rid = msg.get("id")
        try:
            result = await self._dispatch(client, str(msg.get("op", "")), msg)
            client.push({"type": "response", "id": rid, "ok": True, **result})
        except PoolError as e:
            client.push(
                {
                    "type": "response",
                    "id": rid,
                    "ok": False,
                    "kind": e.kind,
                    "code": e.code,
                    "message": e.message,
                }
            )
        except (KeyError, TypeError, ValueError) as e:
            client.push(
                {
                    "type": "response",
                    "id": rid,
                    "ok": False,
                    "kind": "bad_request",
                    "code": 0,
                    "message": f"bad request: {type(e).__name__}",
                }
            )
        except Exception as e:
            # Never leave a request unanswered. An order may have gone out before the fault.
            log.exception("request %s failed", msg.get("op"))
            kind = "unknown" if msg.get("op") == "order" else "not_processed"
            client.push(
                {
                    "type": "response",
                    "id": rid,
                    "ok": False,
                    "kind": kind,
                    "code": 0,
                    "message": f"bridge fault: {type(e).__name__}",
                }
            )

    async def _dispatch(self, client: _Client, op: str, msg: dict[str, Any]) -> dict[str, Any]:
        pool = self.pool
        if op == "status":
            return {"pool": pool.status()}
        if op in ("switch", "prepare"):
            user = _user(msg)
            proc = await pool.switch(user, keep_active=op == "prepare")
            return {"user": user, "accounts": proc.accounts, "pool": pool.status()}
        if op == "abort":
            return {"aborted": pool.abort(_user(msg))}
        if op == "subscribe":
            client.users = {str(u) for u in msg["users"]}
            return {}
        if op == "real":
            codes = [str(x) for x in msg["codes"] if len(str(x)) == 6 and str(x).isalnum()]
            client.real = True
            await pool.register(codes)
            return {"codes": len(codes)}
        if op == "tr":
            tr_keys: tuple[str, ...] = ("tr", "inputs", "single", "multi", "pages")
            args = {k: msg[k] for k in tr_keys if k in msg}
            if msg.get("if_logged_in") and pool.holder(_user(msg)) is None:
                raise PoolError("no_session", "no worker holds this user now")
            try:
                return await pool.command(_user(msg), "tr", REQUEST_TIMEOUT, **args)
            except PoolError as e:
                if e.kind in ("worker_died", "timeout"):
                    # An inquiry changes nothing: asking again is safe.
                    raise PoolError("not_processed", e.message, e.code) from None
                raise
        if op == "order":
            keys = ("acc", "order_type", "code", "qty", "price", "hoga", "orig")
            args = {k: msg[k] for k in keys if k in msg}
            proc = await pool.session(_user(msg))  # a failed login: nothing was sent
            try:
                return await proc.call("order", REQUEST_TIMEOUT, **args)
            except PoolError as e:
                if e.kind in ("worker_died", "timeout"):
                    # It may have reached the server before the worker went away.
                    raise PoolError("unknown", e.message, e.code) from None
                raise
        if op == "fault" and self.allow_faults:
            await pool.fault(_user(msg), str(msg["name"]))
            return {}
        raise PoolError("bad_request", f"unknown op {op[:20]!r}")


def _user(msg: dict[str, Any]) -> str:
    user = str(msg["user"])
    if not (
        0 < len(user) <= 32 and user.replace("_", "").replace("-", "").replace(".", "").isalnum()
    ):
        raise ValueError("bad user")
    return user


def worker_command(args: argparse.Namespace) -> list[str]:
    cmd = [sys.executable, "-m", "hoga_bridge.worker", "--control", args.control]
    if args.fake_settings:
        cmd += ["--fake-settings", args.fake_settings]
    if args.allow_faults:
        cmd.append("--allow-faults")
    return cmd


def read_token(args: argparse.Namespace) -> str:
    if args.token_file:
        return Path(args.token_file).read_text(encoding="utf-8").strip()
    token = os.environ.get("HOGA_BRIDGE_TOKEN", "")
    if not token:
        raise SystemExit("set HOGA_BRIDGE_TOKEN or --token-file")
    return token


async def serve_bridge(args: argparse.Namespace) -> None:
    token = read_token(args)
    tls: ssl.SSLContext | None = None
    if args.cert:
        tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        tls.load_cert_chain(args.cert, args.key)
    elif not is_loopback(args.host):
        raise SystemExit("TLS (--cert/--key) is required when not listening on loopback")
    pool = Pool(worker_command(args), size=args.pool_size, spare=not args.no_spare)
    bridge = BridgeServer(pool, token, allow_faults=args.allow_faults)
    await pool.start()
    stop = asyncio.get_running_loop().create_future()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            asyncio.get_running_loop().add_signal_handler(sig, stop.set_result, None)
    server: Server
    async with serve(bridge.handle, args.host, args.port, ssl=tls, max_size=MAX_MESSAGE) as server:
        port = next(iter(server.sockets)).getsockname()[1]
        # One parseable line for supervisors and tests: where the bridge listens.
        print(json.dumps({"listening": port, "tls": tls is not None}), flush=True)
        await stop
    await pool.close()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="hoga-bridge", description="Kiwoom OpenAPI+ bridge for hoga")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=5943)
    ap.add_argument(
        "--token-file", default=None, help="file holding the token (else HOGA_BRIDGE_TOKEN)"
    )
    ap.add_argument("--cert", default=None, help="TLS certificate (PEM); required off loopback")
    ap.add_argument("--key", default=None, help="TLS private key (PEM)")
    ap.add_argument("--pool-size", type=int, default=1, help="logins at once (unverified above 1)")
    ap.add_argument("--no-spare", action="store_true", help="do not keep a started spare worker")
    ap.add_argument("--control", choices=["qt", "fake"], default="qt")
    ap.add_argument("--fake-settings", default=None, help="JSON settings of the fake control")
    ap.add_argument("--allow-faults", action="store_true", help="tests only: fault injection")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    asyncio.run(serve_bridge(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
