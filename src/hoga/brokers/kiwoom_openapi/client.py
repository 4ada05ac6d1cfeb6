"""hoga's side of the bridge protocol (``bridge/src/hoga_bridge/server.py``): one WebSocket per
bridge, a versioned hello with the token, requests answered by id, events pushed.

Contract: ``request`` returns the answer or raises ``BridgeError`` with the bridge's error
``kind``; a connection that drops while a request is outstanding raises kind
``disconnected`` (for an order that means the outcome is unknown). The connection is opened
on first use and, while anything is subscribed (users' notices, real-time codes), reopened in
the background with back-off so notices keep flowing; subscriptions are sent again on every
new connection. The token is sent only inside the hello and never appears in errors or logs.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import ssl
from collections.abc import Callable
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidURI

from hoga.domain.secret import Secret

log = logging.getLogger(__name__)

PROTOCOL_VERSION = 1
EventHandler = Callable[[dict[str, Any]], None]


class BridgeError(Exception):
    """The bridge (or the way to it) failed a request; ``kind`` is the protocol's error kind."""

    def __init__(
        self, kind: str, message: str, code: int = 0, retry_after: float | None = None
    ) -> None:
        super().__init__(message)
        self.kind, self.message, self.code = kind, message, code
        self.retry_after = retry_after


class BridgeClient:
    """See the module docstring. ``ca_file`` trusts a private CA for ``wss://`` bridges."""

    def __init__(
        self,
        url: str,
        token: Secret,
        *,
        on_event: EventHandler,
        ca_file: str | None = None,
        request_timeout: float = 30.0,
        connect_timeout: float = 10.0,
        backoff_max: float = 5.0,
    ) -> None:
        self.url = url
        self._token = token
        self._on_event = on_event
        self.ca_file = ca_file
        self.request_timeout = request_timeout
        self.connect_timeout = connect_timeout
        self.backoff_max = backoff_max
        self.users: set[str] = set()
        self.codes: set[str] = set()
        self.pool: dict[str, Any] = {}
        self.connects = 0
        self._ws: ClientConnection | None = None
        self._lock = asyncio.Lock()
        self._ids = itertools.count(1)
        self._pending: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._reader: asyncio.Task[None] | None = None
        self._redial: asyncio.Task[None] | None = None
        self._closed = False

    @property
    def connected(self) -> bool:
        return self._ws is not None

    def _ssl(self) -> ssl.SSLContext | None:
        if not self.url.startswith("wss://"):
            return None
        return ssl.create_default_context(cafile=self.ca_file)

    async def _connection(self) -> ClientConnection:
        async with self._lock:
            if self._ws is not None:
                return self._ws
            if self._closed:
                raise BridgeError("disconnected", "the bridge client is closed")
            try:
                ws = await asyncio.wait_for(
                    connect(self.url, ssl=self._ssl(), max_size=1 << 22, open_timeout=None),
                    self.connect_timeout,
                )
            except (OSError, TimeoutError, InvalidHandshake, InvalidURI, ssl.SSLError) as e:
                raise BridgeError(
                    "unreachable", f"bridge unreachable ({type(e).__name__})"
                ) from None
            try:
                hello = {"type": "hello", "version": PROTOCOL_VERSION}
                await ws.send(json.dumps({**hello, "token": self._token.reveal()}))
                welcome = json.loads(await asyncio.wait_for(ws.recv(), self.connect_timeout))
            except ConnectionClosed as e:
                code = e.rcvd.code if e.rcvd is not None else 0
                if code == 4401:
                    raise BridgeError("unauthorized", "the bridge refused the token") from None
                raise BridgeError(
                    "unreachable", f"the bridge closed the connection ({code})"
                ) from None
            except (TimeoutError, json.JSONDecodeError):
                await ws.close()
                raise BridgeError("unreachable", "no welcome from the bridge") from None
            if welcome.get("type") != "welcome" or welcome.get("version") != PROTOCOL_VERSION:
                await ws.close()
                raise BridgeError("unreachable", "the bridge speaks another protocol version")
            self.pool = dict(welcome.get("pool") or {})
            self._ws = ws
            self.connects += 1
            self._reader = asyncio.get_running_loop().create_task(self._read(ws))
        if self.users:
            await self._send(ws, "subscribe", users=sorted(self.users))
        if self.codes:
            await self._send(ws, "real", codes=sorted(self.codes))
        return ws

    async def _send(self, ws: ClientConnection, op: str, **args: Any) -> None:
        with contextlib.suppress(ConnectionClosed):
            await ws.send(json.dumps({"type": "request", "id": 0, "op": op, **args}))

    async def _read(self, ws: ClientConnection) -> None:
        try:
            async for raw in ws:
                try:
                    msg = json.loads(raw)
                except json.JSONDecodeError:
                    continue
                if msg.get("type") == "response":
                    fut = self._pending.pop(int(msg.get("id") or 0), None)
                    if fut is not None and not fut.done():
                        fut.set_result(msg)
                elif msg.get("type") == "event":
                    try:
                        self._on_event(msg)
                    except Exception:
                        log.exception("bridge event handler failed")
        except ConnectionClosed:
            pass
        finally:
            if self._ws is ws:
                self._ws = None
            lost = BridgeError("disconnected", "the connection to the bridge dropped")
            for fut in self._pending.values():
                if not fut.done():
                    fut.set_exception(lost)
            self._pending.clear()
            redialing = self._redial is not None and not self._redial.done()
            if not self._closed and (self.users or self.codes) and not redialing:
                self._redial = asyncio.get_running_loop().create_task(self._reconnect())

    async def _reconnect(self) -> None:
        delay = 0.1
        while not self._closed and self._ws is None:
            try:
                await self._connection()
                return
            except BridgeError as e:
                log.warning("bridge %s: reconnect failed (%s); retrying", self.url, e.kind)
            await asyncio.sleep(delay)
            delay = min(delay * 2, self.backoff_max)

    async def request(self, op: str, *, within: float | None = None, **args: Any) -> dict[str, Any]:
        ws = await self._connection()
        n = next(self._ids)
        fut: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._pending[n] = fut
        try:
            await ws.send(json.dumps({"type": "request", "id": n, "op": op, **args}))
            msg = await asyncio.wait_for(fut, within or self.request_timeout)
        except ConnectionClosed:
            raise BridgeError("disconnected", "the connection to the bridge dropped") from None
        except TimeoutError:
            raise BridgeError("timeout", f"no answer from the bridge to {op}") from None
        finally:
            self._pending.pop(n, None)
        if not msg.get("ok"):
            raise BridgeError(
                str(msg.get("kind", "error")),
                str(msg.get("message", ""))[:300],
                int(msg.get("code") or 0),
                msg.get("retry_after"),
            )
        return msg

    async def subscribe(self, user: str) -> None:
        self.users.add(user)
        try:
            ws = await self._connection()
        except BridgeError:
            # Keep trying in the background: notices must flow once the bridge is back.
            if not self._closed and (self._redial is None or self._redial.done()):
                self._redial = asyncio.get_running_loop().create_task(self._reconnect())
            raise
        await self._send(ws, "subscribe", users=sorted(self.users))

    async def real(self, codes: list[str]) -> None:
        self.codes.update(codes)
        await self.request("real", codes=sorted(self.codes))

    async def close(self) -> None:
        self._closed = True
        for task in (self._redial, self._reader):
            if task is not None:
                task.cancel()
                with contextlib.suppress(BaseException):
                    await task
        if self._ws is not None:
            await self._ws.close()
            self._ws = None
