"""A Kiwoom-compatible server: REST and WebSocket on one loopback port.

It speaks the 2025 REST API as kiwoom.md section A (and its summary, section C) describes it:

* ``POST /oauth2/token`` (``au10001``) and ``/oauth2/revoke`` (``au10002``); one token per app
  key - issuing a new one invalidates the old (observed behaviour, A3); tokens carry
  ``expires_dt`` in KST;
* ``POST /api/dostk/{ordr,acnt,stkinfo}`` routed by path **and** ``api-id`` header (1501 /
  1504 / 1505 when they do not fit), ``authorization: Bearer``, ``return_code``/``return_msg``
  in every body, ``cont-yn``/``next-key`` continuation in *response headers* with small pages;
* values as strings - signed prices, zero-padded amounts, ``A``-prefixed balance codes;
* ``/api/dostk/websocket``: LOGIN -> PING (must be echoed unchanged, else ``SYSTEM R10002``)
  -> REG/REMOVE acks -> REAL frames: ``00``/``04`` for the key's account whatever the items,
  ``0B``/``0D`` for registered items; one session per app key (a new LOGIN sends ``SYSTEM
  R10001`` to the old session and closes it);
* limits: per-key request rate (default 5 per second, strict sliding window) answered with
  1700 in either observed envelope (HTTP 429 + ``return_code 5``, or HTTP 200 + ``return_code
  5``); real/mock key mismatch (8030) and token mismatch (8031); token errors in either
  observed envelope (``return_code 3`` + ``[8005:...]``, or ``return_code 8005``).

Fault knobs: latency, a share of HTTP 500s (seeded), and one-shot faults injected per api-id
(``inject``): HTTP 500 before or after processing, a connection dropped before or after
processing, accept-then-timeout (the order is booked, the answer never comes), truncated or
malformed JSON, a forced 1700 or 8005; ``drop_ws`` disconnects WebSocket sessions; and
``faults.push_executions = False`` silences type 00/04 frames (so only reports tell the truth).
``faults.plan`` (``--fault``, ``hoga.fakes.faults``) injects 500-before-booking, drop, truncate
and book-but-never-answer into order requests by a seeded rate. Counters (``stats``) let tests
see requests, rate-limit rejections and tokens per key.

With a journal (``--journal``) orders, executions and balances survive a restart and the day's
order numbers continue; tokens do not (a restarted server refuses the old ones with 8005).
``/__fake__/orders`` and ``/__fake__/accounts`` show the fake's own records (``fakes/admin.py``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import secrets
import socket
import tomllib
from collections import defaultdict, deque
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from hoga.domain import krx
from hoga.domain.clock import Clock, SystemClock
from hoga.domain.market import Tick
from hoga.domain.orders import Side
from hoga.domain.ratelimit import SlidingWindow
from hoga.domain.secret import mask
from hoga.fakes import FakeAccount, FakeOptions
from hoga.fakes.admin import admin_routes
from hoga.fakes.faults import FaultPlan
from hoga.fakes.journal import Journal, restore_from
from hoga.fakes.kiwoom import market as kiwoom_market
from hoga.fakes.kiwoom.exchange import FakeBook, FakeExchange, FakeOrder, Refusal, Values
from hoga.fakes.kiwoom.formats import change, hms, padded, rate, signed, ymdhms
from hoga.fakes.master import generate_master
from hoga.marketdata.feeds.simulator import SimulatedMarket
from hoga.marketdata.universe import Universe, bundled_universe

log = logging.getLogger(__name__)

ORDER: Final = "/api/dostk/ordr"
ACCOUNT: Final = "/api/dostk/acnt"
STOCK_INFO: Final = "/api/dostk/stkinfo"
API_PATHS: Final = {
    "kt10000": ORDER,
    "kt10001": ORDER,
    "kt10002": ORDER,
    "kt10003": ORDER,
    "kt00001": ACCOUNT,
    "kt00018": ACCOUNT,
    "ka10075": ACCOUNT,
    "ka10076": ACCOUNT,
    "ka00001": ACCOUNT,
    "ka10001": STOCK_INFO,
    **kiwoom_market.PATHS,
}
ORDER_APIS: Final = frozenset({"kt10000", "kt10001", "kt10002", "kt10003"})
REAL_TYPES: Final = frozenset({"00", "04", "0A", "0B", "0C", "0D", "0E", "0H", "0J"})
ACCOUNT_TYPES: Final = frozenset({"00", "04"})
TYPE_NAMES: Final = {"00": "주문체결", "04": "잔고", "0B": "주식체결", "0D": "주식호가잔량"}
FAULT_KINDS: Final = frozenset(
    {
        "http500",
        "http500_after",
        "drop_before",
        "drop",
        "timeout",
        "truncated",
        "malformed",
        "throttle",
        "token_invalid",
    }
)
_PRE: Final = frozenset({"http500", "drop_before", "throttle", "token_invalid"})
_POST: Final = frozenset({"http500_after", "drop", "timeout", "truncated", "malformed"})
_DROP_FLAG: Final = "kiwoom_fake_drop"
# The fault plan's after-booking faults, as this fake's one-shot kinds.
_PLANNED: Final = {"drop": "drop", "truncate": "truncated", "hang": "timeout"}


@dataclass
class KiwoomFaults:
    """Faults and protocol variants; tests change them while the fake runs."""

    latency: float = 0.0
    error_rate: float = 0.0
    auth_envelope: str = "embedded"  # "embedded": return_code 3 + [8005:...]; "direct": 8005
    throttle_envelope: str = "429"  # "429": HTTP 429 + return_code 5; "200": HTTP 200 + 5
    push_executions: bool = True
    ping_interval: float = 10.0
    heartbeat_timeout: float = 60.0
    hold_seconds: float = 120.0  # how long accept-then-timeout keeps the answer back
    login_timeout: float = 10.0
    plan: FaultPlan = field(default_factory=FaultPlan)


@dataclass
class _Fault:
    kind: str
    api_ids: frozenset[str] | None
    remaining: int


@dataclass
class _Token:
    value: str
    app_key: str
    env: str
    expires_at: float
    revoked: bool = False


@dataclass
class KeyStats:
    """What one app key did at the fake."""

    requests: int = 0
    rate_limited: int = 0
    forced_throttles: int = 0
    tokens_issued: int = 0
    ws_logins: int = 0
    takeovers: int = 0
    times: deque[float] = field(default_factory=lambda: deque(maxlen=10_000))
    api_ids: dict[str, int] = field(default_factory=lambda: defaultdict(int))

    def max_in_window(self, window: float = 1.0) -> int:
        """The most requests that arrived within any ``window`` seconds."""
        times = list(self.times)
        best, j = 0, 0
        for i, t in enumerate(times):
            while times[j] <= t - window:
                j += 1
            best = max(best, i - j + 1)
        return best


class _WsSession:
    def __init__(self, websocket: WebSocket) -> None:
        self.websocket = websocket
        self.app_key = ""
        self.out: asyncio.Queue[str | None] = asyncio.Queue()
        self.groups: dict[str, set[tuple[str, str]]] = {}
        self.index: dict[str, set[str]] = {}
        self.last_ping: dict[str, Any] | None = None
        self.ping_sent_at = 0.0
        self.pongs = 0
        self.bad_pongs = 0
        self.close_code: int | None = None

    def push(self, msg: dict[str, Any] | None) -> None:
        self.out.put_nowait(None if msg is None else json.dumps(msg, ensure_ascii=False))

    def reindex(self) -> None:
        index: dict[str, set[str]] = {}
        for regs in self.groups.values():
            for t, item in regs:
                index.setdefault(t, set()).add(item)
        self.index = index

    def wants(self, kind: str, item: str | None = None) -> bool:
        items = self.index.get(kind)
        if not items:
            return False
        return item is None or item in items

    @property
    def registrations(self) -> int:
        return sum(len(r) for r in self.groups.values())


class _DropAware:
    """Outermost ASGI layer: when a handler marked its request for a dropped connection, the
    socket is aborted before the response leaves, so the client sees the connection vanish."""

    def __init__(self, app: Starlette) -> None:
        self.app = app

    async def __call__(
        self,
        scope: MutableMapping[str, Any],
        receive: Callable[[], Awaitable[MutableMapping[str, Any]]],
        send: Callable[[MutableMapping[str, Any]], Awaitable[None]],
    ) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        state = scope.setdefault("state", {})

        async def guarded(message: MutableMapping[str, Any]) -> None:
            if state.get(_DROP_FLAG):
                if message["type"] == "http.response.start":
                    transport = getattr(getattr(send, "__self__", None), "transport", None)
                    if transport is not None:
                        transport.abort()
                        state[_DROP_FLAG] = "aborted"
                        # The server still "answers" into the dead socket, so it logs nothing.
                        await send(message)
                        return
                    # No transport to abort: cut the body short instead (still a broken answer).
                    headers = [(b"content-length", b"4096"), (b"content-type", b"text/plain")]
                    await send({"type": "http.response.start", "status": 200, "headers": headers})
                    state[_DROP_FLAG] = "partial"
                    return
                if state.get(_DROP_FLAG) == "aborted":
                    await send(message)
                elif message["type"] == "http.response.body":
                    await send({"type": "http.response.body", "body": b"{", "more_body": False})
                return
            await send(message)

        await self.app(scope, receive, guarded)


def load_accounts_file(path: Path) -> list[tuple[FakeAccount, str | None]]:
    """Accounts from JSON (``{"accounts": [...]}`` or a list) or TOML (``[[accounts]]``);
    each entry: account_no, app_key, app_secret, optional cash, hts_id, env."""
    text = path.read_text(encoding="utf-8")
    data: Any = tomllib.loads(text) if path.suffix.lower() == ".toml" else json.loads(text)
    entries = data.get("accounts", []) if isinstance(data, dict) else data
    if not isinstance(entries, list):
        raise ValueError(f"{path}: expected a list of accounts")
    out: list[tuple[FakeAccount, str | None]] = []
    for n, e in enumerate(entries, 1):
        if not isinstance(e, dict):
            raise ValueError(f"{path}: account #{n} is not a table")
        try:
            acct = FakeAccount(
                account_no=str(e["account_no"]),
                app_key=str(e["app_key"]),
                app_secret=str(e["app_secret"]),
                cash=int(e.get("cash", 100_000_000)),
                hts_id=str(e.get("hts_id", "hogauser")),
            )
        except KeyError as missing:
            raise ValueError(f"{path}: account #{n} has no {missing}") from None
        env = e.get("env")
        out.append((acct, str(env) if env else None))
    return out


class KiwoomFake:
    """The fake server; ``await start()`` returns its base URL. See the module docstring."""

    def __init__(
        self,
        options: FakeOptions | None = None,
        *,
        clock: Clock | None = None,
        drive_market: bool = False,
        page_size: int = 3,
        rate: float = 5.0,
        window: float = 1.0,
        token_ttl: float = 86400.0,
        max_registrations: int = 200,
        faults: KiwoomFaults | None = None,
        universe: Universe | None = None,
        journal: Path | str | None = None,
        market_mode: str = "demo",
    ) -> None:
        self.options = options or FakeOptions(broker="kiwoom")
        o = self.options
        self.env = o.env
        self.clock = clock or SystemClock()
        self.drive_market = drive_market
        self.page_size = max(1, page_size)
        self.rate = rate
        self.window = window
        self.token_ttl = token_ttl
        self.max_registrations = max_registrations
        self.faults = faults or KiwoomFaults(latency=o.latency, error_rate=o.error_rate)
        if o.faults:
            self.faults.plan = FaultPlan.parse(o.faults, seed=o.seed)
        journal = journal if journal is not None else o.journal
        self.journal = Journal(journal) if journal is not None else None
        self.restored_orders = 0
        self.universe = universe or Universe(bundled_universe())
        # Calendar mode: KRX/Nextrade sessions, auctions and off-hours order types apply.
        self.market = SimulatedMarket(
            self.universe,
            seed=o.seed,
            clock=self.clock,
            mode="calendar" if market_mode == "calendar" or not o.always_open else "demo",
        )
        self.exchange = FakeExchange(self.market, self.clock)
        # The generated master (ka10099); its symbols trade once someone asks for them.
        self.master = generate_master()
        known = {x.symbol: x.instrument() for x in self.master}
        known.update((i.symbol, i) for i in self.universe.instruments)  # a test's own wins
        self.universe = Universe(list(known.values()))
        self.market.set_catalog(self.universe.get)
        self.exchange.listeners.append(self._on_execution)
        self.exchange.balance_listeners.append(self._on_balance)
        self.market.add_listener(self._on_tick)
        self.stats: dict[str, KeyStats] = defaultdict(KeyStats)
        self.requests = 0
        self._rng = random.Random(o.seed)
        self._faults: list[_Fault] = []
        self._limits: dict[str, SlidingWindow] = {}
        self._tokens: dict[str, _Token] = {}
        self._current: dict[str, str] = {}
        self._ws: dict[str, _WsSession] = {}
        self._release = asyncio.Event()
        self._server: uvicorn.Server | None = None
        self._task: asyncio.Task[None] | None = None
        self._driver: asyncio.Task[None] | None = None
        self._port = o.port
        for acct in o.accounts:
            self.add_account(acct)
        if o.accounts_file is not None:
            for acct, env in load_accounts_file(o.accounts_file):
                self.add_account(acct, env=env)
        self.app = Starlette(
            routes=[
                WebSocketRoute("/api/dostk/websocket", self._websocket),
                Route("/oauth2/token", self._token, methods=["POST"]),
                Route("/oauth2/revoke", self._revoke, methods=["POST"]),
                Route("/api/dostk/{name}", self._api, methods=["POST"]),
                *admin_routes(self),
            ]
        )

    # ------------------------------------------------------------------ set-up and test API

    def add_account(self, account: FakeAccount, *, env: str | None = None) -> FakeBook:
        """Register an account; ``env`` (default: the fake's) says which domain its key is for."""
        return self.exchange.add_account(
            account.account_no, account.app_key, account.app_secret, env or self.env, account.cash
        )

    @property
    def base_url(self) -> str:
        return f"http://{self.options.host}:{self._port}"

    @property
    def ws_url(self) -> str:
        return f"ws://{self.options.host}:{self._port}/api/dostk/websocket"

    def pump(self, n: int = 1) -> list[Tick]:
        """Trade the simulated market ``n`` times now (orders match, frames go out); session
        moments the clock has passed (auctions, session ends) run first."""
        self.exchange.advance()
        return [self.market.step() for _ in range(n)]

    def inject(self, kind: str, *, api_ids: set[str] | None = None, count: int = 1) -> None:
        """Make the next ``count`` requests of ``api_ids`` (any if None) fail as ``kind``."""
        if kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault {kind!r}; one of {sorted(FAULT_KINDS)}")
        self._faults.append(_Fault(kind, frozenset(api_ids) if api_ids else None, count))

    def invalidate_tokens(self, app_key: str | None = None) -> None:
        """Every current token (of one key) stops working, as on expiry."""
        for tok in self._tokens.values():
            if app_key is None or tok.app_key == app_key:
                tok.revoked = True

    async def drop_ws(self, app_key: str | None = None) -> int:
        """Disconnect WebSocket sessions (of one key) abruptly; returns how many."""
        n = 0
        for key, session in list(self._ws.items()):
            if app_key is None or key == app_key:
                session.close_code = 1011
                session.push(None)
                n += 1
        return n

    def ws_session(self, app_key: str) -> _WsSession | None:
        return self._ws.get(app_key)

    def registrations(self, app_key: str) -> dict[str, set[str]]:
        """type -> items registered by the key's current WebSocket session."""
        session = self._ws.get(app_key)
        return {} if session is None else {k: set(v) for k, v in session.index.items()}

    def rate_limit_rejections(self, app_key: str) -> int:
        return self.stats[app_key].rate_limited

    def current_token(self, app_key: str) -> str | None:
        return self._current.get(app_key)

    # ------------------------------------------------------------------ own records

    def admin_orders(self) -> list[dict[str, Any]]:
        """Every order number booked, earlier days' first (``fakes/admin.py`` has the fields)."""
        self.exchange.roll()
        today = sorted(self.exchange.orders.values(), key=_by_no)
        return [_order_view(o) for o in [*self.exchange.history, *today]]

    def admin_accounts(self) -> list[dict[str, Any]]:
        return [
            {
                "account": b.account_no,
                "cash": b.cash,
                "orderable": self.exchange.orderable(b),
                "positions": {
                    s: {"qty": p.qty, "cost": p.cost}
                    for s, p in sorted(b.positions.items())
                    if p.qty
                },
            }
            for b in self.exchange.books.values()
        ]

    def admin_faults(self) -> dict[str, Any]:
        return {"plan": self.faults.plan.view(), "restored_orders": self.restored_orders}

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> str:
        # The KRX calendar (sell tax, settlement dates) takes seconds to build - half a minute
        # on a busy machine. Built lazily, the first sell fill would freeze the server that
        # long; built here, in a thread, before the first request.
        await asyncio.to_thread(krx.warm_calendar)
        if self.journal is not None and self.exchange.journal is None:
            # Books first, then the journal takes new records: a restart continues where the
            # last process stopped (the day's order numbers included).
            self.restored_orders = restore_from(self.journal, self.exchange.restore)
            self.exchange.journal = self.journal
            self.journal.open()
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        # Accepted connections inherit it; without it uvicorn on a passed-in socket answers
        # small requests ~40 ms late (Nagle against the client's delayed ACK).
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.bind((self.options.host, self.options.port))
        sock.listen(128)
        sock.setblocking(False)
        self._port = sock.getsockname()[1]
        config = uvicorn.Config(
            _DropAware(self.app),
            log_level="warning",
            lifespan="off",
            ws="websockets-sansio",
            access_log=False,
            timeout_graceful_shutdown=2,
        )
        self._server = uvicorn.Server(config)
        self._release = asyncio.Event()
        self._task = asyncio.get_running_loop().create_task(
            self._server.serve(sockets=[sock]), name="kiwoom-fake"
        )
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 10
        while not self._server.started:
            if self._task.done():
                self._task.result()
            if loop.time() > deadline:
                raise TimeoutError("the Kiwoom fake did not start")
            await asyncio.sleep(0.01)
        if self.drive_market:
            self._driver = loop.create_task(self._drive(), name="kiwoom-fake-market")
        return self.base_url

    async def wait_closed(self) -> None:
        if self._task is not None:
            await self._task

    async def stop(self) -> None:
        self._release.set()
        if self._driver is not None:
            self._driver.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._driver
            self._driver = None
        for session in list(self._ws.values()):
            session.close_code = 1001
            session.push(None)
        if self._server is not None:
            self._server.should_exit = True
        if self._task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self.journal is not None:
            self.journal.close()

    async def _drive(self) -> None:
        tps = max(0.1, self.options.ticks_per_second)
        loop = asyncio.get_running_loop()
        start, produced = loop.time(), 0
        interval = max(0.005, min(0.1, 1.0 / tps))
        while True:
            await asyncio.sleep(interval)
            due = int((loop.time() - start) * tps) - produced
            if due > 0:
                self.pump(min(due, int(tps) + 1))
                produced += due

    # ------------------------------------------------------------------ answers

    def _answer(
        self,
        body: dict[str, Any],
        api_id: str,
        *,
        status: int = 200,
        cont: str = "N",
        next_key: str = "",
    ) -> Response:
        return Response(
            json.dumps(body, ensure_ascii=False),
            status_code=status,
            media_type="application/json;charset=UTF-8",
            headers={"api-id": api_id, "cont-yn": cont, "next-key": next_key},
        )

    def _auth_error(self, code: str, text: str, api_id: str) -> Response:
        if self.faults.auth_envelope == "direct":
            body: dict[str, Any] = {"return_code": int(code), "return_msg": text}
        else:
            body = {"return_code": 3, "return_msg": f"인증에 실패했습니다[{code}:{text}]"}
        return self._answer(body, api_id)

    def _input_error(self, code: str, text: str, api_id: str) -> Response:
        return self._answer({"return_code": 2, "return_msg": f"{text}[{code}:{text}]"}, api_id)

    def _throttled(self, api_id: str) -> Response:
        body = {
            "return_code": 5,
            "return_msg": f"허용된 요청 개수를 초과하였습니다[1700:허용된 요청 개수를 초과하였습니다. API ID={api_id}]",
        }
        status = 429 if self.faults.throttle_envelope == "429" else 200
        return self._answer(body, api_id, status=status)

    def _take(self, kinds: frozenset[str], api_id: str) -> str | None:
        for fault in self._faults:
            if fault.kind in kinds and (fault.api_ids is None or api_id in fault.api_ids):
                fault.remaining -= 1
                if fault.remaining <= 0:
                    self._faults.remove(fault)
                return fault.kind
        return None

    def _admit(self, key: str, api_id: str, arrived: float) -> bool:
        """Count a request of ``key``; False if it is over the key's rate."""
        st = self.stats[key]
        st.requests += 1
        st.api_ids[api_id] += 1
        lim = self._limits.get(key)
        if lim is None:
            lim = (
                SlidingWindow(int(self.rate), self.window)
                if self.rate >= 1
                else SlidingWindow(1, self.window / self.rate)
            )
            self._limits[key] = lim
        if not lim.try_acquire(arrived):
            st.rate_limited += 1
            return False
        st.times.append(arrived)
        return True

    @staticmethod
    async def _json_body(request: Request) -> dict[str, Any] | None:
        try:
            data = json.loads(await request.body())
        except (ValueError, UnicodeDecodeError):
            return None
        return data if isinstance(data, dict) else None

    # ------------------------------------------------------------------ token endpoints

    async def _token(self, request: Request) -> Response:
        arrived = asyncio.get_running_loop().time()
        self.requests += 1
        api_id = "au10001"
        body = await self._json_body(request)
        if body is None:
            return self._input_error("1517", "입력 값 형식 오류입니다", api_id)
        grant = body.get("grant_type")
        if not grant:
            return self._auth_error("8011", "grant_type이 없습니다", api_id)
        if grant != "client_credentials":
            return self._auth_error("8012", "grant_type이 올바르지 않습니다", api_id)
        appkey, secretkey = body.get("appkey"), body.get("secretkey")
        if not appkey or not secretkey:
            return self._auth_error("8020", "appkey 또는 secretkey가 없습니다", api_id)
        book = self.exchange.by_key(str(appkey))
        if book is None:
            return self._auth_error("8001", "App Key와 Secret Key 검증에 실패했습니다", api_id)
        if not self._admit(book.app_key, api_id, arrived):
            return self._throttled(api_id)
        if not secrets.compare_digest(book.app_secret, str(secretkey)):
            return self._auth_error("8002", "App Key와 Secret Key 검증에 실패했습니다", api_id)
        if book.env != self.env:
            return self._auth_error(
                "8030", "실전/모의투자 구분이 일치하지 않습니다 (appkey)", api_id
            )
        if self.faults.latency:
            await asyncio.sleep(self.faults.latency)
        old = self._current.get(book.app_key)
        if old is not None and old in self._tokens:
            # One token per app key: the previous one stops working now (observed).
            self._tokens[old].revoked = True
        prefix = "R" if self.env == "real" else "M"
        value = prefix + secrets.token_urlsafe(48)
        expires = self.clock.time() + self.token_ttl
        self._tokens[value] = _Token(value, book.app_key, self.env, expires)
        self._current[book.app_key] = value
        self.stats[book.app_key].tokens_issued += 1
        return self._answer(
            {
                "expires_dt": ymdhms(expires),
                "token_type": "bearer",
                "token": value,
                "return_code": 0,
                "return_msg": "정상적으로 처리되었습니다",
            },
            api_id,
        )

    async def _revoke(self, request: Request) -> Response:
        api_id = "au10002"
        self.requests += 1
        body = await self._json_body(request) or {}
        tok = self._tokens.get(str(body.get("token") or ""))
        book = self.exchange.by_key(str(body.get("appkey") or ""))
        if book is None or not secrets.compare_digest(
            book.app_secret, str(body.get("secretkey") or "")
        ):
            return self._auth_error("8001", "App Key와 Secret Key 검증에 실패했습니다", api_id)
        if tok is None or tok.app_key != book.app_key:
            return self._auth_error("8015", "토큰 폐기에 실패했습니다", api_id)
        tok.revoked = True
        return self._answer({"return_code": 0, "return_msg": "정상적으로 처리되었습니다"}, api_id)

    def _token_of(self, header: str) -> _Token | tuple[str, str]:
        if not header.lower().startswith("bearer "):
            return ("1514", "authorization 헤더가 올바르지 않습니다")
        value = header[7:].strip()
        tok = self._tokens.get(value)
        if tok is None:
            other = "M" if self.env == "real" else "R"
            if value.startswith(other):
                return ("8031", "실전/모의투자 구분이 일치하지 않습니다 (token)")
            return ("8005", "Token이 유효하지 않습니다")
        if tok.revoked or tok.expires_at <= self.clock.time():
            return ("8005", "Token이 유효하지 않습니다")
        return tok

    # ------------------------------------------------------------------ the API

    async def _api(self, request: Request) -> Response:
        arrived = asyncio.get_running_loop().time()
        self.requests += 1
        path = request.url.path
        api_id = request.headers.get("api-id", "").strip()
        if not api_id:
            return self._input_error("1501", "API ID가 없습니다", api_id)
        if api_id not in API_PATHS:
            return self._input_error("1505", f"존재하지 않는 API ID입니다 ({api_id[:10]})", api_id)
        if API_PATHS[api_id] != path:
            return self._input_error("1504", "해당 URI에서 지원하지 않는 API ID입니다", api_id)
        tok = self._token_of(request.headers.get("authorization", ""))
        if isinstance(tok, tuple):
            code, text = tok
            if code.startswith("15"):
                return self._input_error(code, text, api_id)
            return self._auth_error(code, text, api_id)
        key = tok.app_key
        if not self._admit(key, api_id, arrived):
            return self._throttled(api_id)
        body = await self._json_body(request)
        if body is None:
            return self._input_error("1517", "입력 값 형식 오류입니다", api_id)
        if self.faults.latency:
            await asyncio.sleep(self.faults.latency)
        pre = self._take(_PRE, api_id)
        if pre is None and api_id in ORDER_APIS and self.faults.plan.before() == "http500":
            pre = "http500"
        if pre == "http500" or (
            self.faults.error_rate and self._rng.random() < self.faults.error_rate
        ):
            return Response("<html><body>500 Internal Server Error</body></html>", 500)
        if pre == "drop_before":
            setattr(request.state, _DROP_FLAG, True)
            return Response(b"", 200)
        if pre == "throttle":
            self.stats[key].forced_throttles += 1
            return self._throttled(api_id)
        if pre == "token_invalid":
            tok.revoked = True
            return self._auth_error("8005", "Token이 유효하지 않습니다", api_id)
        book = self.exchange.by_key(key)
        if book is None:
            return self._auth_error("8001", "App Key와 Secret Key 검증에 실패했습니다", api_id)
        booked = False
        try:
            answer = self._dispatch(api_id, book, body, request.headers)
            booked = api_id in ORDER_APIS
        except Refusal as e:
            answer = self._answer({"return_code": 2, "return_msg": e.return_msg}, api_id)
        post = self._take(_POST, api_id)
        if post is None and booked:
            post = _PLANNED.get(self.faults.plan.after() or "")
        if post is None:
            return answer
        if post == "http500_after":
            return Response("<html><body>500 Internal Server Error</body></html>", 500)
        if post == "drop":
            setattr(request.state, _DROP_FLAG, True)
            return answer
        if post == "timeout":
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._release.wait(), self.faults.hold_seconds)
            return answer
        raw = bytes(answer.body)
        if post == "truncated":
            return Response(raw[: max(1, len(raw) // 2)], 200, media_type="application/json")
        return Response(b"<html>502 Bad Gateway</html>", 200, media_type="text/html")

    def _dispatch(
        self, api_id: str, book: FakeBook, body: dict[str, Any], headers: Any
    ) -> Response:
        if api_id in ORDER_APIS:
            return self._order(api_id, book, body)
        if api_id in kiwoom_market.PATHS:
            return kiwoom_market.answer(self, api_id, book, body, headers)
        if api_id == "ka00001":
            return self._answer(
                {
                    "acctNo": book.account_no,
                    "return_code": 0,
                    "return_msg": "조회가 완료되었습니다",
                },
                api_id,
            )
        if api_id == "kt00001":
            return self._deposit(api_id, book)
        if api_id == "ka10001":
            return self._quote(api_id, body)
        if api_id == "kt00018":
            rows = self.exchange.holding_rows(book)
            return self._paged(api_id, "acnt_evlt_remn_indv_tot", rows, headers, self._totals(book))
        if api_id == "ka10075":
            rows = self.exchange.open_rows(book)
            if _field(body, "trde_tp") in ("1", "2"):
                word = "매도" if body["trde_tp"] == "1" else "매수"
                rows = [r for r in rows if word in r["io_tp_nm"]]
            if _field(body, "all_stk_tp") == "1":
                rows = [r for r in rows if r["stk_cd"] == _field(body, "stk_cd")]
            return self._paged(api_id, "oso", rows, headers, {})
        if api_id == "ka10076":
            rows = self.exchange.executed_rows(book)
            if _field(body, "sell_tp") in ("1", "2"):
                word = "매도" if body["sell_tp"] == "1" else "매수"
                rows = [r for r in rows if word in r["io_tp_nm"]]
            if _field(body, "qry_tp") == "1":
                rows = [r for r in rows if r["stk_cd"] == _field(body, "stk_cd")]
            return self._paged(api_id, "cntr", rows, headers, {})
        raise Refusal("1505", f"존재하지 않는 API ID입니다 ({api_id})", business=False)

    def _paged(
        self,
        api_id: str,
        list_key: str,
        rows: list[dict[str, str]],
        headers: Any,
        extra: dict[str, Any],
    ) -> Response:
        offset = 0
        if headers.get("cont-yn", "").upper() == "Y":
            key = headers.get("next-key", "")
            if not key.isdigit():
                raise Refusal("1517", "연속조회키가 올바르지 않습니다", business=False)
            offset = int(key)
        page = rows[offset : offset + self.page_size]
        more = offset + self.page_size < len(rows)
        body = {
            **extra,
            list_key: page,
            "return_code": 0,
            "return_msg": "조회가 완료되었습니다",
        }
        return self._answer(
            body,
            api_id,
            cont="Y" if more else "N",
            next_key=str(offset + self.page_size) if more else "",
        )

    def _totals(self, book: FakeBook) -> dict[str, str]:
        cost = sum(p.cost for p in book.positions.values())
        value = 0
        for symbol, pos in book.positions.items():
            tick = self.market.last(symbol)
            value += pos.qty * (tick.price if tick else 0)
        return {
            "tot_pur_amt": padded(cost, 15),
            "tot_evlt_amt": padded(value, 15),
            "tot_evlt_pl": padded(value - cost, 15),
            "tot_prft_rt": rate(value - cost, cost),
            "prsm_dpst_aset_amt": padded(book.cash + value, 15),
            "tot_loan_amt": padded(0, 15),
        }

    def _deposit(self, api_id: str, book: FakeBook) -> Response:
        orderable = self.exchange.orderable(book)
        return self._answer(
            {
                "entr": padded(book.cash, 15),
                "profa_ch": padded(0, 15),
                "ord_alow_amt": padded(orderable, 15),
                "pymn_alow_amt": padded(orderable, 15),
                "d1_entra": padded(book.cash, 15),
                "d2_entra": padded(book.cash, 15),
                "return_code": 0,
                "return_msg": "조회가 완료되었습니다",
            },
            api_id,
        )

    def _quote(self, api_id: str, body: dict[str, Any]) -> Response:
        symbol = _field(body, "stk_cd")
        inst = self.market.instrument(symbol)
        if inst is None:
            raise Refusal("1902", "종목정보가 없습니다", business=False)
        tick = self.market.last(symbol)
        base = inst.base_price
        price = tick.price if tick else base
        lower, upper = krx.price_limits(base, inst.kind)
        return self._answer(
            {
                "stk_cd": symbol,
                "stk_nm": inst.name,
                "cur_prc": signed(price, base),
                "pred_pre": change(price - base),
                "flu_rt": rate(price - base, base),
                "open_pric": signed(price, base),
                "high_pric": signed(price, base),
                "low_pric": signed(price, base),
                "upl_pric": signed(upper, base),
                "lst_pric": signed(lower, base),
                "base_pric": str(base),
                "trde_qty": str(tick.cum_volume if tick else 0),
                "return_code": 0,
                "return_msg": "조회가 완료되었습니다",
            },
            api_id,
        )

    def _order(self, api_id: str, book: FakeBook, body: dict[str, Any]) -> Response:
        required = {
            "kt10000": ("dmst_stex_tp", "stk_cd", "ord_qty", "trde_tp"),
            "kt10001": ("dmst_stex_tp", "stk_cd", "ord_qty", "trde_tp"),
            "kt10002": ("dmst_stex_tp", "orig_ord_no", "stk_cd", "mdfy_qty", "mdfy_uv"),
            "kt10003": ("dmst_stex_tp", "orig_ord_no", "stk_cd", "cncl_qty"),
        }[api_id]
        for name in required:
            if not _field(body, name):
                raise Refusal(
                    "1511", f"필수 입력 값에 값이 존재하지 않습니다 ({name})", business=False
                )
        venue = _field(body, "dmst_stex_tp")
        if venue not in ("KRX", "NXT", "SOR") or (venue != "KRX" and book.env != "real"):
            raise Refusal(
                "1901", "시장 코드값이 존재하지 않습니다 (모의투자는 KRX만)", business=False
            )
        symbol = _field(body, "stk_cd")
        if not krx.is_valid_symbol(symbol):
            raise Refusal("1902", "종목정보가 없습니다", business=False)
        if api_id in ("kt10000", "kt10001"):
            side = Side.BUY if api_id == "kt10000" else Side.SELL
            order = self.exchange.place(
                book,
                side,
                symbol,
                _number(body, "ord_qty"),
                _number(body, "ord_uv") if _field(body, "ord_uv") else 0,
                _field(body, "trde_tp"),
                venue,
            )
            word = "매수" if side == Side.BUY else "매도"
            return self._answer(
                {
                    "ord_no": order.ord_no,
                    "dmst_stex_tp": venue,
                    "return_code": 0,
                    "return_msg": f"{word}주문이 완료되었습니다.",
                },
                api_id,
            )
        orig = _field(body, "orig_ord_no")
        target = self.exchange.orders.get(orig)
        if target is not None and target.account_no == book.account_no and target.venue != venue:
            # A modify or cancel must go to the market that holds the order.
            raise Refusal("1901", f"원주문의 거래소({target.venue})와 다릅니다 ({venue})")
        if api_id == "kt10002":
            order = self.exchange.modify(
                book, orig, symbol, _number(body, "mdfy_qty"), _number(body, "mdfy_uv")
            )
            return self._answer(
                {
                    "ord_no": order.ord_no,
                    "base_orig_ord_no": orig,
                    "mdfy_qty": padded(order.qty, 12),
                    "dmst_stex_tp": "KRX",
                    "return_code": 0,
                    "return_msg": "정정주문이 완료되었습니다.",
                },
                api_id,
            )
        order = self.exchange.cancel(book, orig, symbol, _number(body, "cncl_qty"))
        return self._answer(
            {
                "ord_no": order.ord_no,
                "base_orig_ord_no": orig,
                "cncl_qty": padded(order.qty, 12),
                "return_code": 0,
                "return_msg": "취소주문이 완료되었습니다.",
            },
            api_id,
        )

    # ------------------------------------------------------------------ realtime pushes

    def _session_of_account(self, account_no: str) -> _WsSession | None:
        book = self.exchange.books.get(account_no)
        return None if book is None else self._ws.get(book.app_key)

    def _on_execution(self, account_no: str, values: Values) -> None:
        session = self._session_of_account(account_no)
        if session is None or not self.faults.push_executions or not session.wants("00"):
            return
        session.push(_real("00", "", values))

    def _on_balance(self, account_no: str, values: Values) -> None:
        session = self._session_of_account(account_no)
        if session is None or not self.faults.push_executions or not session.wants("04"):
            return
        session.push(_real("04", "", values))

    def _on_tick(self, tick: Tick) -> None:
        if not self._ws:
            return
        trade: dict[str, Any] | None = None
        book: dict[str, Any] | None = None
        for session in self._ws.values():
            if session.wants("0B", tick.symbol):
                trade = trade or _real("0B", tick.symbol, _trade_values(tick))
                session.push(trade)
            if session.wants("0D", tick.symbol):
                book = book or _real("0D", tick.symbol, self._book_values(tick))
                session.push(book)

    def _book_values(self, tick: Tick) -> Values:
        inst = self.market.instrument(tick.symbol)
        kind = inst.kind if inst else "stock"
        base = tick.base_price
        v: Values = {"21": hms(tick.ts), "121": "0", "125": "0"}
        ask, bid = tick.ask, tick.bid
        tot_ask = tot_bid = 0
        for level in range(10):
            a_size = tick.ask_size if level == 0 else 100 * (level + 1)
            b_size = tick.bid_size if level == 0 else 100 * (level + 1)
            v[str(41 + level)] = signed(ask, base)
            v[str(61 + level)] = str(a_size)
            v[str(51 + level)] = signed(bid, base)
            v[str(71 + level)] = str(b_size)
            tot_ask += a_size
            tot_bid += b_size
            ask = krx.step_price(ask, 1, kind)
            bid = max(1, krx.step_price(bid, -1, kind))
        v["121"], v["125"] = str(tot_ask), str(tot_bid)
        return v

    # ------------------------------------------------------------------ WebSocket

    async def _websocket(self, websocket: WebSocket) -> None:
        await websocket.accept()
        session = _WsSession(websocket)
        writer = asyncio.get_running_loop().create_task(self._writer(session))
        pinger: asyncio.Task[None] | None = None
        try:
            try:
                first = await asyncio.wait_for(websocket.receive_text(), self.faults.login_timeout)
            except TimeoutError:
                session.push(
                    {"trnm": "SYSTEM", "code": "R10004", "message": "로그인 요청이 없습니다"}
                )
                session.push(None)
                return
            msg = _loads(first)
            if msg is None or msg.get("trnm") != "LOGIN":
                session.push(
                    {"trnm": "SYSTEM", "code": "R10004", "message": "로그인 요청이 없습니다"}
                )
                session.push(None)
                return
            tok = self._token_of(f"Bearer {msg.get('token') or ''}")
            if isinstance(tok, tuple):
                code, text = tok
                session.push(
                    {
                        "trnm": "LOGIN",
                        "return_code": 1,
                        "return_msg": f"인증에 실패했습니다[{code}:{text}] CODE={code}",
                    }
                )
                session.push(None)
                return
            key = tok.app_key
            session.app_key = key
            old = self._ws.get(key)
            if old is not None:
                old.push(
                    {
                        "trnm": "SYSTEM",
                        "code": "R10001",
                        "message": "동일한 App key로 접속이 되었습니다. 기존 세션을 종료합니다.",
                    }
                )
                old.close_code = 1000
                old.push(None)
                self.stats[key].takeovers += 1
            self._ws[key] = session
            self.stats[key].ws_logins += 1
            session.push({"trnm": "LOGIN", "return_code": 0, "return_msg": "", "sor_yn": "N"})
            pinger = asyncio.get_running_loop().create_task(self._pinger(session))
            while True:
                text = await websocket.receive_text()
                self._on_ws_message(session, text)
        except (WebSocketDisconnect, RuntimeError):
            pass
        finally:
            if session.app_key and self._ws.get(session.app_key) is session:
                del self._ws[session.app_key]
            if pinger is not None:
                pinger.cancel()
            session.push(None)
            with contextlib.suppress(Exception):
                await asyncio.wait_for(writer, 3)

    async def _writer(self, session: _WsSession) -> None:
        ws = session.websocket
        try:
            while True:
                text = await session.out.get()
                if text is None:
                    with contextlib.suppress(Exception):
                        await ws.close(code=session.close_code or 1000)
                    return
                await ws.send_text(text)
        except Exception:  # the client went away; the reader notices too
            return

    async def _pinger(self, session: _WsSession) -> None:
        loop = asyncio.get_running_loop()
        seq = 0
        while True:
            await asyncio.sleep(self.faults.ping_interval)
            if (
                session.last_ping is not None
                and loop.time() - session.ping_sent_at > self.faults.heartbeat_timeout
            ):
                session.push(
                    {"trnm": "SYSTEM", "code": "R10002", "message": "Heartbeat 응답이 없습니다"}
                )
                session.push(None)
                return
            seq += 1
            ping = {"trnm": "PING", "seq": str(seq)}
            if session.last_ping is None:
                session.ping_sent_at = loop.time()
            session.last_ping = ping
            session.push(ping)

    def _on_ws_message(self, session: _WsSession, text: str) -> None:
        msg = _loads(text)
        if msg is None:
            return
        trnm = msg.get("trnm")
        if trnm == "PING":
            if msg == session.last_ping:
                session.pongs += 1
                session.last_ping = None
            else:
                session.bad_pongs += 1
            return
        if trnm in ("REG", "REMOVE"):
            session.push(self._register(session, trnm, msg))

    def _register(self, session: _WsSession, trnm: str, msg: dict[str, Any]) -> dict[str, Any]:
        def refuse(text: str) -> dict[str, Any]:
            return {"trnm": trnm, "return_code": 1, "return_msg": text}

        grp = str(msg.get("grp_no") or "")
        data = msg.get("data")
        if not grp or len(grp) > 4 or not isinstance(data, list):
            return refuse("grp_no 또는 data가 올바르지 않습니다")
        regs: set[tuple[str, str]] = set()
        for entry in data:
            if not isinstance(entry, dict):
                return refuse("data 형식이 올바르지 않습니다")
            items, types = entry.get("item"), entry.get("type")
            if not isinstance(items, list) or not isinstance(types, list):
                return refuse("item/type은 목록이어야 합니다")
            for t in types:
                if t not in REAL_TYPES:
                    return refuse(f"실시간 항목이 올바르지 않습니다 ({str(t)[:4]})")
                for item in items:
                    item = str(item)
                    if t not in ACCOUNT_TYPES and item not in self.universe:
                        return refuse(f"종목코드가 올바르지 않습니다 ({item[:12]})")
                    regs.add((t, "" if t in ACCOUNT_TYPES else item))
        if trnm == "REMOVE":
            session.groups.get(grp, set()).difference_update(regs)
            session.reindex()
            return {"trnm": trnm, "return_code": 0, "return_msg": ""}
        current = session.groups.get(grp, set())
        if str(msg.get("refresh", "1")) == "0":
            current = set()
        merged = current | regs
        others = sum(len(r) for g, r in session.groups.items() if g != grp)
        if others + len(merged) > self.max_registrations:
            return refuse(f"등록 종목수 초과 (최대 {self.max_registrations}건)")
        session.groups[grp] = merged
        session.reindex()
        return {"trnm": trnm, "return_code": 0, "return_msg": ""}


def _by_no(order: FakeOrder) -> str:
    return order.ord_no


def _order_view(o: FakeOrder) -> dict[str, Any]:
    return {
        "account": o.account_no,
        "order_no": o.ord_no,
        "orig_order_no": o.orig or None,
        "kind": o.kind,
        "symbol": o.symbol,
        "side": o.side.value,
        "type": "market" if o.market else "limit",
        "qty": o.qty,
        "price": o.price,
        "filled": o.filled,
        "filled_amount": o.amount,
        "remaining": o.remaining if o.kind != "cancel" else 0,
        "day": o.day.isoformat(),
        "ts": o.ts,
    }


def _field(body: dict[str, Any], name: str) -> str:
    value = body.get(name)
    if value is not None and not isinstance(value, str):
        # Kiwoom takes every field as a string: a JSON number is a format error.
        raise Refusal("1517", f"입력 값 형식 오류입니다 ({name})", business=False)
    return value.strip() if isinstance(value, str) else ""


def _number(body: dict[str, Any], name: str) -> int:
    text = _field(body, name)
    if not text.isdigit():
        raise Refusal("1517", f"입력 값 형식 오류입니다 ({name})", business=False)
    return int(text)


def _loads(text: str) -> dict[str, Any] | None:
    try:
        msg = json.loads(text)
    except ValueError:
        return None
    return msg if isinstance(msg, dict) else None


def _real(kind: str, item: str, values: Values) -> dict[str, Any]:
    return {
        "trnm": "REAL",
        "data": [
            {"type": kind, "name": TYPE_NAMES.get(kind, kind), "item": item, "values": values}
        ],
    }


def _trade_values(tick: Tick) -> Values:
    base = tick.base_price
    aggressor = "+" if tick.price >= tick.ask and tick.ask else "-"
    return {
        "20": hms(tick.ts),
        "10": signed(tick.price, base),
        "11": change(tick.price - base),
        "12": rate(tick.price - base, base),
        "27": signed(tick.ask, base),
        "28": signed(tick.bid, base),
        "15": f"{aggressor}{tick.volume}",
        "13": str(tick.cum_volume),
        "14": str(tick.cum_volume * tick.price // 1_000_000),
        "16": signed(tick.price, base),
        "17": signed(tick.price, base),
        "18": signed(tick.price, base),
        "228": "100.00",
        "290": "2",
        "9081": "1",
    }


def describe_accounts(fake: KiwoomFake) -> list[str]:
    """One line per account for the command's banner - app keys masked, secrets never shown."""
    return [
        f"  account {b.account_no} ({b.env}) app key {mask(b.app_key)} cash {b.cash:,}"
        for b in fake.exchange.books.values()
    ]


async def run(options: FakeOptions) -> None:
    """Serve until interrupted (the ``hoga fake-broker kiwoom`` command)."""
    extra: dict[str, Any] = {} if options.rate is None else {"rate": options.rate}
    fake = KiwoomFake(options, drive_market=True, **extra)
    url = await fake.start()
    print(f"Kiwoom fake ({fake.env}) REST {url}  WebSocket {fake.ws_url}", flush=True)
    journal = fake.journal.path if fake.journal is not None else "none"
    print(
        f"  journal: {journal} ({fake.restored_orders} order(s) restored); "
        f"faults: {fake.faults.plan.describe()}",
        flush=True,
    )
    for line in describe_accounts(fake):
        print(line, flush=True)
    print(
        f"  limits: {fake.rate:g} requests/s per app key; one token and one WebSocket per key",
        flush=True,
    )
    try:
        await fake.wait_closed()
    finally:
        await fake.stop()
