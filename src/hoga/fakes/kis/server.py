"""A local KIS-compatible server: REST and WebSocket on one loopback port.

``KisFake`` speaks the KIS Open API as ``shared/reference/kis.md`` describes it - tokens,
orders, paged reports, quotes, realtime trades/books and encrypted execution notices - over
real HTTP and WebSocket, against a seeded ``SimulatedMarket``. It enforces the documented
limits (per-key request rate with EGW00201 as HTTP 500, the token re-issue throttle EGW00133 as
HTTP 403, 41 registrations per session with OPSP0008, one session per app key with OPSP8996,
real keys refused on the mock host and vice versa) and counts what tests need to see
(requests, rate-limit rejections, token issues, the busiest one-second window per key).

Fault knobs (``KisFaults``) add latency, HTTP 500s, a connection dropped mid-reply, a reply cut
short, an order booked whose answer never comes, and WebSocket disconnects (``drop_sessions``):
one-shot counters for tests, and a seeded ``FaultPlan`` (``--fault``) for chaos runs. With a
journal (``--journal``) orders, executions and balances survive a restart; tokens and approval
keys do not (a restarted server asks for new ones). ``/__fake__/orders`` and
``/__fake__/accounts`` show the fake's own records (``fakes/admin.py``).

Where kis.md has no fact (the wrong-account code, the missing-field code), the fake picks a
plausible one and says so in its message.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections import Counter, deque
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from starlette.applications import Starlette

from hoga.domain import krx
from hoga.domain.clock import KST, Clock, SystemClock
from hoga.domain.market import Listing, Tick
from hoga.domain.portfolio import Position
from hoga.fakes import FakeAccount, FakeOptions
from hoga.fakes.admin import admin_routes
from hoga.fakes.common import (
    FaultKnobs,
    QuietDrops,
    Served,
    close_quietly,
    drive,
    open_books,
    read_accounts,
    serve,
)
from hoga.fakes.faults import FaultPlan
from hoga.fakes.journal import Journal
from hoga.fakes.kis import market as kis_market
from hoga.fakes.kis.exchange import Exchange, FakeAccountState, FakeOrder
from hoga.fakes.kis.rest import KisRestApi
from hoga.fakes.kis.ws import KisWsApi, WsSession
from hoga.fakes.master import generate_master
from hoga.marketdata.feeds.simulator import SimulatedMarket
from hoga.marketdata.universe import Universe, bundled_universe

log = logging.getLogger(__name__)

DEFAULT_PAGES = {
    "real": {"balance": 50, "ccld": 100, "psbl": 50},
    "mock": {"balance": 20, "ccld": 15, "psbl": 50},
}


@dataclass
class KisFakeAccount:
    """An account the fake knows; ``env`` None means the server's own environment."""

    account_no: str
    app_key: str
    app_secret: str
    cash: int = 100_000_000
    hts_id: str = "hogauser"
    env: str | None = None
    name: str = "홍길동"
    holdings: dict[str, tuple[int, int]] = field(default_factory=dict)


@dataclass
class KisFaults(FaultKnobs):
    """Faults to inject; the ``*_next`` counters count down as they fire.

    ``http500_next`` hits the next requests of any kind, ``http500_orders_next`` only order
    requests (both before anything is booked); ``drop_next``, ``truncate_next`` and
    ``accept_then_timeout`` hit order requests *after* the order is booked. ``plan`` injects
    the same four faults by rate (``hoga.fakes.faults``).
    """

    http500_next: int = 0
    http500_orders_next: int = 0
    drop_next: int = 0
    truncate_next: int = 0
    accept_then_timeout: int = 0


@dataclass
class AppKey:
    """What the fake knows of one app key: its secret, environment, HTS ids, request window
    and current token."""

    app_key: str
    app_secret: str
    env: str
    hts_ids: set[str] = field(default_factory=set)
    window: deque[float] = field(default_factory=deque)
    token: str | None = None
    token_issued: float = 0.0
    token_expires: float = 0.0
    last_issue: float | None = None


class KisFake:
    """See the module docstring. ``start()`` returns the base URL; ``ws_url`` the socket's."""

    def __init__(
        self,
        *,
        env: str = "mock",
        accounts: list[KisFakeAccount] | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        seed: int = 1,
        clock: Clock | None = None,
        market_mode: str = "demo",
        ticks_per_second: float = 50.0,
        drive: bool = False,
        rate: float | None = None,
        token_interval: float = 60.0,
        approval_interval: float = 1.0,
        token_ttl: int = 86400,
        ping_interval: float = 10.0,
        page_sizes: dict[str, int] | None = None,
        max_registrations: int = 41,
        faults: KisFaults | None = None,
        commission_rate: Decimal = krx.DEFAULT_COMMISSION_RATE,
        journal: Path | str | None = None,
    ) -> None:
        if env not in ("real", "mock"):
            raise ValueError("env must be real or mock")
        self.env = env
        self.host = host
        self.port = port
        self.clock: Clock = clock or SystemClock()
        self.universe = Universe(bundled_universe())
        self.market = SimulatedMarket(
            self.universe,
            seed=seed,
            clock=self.clock,
            mode="calendar" if market_mode == "calendar" else "demo",
        )
        self.exchange = Exchange(self.market, self.clock, env=env)
        # The whole generated master is known (and served); a symbol beyond the bundle
        # starts trading the first time someone asks for it.
        self.master = generate_master()
        self.listings = kis_market.listing_index(self.master)
        self.universe = Universe([x.instrument() for x in self.master])
        self.market.set_catalog(self.universe.get)
        self.flow = kis_market.TradeFlow(
            lambda s: x.listed_shares if (x := self.listings.get(s)) else 0,
            lambda ts: datetime.fromtimestamp(ts, KST).strftime("%Y%m%d"),
        )
        self.market.add_listener(self.flow.on_tick)
        self.market.add_listener(self.exchange.on_tick)
        self.rest = KisRestApi(self)
        self.ws = KisWsApi(self)
        self.exchange.listeners.append(self.ws.on_execution)
        self.ticks_per_second = ticks_per_second
        self.drive = drive
        self.rate = rate if rate is not None else (18.0 if env == "real" else 1.0)
        self.token_interval = token_interval
        # KIS issues one WebSocket approval key per second per app key (kis.md §6).
        self.approval_interval = approval_interval
        self.last_approval: dict[str, float] = {}
        self.approvals_throttled = 0
        self.token_ttl = token_ttl
        self.ping_interval = ping_interval
        self.page_sizes = {**DEFAULT_PAGES[env], **(page_sizes or {})}
        self.max_registrations = max_registrations
        self.faults = faults or KisFaults()
        self.commission_rate = commission_rate
        self.rng = random.Random(seed)
        self.keys: dict[str, AppKey] = {}
        self.approvals: dict[str, str] = {}
        self.sessions: set[WsSession] = set()
        self.by_key: dict[str, WsSession] = {}
        self.hanging: set[asyncio.Future[None]] = set()
        self._served: Served | None = None
        self._driver: asyncio.Task[None] | None = None
        # counters
        self.requests: Counter[str] = Counter()
        self.paths: Counter[str] = Counter()
        self.rate_limited: Counter[str] = Counter()
        self.max_in_window: Counter[str] = Counter()
        self.token_issues: Counter[str] = Counter()
        self.token_throttled: Counter[str] = Counter()
        self.ws_refused: Counter[str] = Counter()
        self.ws_sessions_opened = 0
        self.pongs = 0
        self.approvals_issued = 0
        self.journal = Journal(journal) if journal is not None else None
        self.restored_orders = 0
        for a in accounts or []:
            self.add_account(a)

    # ------------------------------------------------------------------ set-up

    @classmethod
    def from_options(cls, options: FakeOptions, **kw: Any) -> KisFake:
        accounts = [_from_fake_account(a) for a in options.accounts]
        if options.accounts_file is not None:
            accounts += load_accounts_file(options.accounts_file)
        faults = KisFaults(
            latency=options.latency,
            error_rate=options.error_rate,
            plan=FaultPlan.parse(options.faults, seed=options.seed),
        )
        if options.rate is not None:
            kw.setdefault("rate", options.rate)
        kw.setdefault("market_mode", "demo" if options.always_open else "calendar")
        if options.token_interval is not None:
            kw.setdefault("token_interval", options.token_interval)
        return cls(
            env=options.env,
            accounts=accounts,
            host=options.host,
            port=options.port,
            seed=options.seed,
            ticks_per_second=options.ticks_per_second,
            faults=faults,
            journal=options.journal,
            **kw,
        )

    def add_account(self, a: KisFakeAccount) -> None:
        digits = a.account_no.replace("-", "")
        if len(digits) != 10 or not digits.isdigit():
            raise ValueError(f"account {a.account_no!r}: KIS accounts look like 50123456-01")
        env = a.env or self.env
        key = self.keys.get(a.app_key)
        if key is None:
            key = self.keys[a.app_key] = AppKey(a.app_key, a.app_secret, env)
        elif key.app_secret != a.app_secret or key.env != env:
            raise ValueError("one app key cannot have two secrets or environments")
        key.hts_ids.add(a.hts_id)
        if env != self.env:
            return  # known to KIS, but not on this host: refused at the door
        state = FakeAccountState(
            account=digits,
            app_key=a.app_key,
            hts_id=a.hts_id,
            name=a.name,
            cash=a.cash,
            commission_rate=self.commission_rate,
        )
        for symbol, (qty, avg) in a.holdings.items():
            state.positions[symbol] = Position(qty, qty * avg, 0)
        self.exchange.add_account(state)

    def listing(self, symbol: str) -> Listing | None:
        """The generated master's row for ``symbol``."""
        return self.listings.get(symbol)

    def account(self, account_no: str) -> FakeAccountState:
        return self.exchange.accounts[account_no.replace("-", "")]

    def orders(self, account_no: str) -> list[FakeOrder]:
        digits = account_no.replace("-", "")
        return [o for o in self.exchange.orders.values() if o.account == digits]

    # ------------------------------------------------------------------ lifecycle

    def app(self) -> Starlette:
        return Starlette(
            routes=[
                *self.rest.routes(),
                *self.ws.routes(),
                *admin_routes(self),
                *kis_market.master_routes(self),
                *self.rest.uapi_routes(),
                kis_market.fallback_route(self),
            ]
        )

    async def start(self) -> str:
        self.restored_orders = await open_books(self.journal, self.exchange)
        served = await serve(QuietDrops(self.app()), self.host, self.port, name="KIS fake", grace=1)
        self._served = served
        self.port = served.port
        if self.drive:
            interval = max(0.01, min(0.2, 1.0 / self.ticks_per_second))
            self._driver = asyncio.get_running_loop().create_task(
                drive(self.pump, self.ticks_per_second, interval), name="kis-fake-market"
            )
        return self.base_url

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://{self.host}:{self.port}"

    async def stop(self) -> None:
        if self._driver is not None:
            self._driver.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._driver
            self._driver = None
        for fut in list(self.hanging):
            if not fut.done():
                fut.set_result(None)
        for sess in list(self.sessions):
            sess.end()
            await close_quietly(sess.ws, 1001)
        if self._served is not None:
            self._served.server.should_exit = True
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._served.task, 5)
        self._served = None
        if self.journal is not None:
            self.journal.close()

    async def serve_forever(self) -> None:
        """Run until interrupted (the ``hoga fake-broker kis`` command)."""
        url = await self.start()
        log.info(
            "KIS fake (%s) on %s - REST %s, WebSocket %s/tryitout; %d account(s); journal %s "
            "(%d order(s) restored); faults: %s",
            self.env,
            self.host,
            url,
            self.ws_url,
            len(self.exchange.accounts),
            self.journal.path if self.journal is not None else "none",
            self.restored_orders,
            self.faults.plan.describe(),
        )
        assert self._served is not None
        try:
            await self._served.task
        finally:
            await self.stop()

    # ------------------------------------------------------------------ market

    def pump(self, n: int) -> list[Tick]:
        """Trade the simulated market ``n`` times; push frames to subscribed sessions."""
        ticks = [self.market.step() for _ in range(n)]
        self.exchange.advance()
        if self.sessions:
            self.ws.push_ticks(ticks)
        return ticks

    # ------------------------------------------------------------------ faults and test hooks

    def drop_sessions(self, app_key: str | None = None) -> int:
        """Cut WebSocket sessions (all, or one key's) as a network failure would."""
        n = 0
        for sess in list(self.sessions):
            if app_key is None or sess.app_key == app_key:
                sess.end()
                self.ws.forget(sess)
                asyncio.get_running_loop().create_task(close_quietly(sess.ws, 1011))
                n += 1
        return n

    def expire_tokens(self) -> None:
        """Every issued token is now expired (as after a day; the issue throttle resets too)."""
        for key in self.keys.values():
            if key.token is not None:
                key.token_expires = self.clock.time() - 1
                key.last_issue = None

    def session_registrations(self, app_key: str) -> int:
        sess = self.by_key.get(app_key)
        return len(sess.regs) if sess is not None else 0

    @property
    def open_sessions(self) -> int:
        return len(self.by_key)

    # ------------------------------------------------------------------ own records

    def admin_orders(self) -> list[dict[str, Any]]:
        """Every order number booked (``fakes/admin.py`` describes the fields)."""
        out = []
        for o in sorted(self.exchange.orders.values(), key=lambda o: o.odno):
            out.append(
                {
                    "account": o.account,
                    "order_no": str(o.odno),
                    "orig_order_no": str(o.orig_odno) if o.orig_odno else None,
                    "kind": "cancel" if o.is_cancel else "modify" if o.orig_odno else "new",
                    "symbol": o.symbol,
                    "side": "sell" if o.side == "01" else "buy",
                    "type": "market" if o.dvsn == "01" else "limit",
                    "qty": o.qty,
                    "price": o.price,
                    "filled": o.filled,
                    "filled_amount": o.filled_amount,
                    "remaining": 0 if o.is_cancel else o.remaining,
                    "day": o.day.isoformat(),
                    "ts": o.ts,
                }
            )
        return out

    def admin_accounts(self) -> list[dict[str, Any]]:
        out = []
        for acct in self.exchange.accounts.values():
            out.append(
                {
                    "account": acct.account,
                    "cash": acct.cash,
                    "orderable": acct.cash - self.exchange.reserved_cash(acct),
                    "positions": {
                        s: {"qty": p.qty, "cost": p.cost}
                        for s, p in sorted(acct.positions.items())
                        if p.qty
                    },
                }
            )
        return out

    def admin_faults(self) -> dict[str, Any]:
        return {"plan": self.faults.plan.view(), "restored_orders": self.restored_orders}


def _from_fake_account(a: FakeAccount) -> KisFakeAccount:
    return KisFakeAccount(a.account_no, a.app_key, a.app_secret, a.cash, a.hts_id)


def load_accounts_file(path: Path) -> list[KisFakeAccount]:
    """Accounts from JSON or TOML (``fakes.common.read_accounts``); each entry: account_no,
    app_key, app_secret, optional cash, hts_id, env, name and holdings (symbol -> [qty, avg])."""
    out = []
    for item in read_accounts(path, ("account_no", "app_key", "app_secret")):
        holdings = {str(s): (int(v[0]), int(v[1])) for s, v in (item.get("holdings") or {}).items()}
        out.append(
            KisFakeAccount(
                account_no=str(item["account_no"]),
                app_key=str(item["app_key"]),
                app_secret=str(item["app_secret"]),
                cash=int(item.get("cash", 100_000_000)),
                hts_id=str(item.get("hts_id", "hogauser")),
                env=item.get("env"),
                name=str(item.get("name", "홍길동")),
                holdings=holdings,
            )
        )
    return out
