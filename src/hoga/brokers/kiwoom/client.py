"""The Kiwoom REST client: one per (host, app key), shared by the adapter and the feed.

Every call is ``POST`` + JSON with an ``api-id`` header (kiwoom.md A2). The client

* paces every request of its app key - orders, reports and token issues alike - through one
  ``hoga.brokers.pacing.Pacer`` (it counts requests still in flight and one window past their
  answer), so the key never exceeds its budget at Kiwoom even when the dispatcher's
  order pacing and a reconciliation run overlap, and whatever the network delays;
* attaches the key's single shared token (``TokenKeeper``), and on 8005 re-issues it once and
  retries once;
* turns every answer into success or one of the broker errors (``errors.classify``), and
  transport failures into "not sent" (``BrokerRejected`` with ``kiwoom.unreachable``: the TCP
  connection never opened) or "maybe" (``BrokerOutcomeUnknown``: timeouts, dropped
  connections) for orders;
* follows ``cont-yn``/``next-key`` *response headers* for paged queries, echoing them back as
  request headers.

``KiwoomWire`` keeps the clients (and their realtime connections) so that one app key has
exactly one token, one budget and one WebSocket session in the process.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import socket
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import urlsplit, urlunsplit

import httpx

from hoga.brokers.base import (
    BrokerError,
    BrokerNotProcessed,
    BrokerOutcomeUnknown,
    BrokerRejected,
    TokenStore,
)
from hoga.brokers.kiwoom.errors import TokenInvalid, classify, describe
from hoga.brokers.kiwoom.realtime import RealtimeConnection, RealtimeOptions
from hoga.brokers.kiwoom.tokens import TokenKeeper
from hoga.brokers.kiwoom.wire import WireError, parse_expires
from hoga.brokers.pacing import Pacer
from hoga.domain.clock import Clock
from hoga.domain.secret import Secret

log = logging.getLogger(__name__)

REAL_REST: Final = "https://api.kiwoom.com"
MOCK_REST: Final = "https://mockapi.kiwoom.com"
REAL_WS: Final = "wss://api.kiwoom.com:10000"
MOCK_WS: Final = "wss://mockapi.kiwoom.com:10000"
WS_PATH: Final = "/api/dostk/websocket"
TOKEN_PATH: Final = "/oauth2/token"  # noqa: S105 - a URL path, not a secret
ORDER_PATH: Final = "/api/dostk/ordr"
ACCOUNT_PATH: Final = "/api/dostk/acnt"
STOCK_INFO_PATH: Final = "/api/dostk/stkinfo"
JSON_TYPE: Final = "application/json;charset=UTF-8"
_NODELAY: Final = [(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)]


def default_urls(env: str) -> tuple[str, str]:
    """(REST base, WebSocket URL) of Kiwoom's real or mock domain (kiwoom.md A1)."""
    if env == "real":
        return REAL_REST, REAL_WS + WS_PATH
    return MOCK_REST, MOCK_WS + WS_PATH


def ws_url_for(base_url: str, ws_url: str | None) -> str:
    """The WebSocket URL to use: ``ws_url`` (path added if it has none), else derived from a
    custom ``base_url`` (same host and port, ws scheme - how the local fake serves both)."""
    if ws_url:
        parts = urlsplit(ws_url)
        if parts.path in ("", "/"):
            return urlunsplit((parts.scheme, parts.netloc, WS_PATH, "", ""))
        return ws_url
    parts = urlsplit(base_url)
    scheme = "wss" if parts.scheme == "https" else "ws"
    return urlunsplit((scheme, parts.netloc, WS_PATH, "", ""))


@dataclass(frozen=True, slots=True)
class Reply:
    """A successful answer: the JSON body and the continuation headers."""

    body: dict[str, Any]
    cont_yn: str
    next_key: str


@dataclass(frozen=True, slots=True)
class Timeouts:
    connect: float = 3.0
    query: float = 10.0
    order: float = 7.0


@dataclass(frozen=True, slots=True)
class ClientOptions:
    """How every client of an app key paces and waits, set once for the whole wire.

    ``rate`` requests per ``window`` seconds, ``margin`` seconds of slack (``Pacer``); the
    answer ``timeouts``; ``renew_margin``: renew the token this many seconds before it expires.
    """

    rate: float
    window: float = 1.0
    margin: float = 0.0
    timeouts: Timeouts = Timeouts()
    renew_margin: float = 600.0


class KiwoomClient:
    """REST access for one app key at one host; see the module docstring."""

    def __init__(
        self,
        base_url: str,
        ws_url: str,
        app_key: Secret,
        app_secret: Secret,
        *,
        store: TokenStore,
        clock: Clock,
        options: ClientOptions,
        label: str = "kiwoom",
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.ws_url = ws_url
        self._app_key = app_key
        self._app_secret = app_secret
        self._clock = clock
        self.label = label
        self.timeouts = options.timeouts
        self.pacer = Pacer(options.rate, options.window, options.margin)
        self.tokens = TokenKeeper(
            self._issue_token, store, clock, renew_margin=options.renew_margin, label=label
        )
        limits = httpx.Limits(max_connections=8, max_keepalive_connections=8)
        self._http = httpx.AsyncClient(
            base_url=self.base_url,
            timeout=httpx.Timeout(self.timeouts.query, connect=self.timeouts.connect),
            limits=limits,
            # An order is latency-sensitive: never let Nagle hold a small write back waiting
            # for the peer's delayed ACK (that cost the fake ~40 ms a request until it, too,
            # set TCP_NODELAY).
            transport=transport or httpx.AsyncHTTPTransport(limits=limits, socket_options=_NODELAY),
        )
        self.requests = 0
        self.retried_token = 0
        self.realtime: RealtimeConnection | None = None  # created on first use (KiwoomWire)

    def __repr__(self) -> str:
        return f"KiwoomClient({self.label}, {self.base_url})"

    async def close(self) -> None:
        if self.realtime is not None:
            await self.realtime.close()
            self.realtime = None
        await self._http.aclose()

    # --- token

    async def _issue_token(self) -> tuple[str, float]:
        body = {
            "grant_type": "client_credentials",
            "appkey": self._app_key.reveal(),
            "secretkey": self._app_secret.reveal(),
        }
        data = (await self._send(TOKEN_PATH, "au10001", body, token=None, order=False)).body
        token = data.get("token")
        if not isinstance(token, str) or not token.strip():
            raise BrokerError(
                describe("au10001", "토큰이 없는 응답 (token missing in the answer)"),
                "kiwoom.bad_response",
            )
        try:
            expires = parse_expires(data.get("expires_dt"))
        except WireError:
            # Without an expiry we keep the token for a conservative hour.
            log.warning("%s: token answer has no readable expires_dt", self.label)
            expires = self._clock.time() + 3600
        return token.strip(), expires

    # --- requests

    async def call(
        self,
        api_id: str,
        path: str,
        body: Mapping[str, Any],
        *,
        order: bool = False,
        cont_yn: str = "",
        next_key: str = "",
    ) -> Reply:
        """One authenticated request. On a refused token: re-issue once, retry once."""
        for attempt in (1, 2):
            token = await self.tokens.get()
            try:
                return await self._send(
                    path, api_id, body, token=token, order=order, cont_yn=cont_yn, next_key=next_key
                )
            except TokenInvalid:
                self.tokens.invalidate(token)
                if attempt == 2:
                    raise
                self.retried_token += 1
                log.info("%s: %s refused the token; issuing a new one", self.label, api_id)
        raise AssertionError("unreachable")

    async def pages(
        self,
        api_id: str,
        path: str,
        body: Mapping[str, Any],
        list_key: str,
        *,
        max_pages: int = 100,
    ) -> tuple[list[dict[str, Any]], dict[str, Any]]:
        """Every row of a paged query, and the first page's body (for its totals)."""
        rows: list[dict[str, Any]] = []
        first: dict[str, Any] | None = None
        cont_yn, next_key = "", ""
        for _ in range(max_pages):
            reply = await self.call(api_id, path, body, cont_yn=cont_yn, next_key=next_key)
            if first is None:
                first = reply.body
            page = reply.body.get(list_key) or []
            if not isinstance(page, list):
                raise BrokerError(
                    describe(api_id, f"{list_key}가 목록이 아닙니다 (malformed list)"),
                    "kiwoom.bad_response",
                )
            rows.extend(r for r in page if isinstance(r, dict))
            if reply.cont_yn != "Y" or not reply.next_key:
                return rows, first
            cont_yn, next_key = "Y", reply.next_key
        raise BrokerError(
            describe(api_id, f"{max_pages}쪽이 넘는 연속조회 (more than {max_pages} pages)"),
            "kiwoom.too_many_pages",
        )

    async def _send(
        self,
        path: str,
        api_id: str,
        body: Mapping[str, Any],
        *,
        token: Secret | None,
        order: bool,
        cont_yn: str = "",
        next_key: str = "",
    ) -> Reply:
        headers = {"Content-Type": JSON_TYPE}
        if token is not None:
            headers["api-id"] = api_id
            headers["authorization"] = f"Bearer {token.reveal()}"
            if cont_yn:
                headers["cont-yn"] = cont_yn
            if next_key:
                headers["next-key"] = next_key
        timeout = self.timeouts.order if order else self.timeouts.query
        await self.pacer.acquire()
        self.requests += 1
        try:
            resp = await self._http.post(
                path,
                content=json.dumps(dict(body), ensure_ascii=False).encode(),
                headers=headers,
                timeout=httpx.Timeout(timeout, connect=self.timeouts.connect),
            )
        except (httpx.ConnectError, httpx.ConnectTimeout) as e:
            # The connection never opened: nothing reached Kiwoom.
            raise BrokerRejected(
                describe(
                    "unreachable",
                    f"키움 서버({self.base_url})에 연결할 수 없습니다; 요청은 전송되지 않았습니다 "
                    f"(connection failed: {type(e).__name__})",
                ),
                "kiwoom.unreachable",
            ) from None
        except httpx.PoolTimeout:
            raise BrokerNotProcessed(
                describe("busy", "연결 대기 시간 초과; 요청은 전송되지 않았습니다 (not sent)"),
                "kiwoom.pool_timeout",
                1.0,
            ) from None
        except (httpx.TimeoutException, httpx.TransportError) as e:
            text = describe(
                "no_answer",
                f"응답을 받지 못했습니다 ({type(e).__name__}); 처리 여부를 알 수 없습니다 "
                "(no answer; outcome unknown)",
            )
            if order:
                raise BrokerOutcomeUnknown(text, "kiwoom.no_answer") from None
            raise BrokerError(text, "kiwoom.no_answer") from None
        finally:
            self.pacer.release()
        data = _json_object(resp.content)
        err = classify(resp.status_code, data, order=order)
        if err is not None:
            if api_id == "au10001" and isinstance(err, TokenInvalid):
                # A token request has no token to refuse; 8005 here is a credentials problem.
                raise BrokerError(err.message, err.code)
            raise err
        assert data is not None
        return Reply(
            body=data,
            cont_yn=resp.headers.get("cont-yn", "").strip().upper(),
            next_key=resp.headers.get("next-key", "").strip(),
        )


def _json_object(content: bytes) -> dict[str, Any] | None:
    try:
        data = json.loads(content)
    except (ValueError, UnicodeDecodeError):
        return None
    return data if isinstance(data, dict) else None


class KiwoomWire:
    """The process's Kiwoom clients, one per (REST host, app key); see the module docstring."""

    def __init__(
        self,
        *,
        clock: Clock,
        store: TokenStore,
        options: ClientOptions,
        realtime: RealtimeOptions | None = None,
    ) -> None:
        self.clock = clock
        self.store = store
        self.options = options
        self.realtime_options = realtime or RealtimeOptions()
        self._clients: dict[str, KiwoomClient] = {}

    @staticmethod
    def _key(base_url: str, app_key: Secret, app_secret: Secret) -> str:
        # The secret is part of the key so a corrected secret is not shadowed by a stale client.
        raw = f"{base_url}\x00{app_key.reveal()}\x00{app_secret.reveal()}"
        return hashlib.sha256(raw.encode()).hexdigest()[:16]

    def client(
        self,
        env: str,
        app_key: Secret,
        app_secret: Secret,
        base_url: str | None = None,
        ws_url: str | None = None,
    ) -> KiwoomClient:
        rest_default, ws_default = default_urls(env)
        base = (base_url or rest_default).rstrip("/")
        ws = ws_url_for(base, ws_url) if (base_url or ws_url) else ws_default
        key = self._key(base, app_key, app_secret)
        client = self._clients.get(key)
        if client is None:
            client = KiwoomClient(
                base,
                ws,
                app_key,
                app_secret,
                store=self.store,
                clock=self.clock,
                options=self.options,
                label=f"kiwoom[{key[:6]}]",
            )
            self._clients[key] = client
        return client

    def realtime(self, client: KiwoomClient) -> RealtimeConnection:
        """The client's app-key-wide realtime session (one per key, created on first use)."""
        if client.realtime is None:
            client.realtime = RealtimeConnection(
                client.ws_url, client.tokens, label=client.label, options=self.realtime_options
            )
        return client.realtime

    @property
    def clients(self) -> list[KiwoomClient]:
        return list(self._clients.values())

    async def close(self) -> None:
        for client in list(self._clients.values()):
            with contextlib.suppress(Exception):
                await client.close()
        self._clients.clear()
