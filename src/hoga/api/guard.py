"""The outermost ASGI layer: a request id on every answer, body caps, and the last catch.

Bodies are capped while they are read (``api/bounds.py``): a Content-Length above the
route's cap is refused before anything is read, and a body that streams past it is cut off
there - 413 ``request.too_large`` either way, never a body buffered whole first.

Starlette answers an unhandled exception with our 500 ``internal`` body and then *re-raises*
it, and uvicorn logs the re-raised exception with its traceback - which, for a database
error, quotes the SQL statement and its parameters (issue 12). This layer sits outside
everything else: it logs the exception's type, the route and the request id only, answers
500 ``internal`` if nothing was sent yet, and never lets the exception reach the server.
WebSocket handlers get the same treatment (the socket is closed with 1011).
"""

from __future__ import annotations

import json
import logging

from starlette.exceptions import HTTPException
from starlette.types import Message, Receive, Scope, Send

from hoga.api.bounds import body_cap
from hoga.api.request_context import RequestMiddleware, client_request_id, tagged

log = logging.getLogger("hoga.api")

_INTERNAL = json.dumps(
    {
        "error": {
            "code": "internal",
            "message": "서버 내부 오류입니다 (internal error); 관리자에게 문의하세요",
        }
    },
    ensure_ascii=False,
).encode()
_TOO_LARGE = json.dumps(
    {"error": {"code": "request.too_large", "message": "요청이 너무 큽니다 (request too large)"}},
    ensure_ascii=False,
).encode()


class BodyTooLarge(HTTPException):
    """Raised from ``receive`` once a body passes its cap; FastAPI lets HTTP exceptions
    through its body parsing, so the error handlers answer 413 ``request.too_large``."""

    def __init__(self) -> None:
        super().__init__(413, "요청이 너무 큽니다 (request too large)")


class OuterGuard(RequestMiddleware):
    """See the module docstring. ``X-Request-Id`` is taken from the request when it looks
    like one (a proxy's), else made up, and returned on the response."""

    async def request(self, scope: Scope, receive: Receive, send: Send) -> None:
        rid = client_request_id(scope)
        scope.setdefault("state", {})["request_id"] = rid
        started = False

        async def send_tagged(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                # One X-Request-Id: api/request_context.py (inside) tags responses too.
                message = tagged(message, rid)
            elif message["type"] in ("websocket.accept", "websocket.close"):
                started = True
            await send(message)

        if scope["type"] == "http":
            cap = body_cap(scope.get("method", ""), scope.get("path", ""))
            if _content_length(scope) > cap:
                await _answer(send, 413, _TOO_LARGE, rid)
                return
            receive = _capped(receive, cap)
        try:
            await self.app(scope, receive, send_tagged)
        except BodyTooLarge:
            if not started:
                await _answer(send, 413, _TOO_LARGE, rid)
        except Exception as exc:
            log.error(
                "unhandled %s on %s %s (request %s)",
                type(exc).__name__,
                scope.get("method", "WS"),
                scope.get("path", "?"),
                rid,
            )
            if started:
                return
            if scope["type"] == "websocket":
                await send({"type": "websocket.close", "code": 1011, "reason": "internal error"})
                return
            await _answer(send, 500, _INTERNAL, rid)


async def _answer(send: Send, status: int, body: bytes, rid: str) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"x-request-id", rid.encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


def _content_length(scope: Scope) -> int:
    for name, value in scope.get("headers", []):
        if name == b"content-length":
            try:
                return int(bytes(value))
            except ValueError:
                return 0
    return 0


def _capped(receive: Receive, cap: int) -> Receive:
    seen = 0

    async def capped() -> Message:
        nonlocal seen
        message = await receive()
        if message["type"] == "http.request":
            seen += len(message.get("body", b""))
            if seen > cap:
                raise BodyTooLarge
        return message

    return capped
