"""WebSockets: ``/ws/market-data`` (conflating quote stream) and ``/ws/events`` (the user's own
order, fill and strategy events).

Authentication: ``?token=`` or a first message ``{"type": "auth", "token": ...}`` within 10 s.
A token that expires mid-stream gets an error message and, unless a fresh ``auth`` message
follows within a grace period, the connection is closed with code 4001.

Market data is conflated per connection: between two sends a client keeps only the latest quote
per symbol, so a slow reader never builds a backlog and never delays the hub or other clients.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections import defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from typing import Any, Generic, TypeVar

from fastapi import APIRouter, WebSocket, WebSocketDisconnect
from starlette.websockets import WebSocketState

from hoga.api.deps import client_ip
from hoga.api.language import localize, preferred_language
from hoga.api.views import orderbook_view, quote_view
from hoga.domain import krx
from hoga.domain.errors import HogaError
from hoga.domain.feed import FeedError
from hoga.domain.market import OrderBook, Tick
from hoga.security.auth_core import AuthContext
from hoga.security.changes import SESSION_REVOKED, USER_DISABLED, AuthChange
from hoga.tasks import cancel_and_wait

log = logging.getLogger(__name__)
router = APIRouter()

CHANNELS = ("trades", "orderbook")
CLOSE_UNSUPPORTED = 1003  # RFC 6455: a data type the endpoint cannot accept (binary)
CLOSE_UNAUTHORIZED = 4001
CLOSE_FORBIDDEN = 4003
CLOSE_TOO_MANY = 4008
AUTH_TIMEOUT = 10.0
EXPIRY_GRACE = 30.0


def _ip(ws: WebSocket) -> str | None:
    return client_ip(ws)


def _encode(msg: dict[str, Any]) -> str:
    return json.dumps(msg, ensure_ascii=False, separators=(",", ":"))


async def _send_text(ws: WebSocket, text: str) -> None:
    if ws.application_state == WebSocketState.CONNECTED:
        await ws.send_text(text)


async def _send(ws: WebSocket, msg: dict[str, Any]) -> None:
    await _send_text(ws, _encode(msg))


class WireTexts:
    """The wire text of each symbol's latest quote and order book, encoded once and shared by
    every socket that sends it.

    A tick reaches every socket subscribed to its symbol; building its view and JSON for each
    of them was most of the fan-out's CPU. Entries are keyed by symbol and remember what they
    were made from: a quote by every field its view shows (``Tick`` is mutable - the hub stamps
    ``recv_ts`` - so its identity would not prove a text current), a book by the object (frozen)
    and the last price. At most one entry per symbol and channel, so the size is bounded by the
    universe.
    """

    def __init__(self) -> None:
        self._quotes: dict[str, tuple[tuple[float | int, ...], str]] = {}
        self._books: dict[str, tuple[OrderBook, int | None, str]] = {}

    def quote(self, tick: Tick) -> str:
        shown = (
            tick.price,
            tick.volume,
            tick.cum_volume,
            tick.bid,
            tick.ask,
            tick.bid_size,
            tick.ask_size,
            tick.base_price,
            tick.ts,
        )
        hit = self._quotes.get(tick.symbol)
        if hit is not None and hit[0] == shown:
            return hit[1]
        text = _encode(quote_view(tick))
        self._quotes[tick.symbol] = (shown, text)
        return text

    def book(self, book: OrderBook, last: int | None) -> str:
        hit = self._books.get(book.symbol)
        if hit is not None and hit[0] is book and hit[1] == last:
            return hit[2]
        text = _encode({"type": "orderbook", **orderbook_view(book, last)})
        self._books[book.symbol] = (book, last, text)
        return text


async def _error(ws: WebSocket, code: str, message: str, **extra: Any) -> None:
    # One language per message: ``?lang=`` (a browser cannot set headers on a WebSocket), else
    # the handshake's Accept-Language.
    lang = ws.query_params.get("lang") or preferred_language(ws.headers.get("accept-language"))
    message = localize(message, lang)
    await _send(ws, {"type": "error", "code": code, "message": message, **extra})


class _Binary(Exception):
    """The client sent a binary frame; the socket has been closed with 1003."""


async def _receive_text(ws: WebSocket) -> str:
    """The next text frame. A binary frame closes the socket with 1003 and a reason (this API
    speaks JSON text only); a disconnect raises ``WebSocketDisconnect`` as usual."""
    message = await ws.receive()
    if message["type"] == "websocket.disconnect":
        raise WebSocketDisconnect(message.get("code", 1000), message.get("reason"))
    text = message.get("text")
    if text is None:
        await _error(ws, "ws.binary", "JSON 텍스트만 받습니다 (send JSON text, not binary)")
        with contextlib.suppress(RuntimeError):
            await ws.close(CLOSE_UNSUPPORTED, "binary frames are not accepted")
        raise _Binary
    return str(text)


async def _receive_object(ws: WebSocket) -> dict[str, Any]:
    """The next JSON object the client sends; anything else is answered with
    ``ws.bad_message`` and skipped (the connection stays open)."""
    while True:
        raw = await _receive_text(ws)
        try:
            msg = json.loads(raw)
        except ValueError:
            msg = None
        if isinstance(msg, dict):
            return msg
        await _error(ws, "ws.bad_message", "JSON 객체를 보내 주세요 (send a JSON object)")


async def _authenticate(ws: WebSocket) -> AuthContext | None:
    """Accept the socket and authenticate it; on failure say why and close."""
    hoga = ws.app.state.hoga
    await ws.accept()
    token = ws.query_params.get("token")
    if not token:
        try:
            raw = await asyncio.wait_for(_receive_text(ws), AUTH_TIMEOUT)
            msg = json.loads(raw)
            token = (
                msg.get("token") if isinstance(msg, dict) and msg.get("type") == "auth" else None
            )
        except _Binary:
            return None
        except (TimeoutError, ValueError, WebSocketDisconnect):
            token = None
    if not token or not isinstance(token, str):
        await _error(
            ws,
            "auth.missing_token",
            '인증이 필요합니다: ?token= 또는 {"type":"auth","token":...} (authenticate first)',
        )
        await ws.close(CLOSE_UNAUTHORIZED)
        return None
    try:
        ctx: AuthContext = await hoga.auth.authenticate(token, _ip(ws))
    except HogaError as e:
        await _error(ws, e.code, e.message)
        await ws.close(CLOSE_FORBIDDEN if e.status == 403 else CLOSE_UNAUTHORIZED)
        return None
    ws.state.token = token
    await _send(ws, {"type": "auth", "ok": True, "user": ctx.user.username})
    return ctx


class _Connections:
    """Per-user count of open market-data sockets (the per-user cap), and every open socket
    with its user and sign-in session, so a disabled user's or an ended session's sockets are
    closed (code 4001) whichever process made the change (``security/changes.py``)."""

    def __init__(self) -> None:
        self.count: dict[int, int] = defaultdict(int)
        self.open: dict[WebSocket, tuple[int, str]] = {}
        self.texts = WireTexts()

    def add(self, ws: WebSocket, ctx: AuthContext) -> None:
        self.open[ws] = (ctx.user_id, ctx.session_id)

    def remove(self, ws: WebSocket) -> None:
        self.open.pop(ws, None)

    async def on_auth_change(self, change: AuthChange) -> None:
        if change.kind not in (USER_DISABLED, SESSION_REVOKED):
            return
        for ws, (user_id, session_id) in list(self.open.items()):
            if user_id != change.user_id:
                continue
            if change.kind == SESSION_REVOKED and session_id != change.session_id:
                continue
            self.open.pop(ws, None)
            if change.kind == USER_DISABLED:
                code, message = "auth.disabled", "비활성화된 계정입니다 (account disabled)"
            else:
                code, message = "token.revoked", "로그아웃된 세션입니다 (session revoked)"
            with contextlib.suppress(Exception):
                await _error(ws, code, message)
            with contextlib.suppress(Exception):
                await ws.close(CLOSE_UNAUTHORIZED, code)


async def _token_watch(ws: WebSocket, state: dict[str, Any]) -> None:
    """Close the socket once its token has expired and no fresh one arrived."""
    hoga = ws.app.state.hoga
    warned_at: float | None = None
    while True:
        await asyncio.sleep(1.0)
        try:
            hoga.tokens.verify_access(state["token"])
            warned_at = None
        except HogaError as e:
            now = hoga.clock.monotonic()
            if warned_at is None:
                warned_at = now
                await _error(
                    ws,
                    e.code,
                    '토큰이 만료되었습니다. 새 토큰을 {"type":"auth","token":...}로 보내세요 '
                    "(token expired: send a fresh one)",
                )
            elif now - warned_at > EXPIRY_GRACE:
                await ws.close(CLOSE_UNAUTHORIZED)
                return


async def _reauth(
    ws: WebSocket, msg: dict[str, Any], ctx: AuthContext, state: dict[str, Any]
) -> None:
    hoga = ws.app.state.hoga
    token = msg.get("token")
    try:
        if not isinstance(token, str):
            raise HogaError("token missing", "auth.missing_token")
        fresh = await hoga.auth.authenticate(token, _ip(ws))
        if fresh.user_id != ctx.user_id:
            raise HogaError("a socket stays with its user", "auth.user_mismatch")
    except HogaError as e:
        await _error(ws, e.code, e.message)
        return
    state["token"] = token
    conns: _Connections = ws.app.state.ws_connections
    if ws in conns.open:
        conns.add(ws, fresh)  # the socket now belongs to the fresh token's session
    await _send(ws, {"type": "auth", "ok": True, "user": ctx.user.username})


@contextlib.asynccontextmanager
async def _serving(
    ws: WebSocket, ctx: AuthContext, stream: Coroutine[Any, Any, None], release: Callable[[], None]
) -> AsyncIterator[dict[str, Any]]:
    """A signed-in socket's life around its handler's message loop, the same for every
    endpoint: registered in ``_Connections`` (so a sign-in change closes it), its ``stream`` to
    the client and its token watch running, and the token state that ``_reauth`` renews
    yielded. The loop ends when the client leaves or sends a binary frame, or when the token
    watch closed the socket (the next receive raises RuntimeError). On the way out the socket
    is unregistered, both tasks are stopped and then ``release`` frees the handler's
    subscription."""
    conns: _Connections = ws.app.state.ws_connections
    conns.add(ws, ctx)
    state: dict[str, Any] = {"token": ws.state.token}
    tasks = [asyncio.create_task(stream), asyncio.create_task(_token_watch(ws, state))]
    try:
        yield state
    except (WebSocketDisconnect, RuntimeError, _Binary):
        pass
    finally:
        conns.remove(ws)
        await cancel_and_wait(tasks, swallow_errors=True)
        release()


_Item = TypeVar("_Item", Tick, OrderBook)


class _Channel(Generic[_Item]):
    """One channel of a market-data socket ("trades": quotes, or "orderbook"): the symbols it
    carries and, between two sends, only the latest item per symbol, so a slow reader never
    builds a backlog. ``offer`` is the hub's callback (it runs for every item of the socket's
    symbols, so it stays small); the writer ``take``s what is pending. ``conflated`` counts
    items replaced before they were sent, ``sent`` what the writer sent (the ping's stats)."""

    __slots__ = ("_wake", "conflated", "pending", "sent", "symbols")

    def __init__(self, wake: asyncio.Event) -> None:
        self._wake = wake
        self.symbols: set[str] = set()
        self.pending: dict[str, _Item] = {}
        self.conflated = 0
        self.sent = 0

    def offer(self, item: _Item) -> None:
        symbol = item.symbol
        if symbol not in self.symbols:
            return
        if symbol in self.pending:
            self.conflated += 1
        self.pending[symbol] = item
        self._wake.set()

    def take(self) -> dict[str, _Item]:
        batch, self.pending = self.pending, {}
        return batch


def _signed_in(
    handler: Callable[[WebSocket, AuthContext], Awaitable[None]],
) -> Callable[[WebSocket], Awaitable[None]]:
    """The endpoint that runs ``handler`` once the socket is accepted and authenticated (one
    that fails is told why and closed, and the handler never runs). Not ``functools.wraps``:
    FastAPI reads the endpoint's own signature, which takes the socket alone."""

    async def endpoint(ws: WebSocket) -> None:
        ctx = await _authenticate(ws)
        if ctx is not None:
            await handler(ws, ctx)

    endpoint.__name__ = handler.__name__
    return endpoint


@router.websocket("/ws/market-data")
@_signed_in
async def market_data(ws: WebSocket, ctx: AuthContext) -> None:
    hoga = ws.app.state.hoga
    conns: _Connections = ws.app.state.ws_connections
    if conns.count[ctx.user_id] >= hoga.settings.ws_max_connections:
        await _error(
            ws,
            "ws.too_many_connections",
            f"시세 연결은 사용자당 {hoga.settings.ws_max_connections}개까지입니다 (too many connections)",
        )
        await ws.close(CLOSE_TOO_MANY)
        return
    conns.count[ctx.user_id] += 1
    texts = conns.texts
    # Channels per symbol (contracts.md): "trades" (quotes, the default) and "orderbook".
    wake = asyncio.Event()
    trades: _Channel[Tick] = _Channel(wake)
    books: _Channel[OrderBook] = _Channel(wake)
    sub = hoga.hub.subscribe([], trades.offer, owner=f"ws:{ctx.user_id}", on_book=books.offer)

    async def writer() -> None:
        while True:
            await wake.wait()
            wake.clear()
            batch, book_batch = trades.take(), books.take()
            for tick in batch.values():
                await _send_text(ws, texts.quote(tick))
                trades.sent += 1
            for book in book_batch.values():
                last = hoga.lookup.last(book.symbol)
                await _send_text(ws, texts.book(book, last.price if last is not None else None))
                books.sent += 1

    def release() -> None:
        sub.close()
        conns.count[ctx.user_id] -= 1

    cap = hoga.settings.ws_max_symbols
    async with _serving(ws, ctx, writer(), release) as state:
        while True:
            msg = await _receive_object(ws)
            kind = msg.get("type")
            if kind in ("subscribe", "unsubscribe"):
                symbols = msg.get("symbols")
                if not isinstance(symbols, list) or not all(isinstance(s, str) for s in symbols):
                    await _error(ws, "ws.bad_symbols", "symbols must be a list of codes")
                    continue
                symbols = [s.strip().upper() for s in symbols]
                channels = msg.get("channels", ["trades"])
                if (
                    not isinstance(channels, list)
                    or not channels
                    or not all(c in CHANNELS for c in channels)
                ):
                    await _error(
                        ws,
                        "ws.bad_channels",
                        "channels는 trades, orderbook 중에서 고르세요 "
                        '(channels must be a non-empty list of "trades", "orderbook")',
                    )
                    continue
                bad = [s for s in symbols if not krx.is_valid_symbol(s) or s not in hoga.universe]
                good = [s for s in dict.fromkeys(symbols) if s not in bad]
                if bad:
                    await _error(
                        ws,
                        "market.unknown_symbol",
                        f"알 수 없는 종목: {', '.join(bad[:10])}",
                        symbols=bad[:50],
                    )
                if kind == "unsubscribe":
                    if "trades" in channels:
                        trades.symbols.difference_update(good)
                    if "orderbook" in channels:
                        books.symbols.difference_update(good)
                    gone = [s for s in good if s not in trades.symbols and s not in books.symbols]
                    sub.remove(gone)
                    await _send(ws, {"type": "unsubscribed", "symbols": good, "channels": channels})
                    continue
                new = [s for s in good if s not in sub.symbols]
                room = cap - len(sub.symbols)
                if len(new) > room:
                    await _error(
                        ws,
                        "ws.too_many_symbols",
                        f"연결당 {cap}종목까지 구독할 수 있습니다 (at most {cap} symbols per connection)",
                        rejected=new[max(room, 0) :][:50],
                    )
                    new = new[: max(room, 0)]
                try:
                    sub.add(new)
                except FeedError as e:
                    await _error(ws, e.code, str(e))
                    continue
                wanted = [s for s in good if s in sub.symbols]
                fresh_trades = [s for s in wanted if s not in trades.symbols]
                fresh_books = [s for s in wanted if s not in books.symbols]
                if "trades" in channels:
                    trades.symbols.update(wanted)
                if "orderbook" in channels:
                    books.symbols.update(wanted)
                await _send(
                    ws,
                    {
                        "type": "subscribed",
                        "symbols": sorted(sub.symbols),
                        "channels": {
                            "trades": sorted(trades.symbols),
                            "orderbook": sorted(books.symbols),
                        },
                    },
                )
                if "trades" in channels:
                    for s in fresh_trades:
                        tick = hoga.hub.last(s) or hoga.quotes.last(s)
                        if tick is not None:
                            trades.pending.setdefault(s, tick)
                if "orderbook" in channels:
                    for s in fresh_books:
                        book = hoga.lookup.known_orderbook(s)
                        if book is not None:
                            books.pending.setdefault(s, book)
                wake.set()
            elif kind == "auth":
                await _reauth(ws, msg, ctx, state)
            elif kind == "ping":
                stats = {
                    "conflated": trades.conflated,
                    "sent": trades.sent,
                    "books_conflated": books.conflated,
                    "books_sent": books.sent,
                }
                await _send(ws, {"type": "pong", "stats": stats})
            else:
                await _error(ws, "ws.unknown_type", f"unknown message type {kind!r}")


@router.websocket("/ws/events")
@_signed_in
async def events(ws: WebSocket, ctx: AuthContext) -> None:
    hoga = ws.app.state.hoga
    sub = hoga.bus.subscribe(ctx.user_id)

    async def pump() -> None:
        while True:
            await _send(ws, await sub.get())

    async with _serving(ws, ctx, pump(), sub.close) as state:
        while True:
            msg = await _receive_object(ws)
            if msg.get("type") == "auth":
                await _reauth(ws, msg, ctx, state)
            elif msg.get("type") == "ping":
                await _send(ws, {"type": "pong"})
            else:
                await _error(ws, "ws.unknown_type", f"unknown message type {msg.get('type')!r}")
