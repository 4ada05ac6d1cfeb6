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
import logging
import random
from collections import defaultdict, deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import uvicorn
from starlette.applications import Starlette

from hoga.domain.clock import Clock, SystemClock
from hoga.domain.market import Tick
from hoga.domain.ratelimit import SlidingWindow
from hoga.domain.secret import mask
from hoga.fakes import FakeAccount, FakeOptions
from hoga.fakes.admin import admin_routes
from hoga.fakes.common import (
    FaultKnobs,
    QuietDrops,
    drive,
    open_books,
    read_accounts,
    serve,
)
from hoga.fakes.faults import FaultPlan
from hoga.fakes.journal import Journal
from hoga.fakes.kiwoom.exchange import FakeBook, FakeExchange
from hoga.fakes.kiwoom.rest import FAULT_KINDS, KiwoomRestApi, Token, by_no, order_view
from hoga.fakes.kiwoom.ws import KiwoomWsApi, WsSession
from hoga.fakes.master import generate_master
from hoga.marketdata.feeds.simulator import SimulatedMarket
from hoga.marketdata.universe import Universe, bundled_universe

log = logging.getLogger(__name__)


@dataclass
class KiwoomFaults(FaultKnobs):
    """Faults and protocol variants; tests change them while the fake runs."""

    auth_envelope: str = "embedded"  # "embedded": return_code 3 + [8005:...]; "direct": 8005
    throttle_envelope: str = "429"  # "429": HTTP 429 + return_code 5; "200": HTTP 200 + 5
    push_executions: bool = True
    ping_interval: float = 10.0
    heartbeat_timeout: float = 60.0
    hold_seconds: float = 120.0  # how long accept-then-timeout keeps the answer back
    login_timeout: float = 10.0


@dataclass
class _Fault:
    kind: str
    api_ids: frozenset[str] | None
    remaining: int


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


def load_accounts_file(path: Path) -> list[tuple[FakeAccount, str | None]]:
    """Accounts from JSON or TOML (``fakes.common.read_accounts``); each entry: account_no,
    app_key, app_secret, optional cash, hts_id, env."""
    out: list[tuple[FakeAccount, str | None]] = []
    for e in read_accounts(path, ("account_no", "app_key", "app_secret")):
        acct = FakeAccount(
            account_no=str(e["account_no"]),
            app_key=str(e["app_key"]),
            app_secret=str(e["app_secret"]),
            cash=int(e.get("cash", 100_000_000)),
            hts_id=str(e.get("hts_id", "hogauser")),
        )
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
        self.rest = KiwoomRestApi(self)
        self.ws = KiwoomWsApi(self)
        self.exchange.listeners.append(self.ws.on_execution)
        self.exchange.balance_listeners.append(self.ws.on_balance)
        self.market.add_listener(self.ws.on_tick)
        self.stats: dict[str, KeyStats] = defaultdict(KeyStats)
        self.requests = 0
        self.rng = random.Random(o.seed)
        self.one_shots: list[_Fault] = []
        self.limits: dict[str, SlidingWindow] = {}
        self.tokens: dict[str, Token] = {}
        self.current: dict[str, str] = {}
        self.sessions: dict[str, WsSession] = {}
        self.release = asyncio.Event()
        self._server: uvicorn.Server | None = None
        self._task: asyncio.Task[None] | None = None
        self._driver: asyncio.Task[None] | None = None
        self._port = o.port
        for acct in o.accounts:
            self.add_account(acct)
        if o.accounts_file is not None:
            for acct, env in load_accounts_file(o.accounts_file):
                self.add_account(acct, env=env)
        self.app = Starlette(routes=[*self.ws.routes(), *self.rest.routes(), *admin_routes(self)])

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
        self.one_shots.append(_Fault(kind, frozenset(api_ids) if api_ids else None, count))

    def invalidate_tokens(self, app_key: str | None = None) -> None:
        """Every current token (of one key) stops working, as on expiry."""
        for tok in self.tokens.values():
            if app_key is None or tok.app_key == app_key:
                tok.revoked = True

    async def drop_ws(self, app_key: str | None = None) -> int:
        """Disconnect WebSocket sessions (of one key) abruptly; returns how many."""
        n = 0
        for key, session in list(self.sessions.items()):
            if app_key is None or key == app_key:
                session.end(1011)
                n += 1
        return n

    def ws_session(self, app_key: str) -> WsSession | None:
        return self.sessions.get(app_key)

    def registrations(self, app_key: str) -> dict[str, set[str]]:
        """type -> items registered by the key's current WebSocket session."""
        session = self.sessions.get(app_key)
        return {} if session is None else {k: set(v) for k, v in session.index.items()}

    def rate_limit_rejections(self, app_key: str) -> int:
        return self.stats[app_key].rate_limited

    def current_token(self, app_key: str) -> str | None:
        return self.current.get(app_key)

    # ------------------------------------------------------------------ own records

    def admin_orders(self) -> list[dict[str, Any]]:
        """Every order number booked, earlier days' first (``fakes/admin.py`` has the fields)."""
        self.exchange.roll()
        today = sorted(self.exchange.orders.values(), key=by_no)
        return [order_view(o) for o in [*self.exchange.history, *today]]

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
        self.restored_orders = await open_books(self.journal, self.exchange)
        self.release = asyncio.Event()
        served = await serve(
            QuietDrops(self.app),
            self.options.host,
            self.options.port,
            name="Kiwoom fake",
            grace=2,
        )
        self._server, self._task, self._port = served.server, served.task, served.port
        if self.drive_market:
            tps = max(0.1, self.options.ticks_per_second)
            self._driver = asyncio.get_running_loop().create_task(
                drive(self.pump, tps, max(0.005, min(0.1, 1.0 / tps))), name="kiwoom-fake-market"
            )
        return self.base_url

    async def wait_closed(self) -> None:
        if self._task is not None:
            await self._task

    async def stop(self) -> None:
        self.release.set()
        if self._driver is not None:
            self._driver.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._driver
            self._driver = None
        for session in list(self.sessions.values()):
            session.end(1001)
        if self._server is not None:
            self._server.should_exit = True
        if self._task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self.journal is not None:
            self.journal.close()


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
