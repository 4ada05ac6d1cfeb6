"""Per-request context: the request id on every log line, and API latency by route.

A pure ASGI middleware (no body buffering, WebSockets pass through with an id too):

* ``X-Request-ID`` from the client is kept when it is 1-64 characters of ``[A-Za-z0-9._:-]``;
  anything else (too long, other characters, absent) is replaced with a fresh id - a header is
  never copied into logs unchecked. The id is set in ``hoga.logs.request_id`` for the request's
  duration and returned in the response's ``X-Request-ID``.
* The latency of each HTTP request goes to ``hoga_api_request_seconds`` labelled with the route
  *template* (``/api/orders/{order_id}``), never the raw path, so ids do not explode the series.
"""

from __future__ import annotations

import re
import time
import uuid
from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from hoga.logs import request_id

if TYPE_CHECKING:
    from hoga.metrics import Metrics

_VALID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")
HEADER = b"x-request-id"


def accept_request_id(value: str | None) -> str:
    """The client's id when it is safe to log, else a fresh one."""
    if value and _VALID.match(value):
        return value
    return uuid.uuid4().hex


def client_request_id(scope: Scope) -> str:
    """The request's ``X-Request-ID`` when it is safe to log, else a fresh id."""
    for name, value in scope.get("headers", ()):
        if name == HEADER:
            return accept_request_id(bytes(value).decode("latin-1"))
    return accept_request_id(None)


def tagged(message: Message, rid: str) -> Message:
    """A response start carrying exactly one ``X-Request-ID``: ``rid``."""
    headers = [(k, v) for k, v in message.get("headers", ()) if k.lower() != HEADER]
    headers.append((HEADER, rid.encode()))
    return {**message, "headers": headers}


class RequestMiddleware(ABC):
    """A pure ASGI middleware for HTTP requests and WebSockets: ``request`` handles those;
    every other scope (the lifespan) passes straight through to the app."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        await self.request(scope, receive, send)

    @abstractmethod
    async def request(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Handle one HTTP request or WebSocket (call ``self.app`` to pass it on)."""


def _route_template(scope: Scope) -> str:
    route = scope.get("route")
    path = getattr(route, "path", None)
    return str(path) if path else "unmatched"


class RequestContext(RequestMiddleware):
    """See the module docstring. ``metrics`` is looked up on ``app.state.hoga`` lazily."""

    async def request(self, scope: Scope, receive: Receive, send: Send) -> None:
        # api/guard.py (outermost) has already chosen the id: logs and response agree on it.
        rid = scope.get("state", {}).get("request_id") or client_request_id(scope)
        token = request_id.set(rid)
        status = 500
        started = time.perf_counter()

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
                message = tagged(message, rid)
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            request_id.reset(token)
            if scope["type"] == "http":
                self._observe(scope, status, time.perf_counter() - started)

    @staticmethod
    def _observe(scope: Scope, status: int, seconds: float) -> None:
        app: Any = scope.get("app")
        hoga = getattr(getattr(app, "state", None), "hoga", None)
        metrics: Metrics | None = getattr(hoga, "metrics", None)
        if metrics is None:
            return
        metrics.api_latency.labels(
            _route_template(scope), scope.get("method", "GET"), f"{status // 100}xx"
        ).observe(seconds)
