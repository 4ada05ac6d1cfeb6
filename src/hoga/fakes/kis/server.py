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
import json
import logging
import random
import secrets
import string
import tomllib
from collections import Counter, deque
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route, WebSocketRoute
from starlette.types import Receive, Scope, Send
from starlette.websockets import WebSocket, WebSocketDisconnect

from hoga.domain import krx
from hoga.domain.clock import KST, Clock, SystemClock
from hoga.domain.market import Listing, Tick
from hoga.domain.portfolio import Position
from hoga.fakes import FakeAccount, FakeOptions
from hoga.fakes.admin import admin_routes
from hoga.fakes.faults import FaultPlan
from hoga.fakes.journal import Journal, restore_from
from hoga.fakes.kis import frames
from hoga.fakes.kis import market as kis_market
from hoga.fakes.kis.exchange import Exchange, Execution, FakeAccountState, FakeOrder, Refusal
from hoga.fakes.master import generate_master
from hoga.marketdata.feeds.simulator import SimulatedMarket
from hoga.marketdata.universe import Universe, bundled_universe

log = logging.getLogger(__name__)

_T = "/uapi/domestic-stock/v1/trading"
_Q = "/uapi/domestic-stock/v1/quotations"
# path -> env -> accepted tr_ids (new ids and the older ones [PK] still uses, kis.md §4/§5)
TR_TABLE: dict[str, dict[str, set[str]]] = {
    f"{_T}/order-cash": {
        "real": {"TTTC0012U", "TTTC0011U", "TTTC0802U", "TTTC0801U"},
        "mock": {"VTTC0012U", "VTTC0011U", "VTTC0802U", "VTTC0801U"},
    },
    f"{_T}/order-rvsecncl": {
        "real": {"TTTC0013U", "TTTC0803U"},
        "mock": {"VTTC0013U", "VTTC0803U"},
    },
    f"{_T}/inquire-balance": {"real": {"TTTC8434R"}, "mock": {"VTTC8434R"}},
    f"{_T}/inquire-daily-ccld": {
        "real": {"TTTC0081R", "CTSC9215R", "TTTC8001R"},
        "mock": {"VTTC0081R", "VTSC9215R", "VTTC8001R"},
    },
    f"{_T}/inquire-psbl-rvsecncl": {"real": {"TTTC0084R", "TTTC8036R"}, "mock": set()},
    f"{_Q}/inquire-price": {"real": {"FHKST01010100"}, "mock": {"FHKST01010100"}},
}
TR_TABLE.update(kis_market.TR_TABLE)
SELL_TR = {"TTTC0011U", "TTTC0801U", "VTTC0011U", "VTTC0801U"}
NOTICE_TR = {"real": "H0STCNI0", "mock": "H0STCNI9"}
MARKET_TRS = ("H0STCNT0", "H0STASP0")
DEFAULT_PAGES = {
    "real": {"balance": 50, "ccld": 100, "psbl": 50},
    "mock": {"balance": 20, "ccld": 15, "psbl": 50},
}


DVSN_NAMES = {
    "00": "지정가",
    "01": "시장가",
    "02": "조건부지정가",
    "03": "최유리지정가",
    "04": "최우선지정가",
    "05": "장전 시간외",
    "06": "장후 시간외",
    "07": "시간외 단일가",
    "11": "IOC지정가",
    "12": "FOK지정가",
    "13": "IOC시장가",
    "14": "FOK시장가",
    "15": "IOC최유리",
    "16": "FOK최유리",
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
class KisFaults:
    """Faults to inject; the ``*_next`` counters count down as they fire.

    ``http500_next`` hits the next requests of any kind, ``http500_orders_next`` only order
    requests (both before anything is booked); ``drop_next``, ``truncate_next`` and
    ``accept_then_timeout`` hit order requests *after* the order is booked. ``plan`` injects
    the same four faults by rate (``hoga.fakes.faults``).
    """

    latency: float = 0.0
    error_rate: float = 0.0
    http500_next: int = 0
    http500_orders_next: int = 0
    drop_next: int = 0
    truncate_next: int = 0
    accept_then_timeout: int = 0
    plan: FaultPlan = field(default_factory=FaultPlan)


@dataclass
class _Key:
    app_key: str
    app_secret: str
    env: str
    hts_ids: set[str] = field(default_factory=set)
    window: deque[float] = field(default_factory=deque)
    token: str | None = None
    token_issued: float = 0.0
    token_expires: float = 0.0
    last_issue: float | None = None


class _WsSession:
    def __init__(self, fake: KisFake, ws: WebSocket) -> None:
        self.fake = fake
        self.ws = ws
        self.app_key: str | None = None
        self.regs: set[tuple[str, str]] = set()
        alphabet = string.ascii_letters + string.digits
        self.aes_key = "".join(secrets.choice(alphabet) for _ in range(32))
        self.aes_iv = "".join(secrets.choice(alphabet) for _ in range(16))
        self.out: asyncio.Queue[str | None] = asyncio.Queue()
        self.closed = False

    def send(self, text: str) -> None:
        if not self.closed:
            self.out.put_nowait(text)

    async def writer(self) -> None:
        while True:
            text = await self.out.get()
            if text is None:
                return
            await self.ws.send_text(text)

    async def pinger(self) -> None:
        while True:
            await asyncio.sleep(self.fake.ping_interval)
            self.send(frames.pingpong(self.fake.clock.now()))


def _pad(odno: int | None) -> str:
    return "" if odno is None else f"{odno:010d}"


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
        self._listings = kis_market.listing_index(self.master)
        self.universe = Universe([x.instrument() for x in self.master])
        self.market.set_catalog(self.universe.get)
        self.flow = kis_market.TradeFlow(
            lambda s: x.listed_shares if (x := self._listings.get(s)) else 0,
            lambda ts: datetime.fromtimestamp(ts, KST).strftime("%Y%m%d"),
        )
        self.market.add_listener(self.flow.on_tick)
        self.market.add_listener(self.exchange.on_tick)
        self.exchange.listeners.append(self._on_execution)
        self.ticks_per_second = ticks_per_second
        self.drive = drive
        self.rate = rate if rate is not None else (18.0 if env == "real" else 1.0)
        self.token_interval = token_interval
        # KIS issues one WebSocket approval key per second per app key (kis.md §6).
        self.approval_interval = approval_interval
        self._last_approval: dict[str, float] = {}
        self.approvals_throttled = 0
        self.token_ttl = token_ttl
        self.ping_interval = ping_interval
        self.page_sizes = {**DEFAULT_PAGES[env], **(page_sizes or {})}
        self.max_registrations = max_registrations
        self.faults = faults or KisFaults()
        self.commission_rate = commission_rate
        self._rng = random.Random(seed)
        self._keys: dict[str, _Key] = {}
        self._approvals: dict[str, str] = {}
        self._sessions: set[_WsSession] = set()
        self._by_key: dict[str, _WsSession] = {}
        self._hanging: set[asyncio.Future[None]] = set()
        self._server: uvicorn.Server | None = None
        self._serve_task: asyncio.Task[None] | None = None
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
        key = self._keys.get(a.app_key)
        if key is None:
            key = self._keys[a.app_key] = _Key(a.app_key, a.app_secret, env)
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
        return self._listings.get(symbol)

    def account(self, account_no: str) -> FakeAccountState:
        return self.exchange.accounts[account_no.replace("-", "")]

    def orders(self, account_no: str) -> list[FakeOrder]:
        digits = account_no.replace("-", "")
        return [o for o in self.exchange.orders.values() if o.account == digits]

    # ------------------------------------------------------------------ lifecycle

    def app(self) -> Starlette:
        routes = [
            Route("/oauth2/tokenP", self._token, methods=["POST"]),
            Route("/oauth2/Approval", self._approval, methods=["POST"]),
            Route("/oauth2/revokeP", self._revoke, methods=["POST"]),
            Route("/uapi/hashkey", self._hashkey, methods=["POST"]),
            WebSocketRoute("/tryitout", self._ws),
            *admin_routes(self),
            *kis_market.master_routes(self),
        ]
        for path in TR_TABLE:
            routes.append(Route(path, self._uapi, methods=["GET", "POST"]))
        routes.append(kis_market.fallback_route(self))
        return Starlette(routes=routes)

    async def start(self) -> str:
        # The KRX calendar (sell tax, settlement dates) takes seconds to build - half a minute
        # on a busy machine. Built lazily, the first sell fill would freeze the server that
        # long; built here, in a thread, before the first request.
        await asyncio.to_thread(krx.warm_calendar)
        if self.journal is not None and self.exchange.journal is None:
            # Books first, then the journal takes new records: a restart continues where the
            # last process stopped (order numbers included).
            self.restored_orders = restore_from(self.journal, self.exchange.restore)
            self.exchange.journal = self.journal
            self.journal.open()
        config = uvicorn.Config(
            _QuietDrops(self.app()),
            host=self.host,
            port=self.port,
            log_level="warning",
            lifespan="off",
            ws="websockets-sansio",
            access_log=False,
            timeout_graceful_shutdown=1,
        )
        server = uvicorn.Server(config)
        self._server = server
        self._serve_task = asyncio.get_running_loop().create_task(server.serve())
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 10
        while not server.started:
            if self._serve_task.done():
                self._serve_task.result()
                raise OSError("the KIS fake did not start")
            if loop.time() > deadline:
                raise OSError("the KIS fake did not start within 10 s")
            await asyncio.sleep(0.01)
        self.port = server.servers[0].sockets[0].getsockname()[1]
        if self.drive:
            self._driver = loop.create_task(self._drive(), name="kis-fake-market")
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
        for fut in list(self._hanging):
            if not fut.done():
                fut.set_result(None)
        for sess in list(self._sessions):
            sess.closed = True
            sess.out.put_nowait(None)
            with contextlib.suppress(Exception):
                await sess.ws.close(1001)
        if self._server is not None and self._serve_task is not None:
            self._server.should_exit = True
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._serve_task, 5)
        self._server = None
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
        assert self._serve_task is not None
        try:
            await self._serve_task
        finally:
            await self.stop()

    async def _drive(self) -> None:
        interval = max(0.01, min(0.2, 1.0 / self.ticks_per_second))
        loop = asyncio.get_running_loop()
        start, produced = loop.time(), 0
        while True:
            await asyncio.sleep(interval)
            due = int((loop.time() - start) * self.ticks_per_second) - produced
            if due > 0:
                self.pump(min(due, int(self.ticks_per_second) + 1))
                produced += due

    # ------------------------------------------------------------------ market

    def pump(self, n: int) -> list[Tick]:
        """Trade the simulated market ``n`` times; push frames to subscribed sessions."""
        ticks = [self.market.step() for _ in range(n)]
        self.exchange.advance()
        if not self._sessions:
            return ticks
        by_symbol: dict[str, list[Tick]] = {}
        for tick in ticks:
            by_symbol.setdefault(tick.symbol, []).append(tick)
        for sess in list(self._sessions):
            if sess.closed or not sess.regs:
                continue
            for symbol, group in by_symbol.items():
                inst = self.universe.get(symbol)
                kind = inst.kind if inst else "stock"
                if ("H0STCNT0", symbol) in sess.regs:
                    stats = self.exchange.day_stats.get(symbol) or {
                        "open": group[0].price,
                        "high": group[0].price,
                        "low": group[0].price,
                        "amount": 0,
                    }
                    recs = [
                        {**frames.trade_record(t, kind, stats), **self.flow.fields(t)}
                        for t in group
                    ]
                    sess.send(frames.frame("H0STCNT0", recs, frames.TRADE_LAYOUT))
                if ("H0STASP0", symbol) in sess.regs:
                    sess.send(
                        frames.frame(
                            "H0STASP0", [frames.book_record(group[-1], kind)], frames.BOOK_LAYOUT
                        )
                    )
        return ticks

    # ------------------------------------------------------------------ notices

    def _on_execution(self, ex: Execution) -> None:
        tr = NOTICE_TR[self.env]
        acct, o = ex.account, ex.order
        t = datetime.fromtimestamp(ex.ts or self.clock.time(), KST)
        inst = self.universe.get(o.symbol)
        rec = {
            "CUST_ID": acct.hts_id,
            "ACNT_NO": acct.account,
            "ODER_NO": _pad(o.odno),
            "OODER_NO": _pad(o.orig_odno),
            "SELN_BYOV_CLS": o.side,
            "RCTF_CLS": {"cancel": "2", "modify": "1"}.get(ex.kind, "0"),
            "ODER_KIND": o.dvsn,
            "ODER_COND": "0",
            "STCK_SHRN_ISCD": o.symbol,
            "CNTG_QTY": str(ex.qty),
            "CNTG_UNPR": str(ex.price),
            "STCK_CNTG_HOUR": t.strftime("%H%M%S"),
            "RFUS_YN": "1" if ex.kind == "reject" else "0",
            "CNTG_YN": "2" if ex.kind == "fill" else "1",
            "ACPT_YN": {"accept": "1", "ioc_cancel": "3"}.get(ex.kind, "2"),
            "BRNC_NO": o.org_no,
            "ODER_QTY": str(o.qty),
            "ACNT_NAME": acct.name,
            "ORD_COND_PRC": "0",
            "ORD_EXG_GB": {"NXT": "2", "SOR": "3"}.get(o.venue, "1"),
            "POPUP_YN": "Y",
            "FILLER": "",
            "CRDT_CLS": "10",
            "CRDT_LOAN_DATE": "",
            "CNTG_ISNM40": inst.name if inst else "",
            "ODER_PRC": str(o.price),
        }
        for sess in list(self._sessions):
            if (tr, acct.hts_id) in sess.regs and sess.app_key is not None:
                key = self._keys.get(sess.app_key)
                if key is not None and acct.hts_id in key.hts_ids:
                    sess.send(
                        frames.frame(
                            tr, [rec], frames.NOTICE_LAYOUT, key_iv=(sess.aes_key, sess.aes_iv)
                        )
                    )

    # ------------------------------------------------------------------ faults and test hooks

    def drop_sessions(self, app_key: str | None = None) -> int:
        """Cut WebSocket sessions (all, or one key's) as a network failure would."""
        n = 0
        for sess in list(self._sessions):
            if app_key is None or sess.app_key == app_key:
                sess.closed = True
                sess.out.put_nowait(None)
                self._forget(sess)
                asyncio.get_running_loop().create_task(_close_quietly(sess.ws, 1011))
                n += 1
        return n

    def expire_tokens(self) -> None:
        """Every issued token is now expired (as after a day; the issue throttle resets too)."""
        for key in self._keys.values():
            if key.token is not None:
                key.token_expires = self.clock.time() - 1
                key.last_issue = None

    def session_registrations(self, app_key: str) -> int:
        sess = self._by_key.get(app_key)
        return len(sess.regs) if sess is not None else 0

    @property
    def open_sessions(self) -> int:
        return len(self._by_key)

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

    # ------------------------------------------------------------------ auth endpoints

    async def _json_body(self, request: Request) -> dict[str, Any] | None:
        try:
            body = json.loads(await request.body() or b"{}")
        except ValueError:
            return None
        return body if isinstance(body, dict) else None

    def _auth_error(self, code: str, desc: str, status: int = 403) -> JSONResponse:
        return JSONResponse({"error_code": code, "error_description": desc}, status_code=status)

    def _check_credentials(self, body: dict[str, Any], secret_field: str) -> _Key | JSONResponse:
        key = self._keys.get(str(body.get("appkey") or ""))
        if key is None or key.env != self.env:
            # A real key on the mock host (or vice versa) is unknown here, as at KIS.
            return self._auth_error(wire_bad_key, "유효하지 않은 AppKey입니다.")
        if str(body.get(secret_field) or "") != key.app_secret:
            return self._auth_error("EGW00105", "유효하지 않은 AppSecret입니다.")
        return key

    async def _token(self, request: Request) -> Response:
        await self._latency()
        body = await self._json_body(request)
        if body is None or body.get("grant_type") != "client_credentials":
            return self._auth_error("EGW00002", "grant_type이 올바르지 않습니다.", 400)
        got = self._check_credentials(body, "appsecret")
        if isinstance(got, JSONResponse):
            return got
        key = got
        now = self.clock.time()
        if key.last_issue is not None and now - key.last_issue < self.token_interval:
            self.token_throttled[key.app_key] += 1
            return self._auth_error("EGW00133", "접근토큰 발급 잠시 후 다시 시도하세요(1분당 1회)")
        key.last_issue = now
        if key.token is None or key.token_expires <= now or now - key.token_issued > 6 * 3600:
            key.token = "eyJ" + secrets.token_urlsafe(96)
            key.token_issued = now
            key.token_expires = now + self.token_ttl
        self.token_issues[key.app_key] += 1
        expires = datetime.fromtimestamp(key.token_expires, KST)
        return JSONResponse(
            {
                "access_token": key.token,
                "token_type": "Bearer",
                "expires_in": int(key.token_expires - now),
                "access_token_token_expired": expires.strftime("%Y-%m-%d %H:%M:%S"),
            }
        )

    async def _approval(self, request: Request) -> Response:
        await self._latency()
        body = await self._json_body(request)
        if body is None:
            return self._auth_error("EGW00002", "요청 형식이 올바르지 않습니다.", 400)
        got = self._check_credentials(body, "secretkey")
        if isinstance(got, JSONResponse):
            return got
        now = self.clock.monotonic()
        last = self._last_approval.get(got.app_key)
        if last is not None and now - last < self.approval_interval:
            self.approvals_throttled += 1
            return self._gw("EGW00201", "초당 거래건수를 초과하였습니다.")
        self._last_approval[got.app_key] = now
        approval = secrets.token_hex(18)
        self._approvals[approval] = got.app_key
        self.approvals_issued += 1
        return JSONResponse({"approval_key": approval})

    async def _revoke(self, request: Request) -> Response:
        body = await self._json_body(request) or {}
        key = self._keys.get(str(body.get("appkey") or ""))
        if key is not None and body.get("token") == key.token:
            key.token = None
        return JSONResponse({"code": 200, "message": "접근토큰 폐기에 성공하였습니다"})

    async def _hashkey(self, request: Request) -> Response:
        import hashlib

        raw = await request.body()
        return JSONResponse({"HASH": hashlib.sha256(raw).hexdigest(), "JsonBody": raw.decode()})

    async def _latency(self) -> None:
        if self.faults.latency:
            await asyncio.sleep(self.faults.latency)

    # ------------------------------------------------------------------ /uapi

    def _gw(self, code: str, msg: str, status: int = 500) -> JSONResponse:
        return JSONResponse({"rt_cd": "1", "msg_cd": code, "msg1": msg}, status_code=status)

    def _biz(self, code: str, msg: str, rt_cd: str = "1") -> JSONResponse:
        return JSONResponse({"rt_cd": rt_cd, "msg_cd": code, "msg1": msg, "output": {}})

    def _admit(self, key: _Key) -> bool:
        loop_now = asyncio.get_running_loop().time()
        w = key.window
        while w and w[0] <= loop_now - 1.0:
            w.popleft()
        limit = int(self.rate) if self.rate >= 1 else 1
        window = 1.0 if self.rate >= 1 else 1.0 / self.rate
        while w and w[0] <= loop_now - window:
            w.popleft()
        if len(w) >= limit:
            self.rate_limited[key.app_key] += 1
            return False
        w.append(loop_now)
        self.max_in_window[key.app_key] = max(self.max_in_window[key.app_key], len(w))
        return True

    async def _uapi(self, request: Request) -> Response:
        path = request.url.path
        h = request.headers
        app_key = h.get("appkey", "")
        self.requests[app_key] += 1
        self.paths[path.rsplit("/", 1)[1]] += 1
        await self._latency()
        key = self._keys.get(app_key)
        if key is None or key.env != self.env:
            return self._gw("EGW00103", "유효하지 않은 AppKey입니다.")
        if h.get("appsecret", "") != key.app_secret:
            return self._gw("EGW00105", "유효하지 않은 AppSecret입니다.")
        if not self._admit(key):
            return self._gw("EGW00201", "초당 거래건수를 초과하였습니다.")
        auth = h.get("authorization", "")
        token = auth[7:] if auth.lower().startswith("bearer ") else ""
        if not token or token != key.token:
            return self._gw("EGW00121", "유효하지 않은 token 입니다.")
        if key.token_expires <= self.clock.time():
            return self._gw("EGW00123", "기간이 만료된 token 입니다.")
        f = self.faults
        if f.http500_next > 0:
            f.http500_next -= 1
            return PlainTextResponse("Internal Server Error", status_code=500)
        if f.error_rate and self._rng.random() < f.error_rate:
            return PlainTextResponse("Internal Server Error", status_code=500)
        tr_id = h.get("tr_id", "")
        allowed = TR_TABLE[path][self.env]
        if not allowed:
            return self._biz("OPSQ0002", "모의투자에서는 해당업무가 제공되지 않습니다.")
        if tr_id not in allowed:
            return self._gw(
                "EGW00202", f"GW라우팅 중 오류가 발생했습니다. (tr_id {tr_id or '없음'})"
            )
        if request.method == "POST":
            body = await self._json_body(request)
            if body is None:
                return self._biz(
                    "OPSQ2001", "ERROR : INPUT JSON PARSE (fake: 요청 본문이 JSON이 아닙니다)"
                )
            params: dict[str, Any] = body
        else:
            params = dict(request.query_params)
        if request.method == "POST" and (f.http500_orders_next > 0 or f.plan.before()):
            # Orders only: refused before anything is booked.
            f.http500_orders_next = max(0, f.http500_orders_next - 1)
            return PlainTextResponse("Internal Server Error", status_code=500)
        quote = kis_market.QUOTE_HANDLERS.get(path)
        if quote is not None:
            return quote(self, params)
        if path.endswith("/inquire-price"):
            return self._price(params)
        acct = self.exchange.accounts.get(
            f"{params.get('CANO', '')}{params.get('ACNT_PRDT_CD', '')}"
        )
        if acct is None or acct.app_key != key.app_key:
            return self._biz(
                "OPSQ2000", "ERROR : INPUT INVALID_CHECK_ACNO (fake: 계좌번호를 확인하세요)"
            )
        account_handler = kis_market.ACCOUNT_HANDLERS.get(path)
        if account_handler is not None:
            return account_handler(self, acct, params, h.get("tr_cont", ""))
        name = path.rsplit("/", 1)[1]
        if name == "order-cash":
            return await self._order_cash(request, acct, tr_id, params)
        if name == "order-rvsecncl":
            return await self._order_rvsecncl(request, acct, params)
        cont = h.get("tr_cont", "")
        if name == "inquire-balance":
            return self._balance(acct, params, cont)
        if name == "inquire-daily-ccld":
            return self._daily_ccld(acct, params, cont)
        return self._psbl(acct, params, cont)

    # --- orders

    def _fields(
        self, params: dict[str, Any], names: tuple[str, ...]
    ) -> dict[str, str] | JSONResponse:
        out = {}
        for n in names:
            v = params.get(n)
            if v is None:
                return self._biz("OPSQ2001", f"ERROR : INPUT FIELD NOT FOUND [{n}] (fake wording)")
            if not isinstance(v, str):
                return self._biz(
                    "OPSQ2001", f"ERROR : INPUT FIELD TYPE [{n}] - 숫자도 문자열로 보내야 합니다"
                )
            out[n] = v
        return out

    async def _order_cash(
        self, request: Request, acct: FakeAccountState, tr_id: str, params: dict[str, Any]
    ) -> Response:
        got = self._fields(params, ("PDNO", "ORD_DVSN", "ORD_QTY", "ORD_UNPR"))
        if isinstance(got, JSONResponse):
            return got
        venue = str(params.get("EXCG_ID_DVSN_CD") or "KRX")
        if venue not in ("KRX", "NXT", "SOR"):
            return self._biz("APBK0918", f"거래소구분코드를 확인하세요 ({venue})")
        if venue != "KRX" and self.env == "mock":
            return self._biz("APBK0918", "모의투자에서는 KRX 주문만 가능합니다")
        try:
            qty, price = int(got["ORD_QTY"]), int(got["ORD_UNPR"])
        except ValueError:
            return self._biz("OPSQ2001", "ERROR : INPUT FIELD VALUE [ORD_QTY/ORD_UNPR]")
        side = "01" if tr_id in SELL_TR else "02"
        try:
            order = self.exchange.place(acct, got["PDNO"], side, got["ORD_DVSN"], qty, price, venue)
        except Refusal as e:
            return self._biz(e.msg_cd, e.msg1)
        return await self._order_reply(order, side)

    async def _order_rvsecncl(
        self, request: Request, acct: FakeAccountState, params: dict[str, Any]
    ) -> Response:
        got = self._fields(
            params,
            (
                "KRX_FWDG_ORD_ORGNO",
                "ORGN_ODNO",
                "ORD_DVSN",
                "RVSE_CNCL_DVSN_CD",
                "ORD_QTY",
                "ORD_UNPR",
                "QTY_ALL_ORD_YN",
            ),
        )
        if isinstance(got, JSONResponse):
            return got
        kind = got["RVSE_CNCL_DVSN_CD"]
        if kind not in ("01", "02"):
            return self._biz("APBK0918", "정정취소구분코드를 확인하세요 (01 정정, 02 취소)")
        try:
            orig = int(got["ORGN_ODNO"])
            qty, price = int(got["ORD_QTY"]), int(got["ORD_UNPR"])
        except ValueError:
            return self._biz("OPSQ2001", "ERROR : INPUT FIELD VALUE [ORGN_ODNO/ORD_QTY/ORD_UNPR]")
        target = self.exchange.orders.get(orig)
        venue = str(params.get("EXCG_ID_DVSN_CD") or "KRX")
        if target is not None and target.account == acct.account and venue != target.venue:
            # The modify or cancel must go to the market that holds the order.
            return self._biz("APBK0918", f"원주문의 거래소({target.venue})와 다릅니다 ({venue})")
        try:
            order = self.exchange.revise(
                acct,
                orig,
                got["KRX_FWDG_ORD_ORGNO"],
                kind,
                qty,
                got["QTY_ALL_ORD_YN"] == "Y",
                price,
                got["ORD_DVSN"],
            )
        except Refusal as e:
            return self._biz(e.msg_cd, e.msg1)
        return await self._order_reply(order, None)

    async def _order_reply(self, order: FakeOrder, side: str | None) -> Response:
        t = datetime.fromtimestamp(order.ts, KST)
        if self.env == "real":
            msg_cd, msg1, odno = "APBK0013", "주문 전송 완료 되었습니다.", _pad(order.odno)
        else:
            what = {"01": "매도주문", "02": "매수주문", None: "정정/취소주문"}[side]
            msg_cd, msg1, odno = "40600000", f"모의투자 {what}이 완료 되었습니다.", str(order.odno)
        body = {
            "rt_cd": "0",
            "msg_cd": msg_cd,
            "msg1": msg1,
            "output": {
                "KRX_FWDG_ORD_ORGNO": order.org_no,
                "ODNO": odno,
                "ORD_TMD": t.strftime("%H%M%S"),
            },
        }
        f = self.faults
        planned = f.plan.after()
        if f.accept_then_timeout > 0 or planned == "hang":
            f.accept_then_timeout = max(0, f.accept_then_timeout - 1)
            fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._hanging.add(fut)
            try:
                await fut
            finally:
                self._hanging.discard(fut)
            return PlainTextResponse("", status_code=504)
        raw = json.dumps(body, ensure_ascii=False).encode()
        if f.truncate_next > 0 or planned == "truncate":
            f.truncate_next = max(0, f.truncate_next - 1)
            return Response(raw[: len(raw) // 2], media_type="application/json")
        if f.drop_next > 0 or planned == "drop":
            f.drop_next = max(0, f.drop_next - 1)
            return _DroppedResponse(raw)
        return Response(raw, media_type="application/json")

    # --- reports

    def _page(
        self, rows: list[dict[str, Any]], params: dict[str, Any], cont: str, size: int
    ) -> tuple[list[dict[str, Any]], dict[str, str], dict[str, str]]:
        offset = 0
        if cont.strip() == "N":
            with contextlib.suppress(ValueError):
                offset = int(str(params.get("CTX_AREA_NK100") or "0").strip() or "0")
        page = rows[offset : offset + size]
        more = offset + size < len(rows)
        first = offset == 0
        tr_cont = ("F" if first else "M") if more else ("D" if first else "E")
        ctx = {
            "ctx_area_fk100": str(params.get("CANO", "")).ljust(100),
            "ctx_area_nk100": (str(offset + size) if more else "").ljust(100),
        }
        return page, ctx, {"tr_cont": tr_cont}

    def _balance(self, acct: FakeAccountState, params: dict[str, Any], cont: str) -> Response:
        rows = []
        evlu_total = pchs_total = 0
        for symbol, pos in sorted(acct.positions.items()):
            if pos.qty <= 0:
                continue
            last = self.market.last(symbol)
            inst = self.universe.get(symbol)
            px = last.price if last else pos.avg_price
            evlu = pos.qty * px
            evlu_total += evlu
            pchs_total += pos.cost
            rows.append(
                {
                    "pdno": symbol,
                    "prdt_name": inst.name if inst else symbol,
                    "hldg_qty": str(pos.qty),
                    "ord_psbl_qty": str(pos.qty - self.exchange.open_sell_qty(acct, symbol)),
                    "pchs_avg_pric": f"{pos.cost / pos.qty:.4f}",
                    "pchs_amt": str(pos.cost),
                    "prpr": str(px),
                    "evlu_amt": str(evlu),
                    "evlu_pfls_amt": str(evlu - pos.cost),
                    "evlu_pfls_rt": f"{(evlu - pos.cost) * 100 / pos.cost:.2f}"
                    if pos.cost
                    else "0.00",
                    "thdt_buyqty": "0",
                    "thdt_sll_qty": "0",
                }
            )
        page, ctx, headers = self._page(rows, params, cont, self.page_sizes["balance"])
        reserved = self.exchange.reserved_cash(acct)
        totals = {
            "dnca_tot_amt": str(acct.cash),
            "nxdy_excc_amt": str(acct.cash),
            "prvs_rcdl_excc_amt": str(acct.cash - reserved),
            "scts_evlu_amt": str(evlu_total),
            "tot_evlu_amt": str(acct.cash + evlu_total),
            "nass_amt": str(acct.cash + evlu_total),
            "pchs_amt_smtl_amt": str(pchs_total),
            "evlu_amt_smtl_amt": str(evlu_total),
            "evlu_pfls_smtl_amt": str(evlu_total - pchs_total),
        }
        body = {
            "rt_cd": "0",
            "msg_cd": "MCA00000",
            "msg1": "정상처리 되었습니다.",
            **ctx,
            "output1": page,
            "output2": [totals],
        }
        return JSONResponse(body, headers=headers)

    def _order_row(self, o: FakeOrder) -> dict[str, str]:
        inst = self.universe.get(o.symbol)
        t = datetime.fromtimestamp(o.ts, KST)
        orig = self.exchange.orders.get(o.orig_odno) if o.orig_odno else None
        cancel_confirmed = sum(
            c.qty for c in self.exchange.orders.values() if c.is_cancel and c.orig_odno == o.odno
        )
        return {
            "ord_dt": t.strftime("%Y%m%d"),
            "ord_gno_brno": o.org_no,
            "odno": _pad(o.odno),
            "orgn_odno": _pad(o.orig_odno),
            "ord_dvsn_name": DVSN_NAMES.get(o.dvsn, "지정가"),
            "sll_buy_dvsn_cd": o.side,
            "sll_buy_dvsn_cd_name": "매도" if o.side == "01" else "매수",
            "pdno": o.symbol,
            "prdt_name": inst.name if inst else o.symbol,
            "ord_qty": str(o.qty),
            "ord_unpr": str(o.price),
            "ord_tmd": t.strftime("%H%M%S"),
            "tot_ccld_qty": str(o.filled),
            "avg_prvs": str(o.filled_amount // o.filled) if o.filled else "0",
            "cncl_yn": "Y" if o.is_cancel else "N",
            "tot_ccld_amt": str(o.filled_amount),
            "ord_dvsn_cd": o.dvsn if not o.is_cancel else (orig.dvsn if orig else "00"),
            "cnc_cfrm_qty": str(o.qty if o.is_cancel else cancel_confirmed),
            "rmn_qty": str(0 if o.is_cancel else o.remaining),
            "rjct_qty": str(o.rejected),
            "infm_tmd": "",
            "excg_id_dvsn_Cd": o.venue,
            **kis_market.ORDER_ROW_EXTRAS,
        }

    def _daily_ccld(self, acct: FakeAccountState, params: dict[str, Any], cont: str) -> Response:
        start = str(params.get("INQR_STRT_DT") or "")
        end = str(params.get("INQR_END_DT") or "")
        side = str(params.get("SLL_BUY_DVSN_CD") or "00")
        ccld = str(params.get("CCLD_DVSN") or "00")
        pdno = str(params.get("PDNO") or "")
        odno = str(params.get("ODNO") or "").lstrip("0")
        orders = []
        for o in self.exchange.orders.values():
            if o.account != acct.account:
                continue
            ymd = o.day.strftime("%Y%m%d")
            if (start and ymd < start) or (end and ymd > end):
                continue
            if side != "00" and o.side != side:
                continue
            if pdno and o.symbol != pdno:
                continue
            if odno and str(o.odno) != odno:
                continue
            if ccld == "01" and o.filled == 0:
                continue
            if ccld == "02" and (o.is_cancel or o.remaining == 0):
                continue
            orders.append(o)
        orders.sort(key=lambda o: o.odno, reverse=str(params.get("INQR_DVSN") or "00") == "00")
        rows = [self._order_row(o) for o in orders]
        page, ctx, headers = self._page(rows, params, cont, self.page_sizes["ccld"])
        total_qty = sum(o.qty for o in orders if not o.is_cancel)
        filled = sum(o.filled for o in orders)
        amount = sum(o.filled_amount for o in orders)
        totals = {
            "tot_ord_qty": str(total_qty),
            "tot_ccld_qty": str(filled),
            "tot_ccld_amt": str(amount),
            "prsm_tlex_smtl": "0",
            "pchs_avg_pric": str(amount // filled) if filled else "0",
        }
        body = {
            "rt_cd": "0",
            "msg_cd": "MCA00000",
            "msg1": "정상처리 되었습니다.",
            **ctx,
            "output1": page,
            "output2": totals,
        }
        return JSONResponse(body, headers=headers)

    def _psbl(self, acct: FakeAccountState, params: dict[str, Any], cont: str) -> Response:
        rows = []
        for o in sorted(self.exchange.orders.values(), key=lambda o: o.odno):
            if o.account != acct.account or not o.working:
                continue
            rows.append(
                {
                    "ord_gno_brno": o.org_no,
                    "odno": _pad(o.odno),
                    "orgn_odno": _pad(o.orig_odno),
                    "pdno": o.symbol,
                    "ord_qty": str(o.qty),
                    "ord_unpr": str(o.price),
                    "ord_tmd": datetime.fromtimestamp(o.ts, KST).strftime("%H%M%S"),
                    "tot_ccld_qty": str(o.filled),
                    "tot_ccld_amt": str(o.filled_amount),
                    "psbl_qty": str(o.remaining),
                    "sll_buy_dvsn_cd": o.side,
                    "ord_dvsn_cd": o.dvsn,
                    "excg_id_dvsn_cd": "KRX",
                }
            )
        page, ctx, headers = self._page(rows, params, cont, self.page_sizes["psbl"])
        body = {
            "rt_cd": "0",
            "msg_cd": "MCA00000",
            "msg1": "정상처리 되었습니다.",
            **ctx,
            "output": page,
        }
        return JSONResponse(body, headers=headers)

    def _price(self, params: dict[str, Any]) -> Response:
        symbol = str(params.get("FID_INPUT_ISCD") or params.get("fid_input_iscd") or "")
        inst = self.market.instrument(symbol)
        if inst is None:
            return self._biz("APBK0656", "해당 종목정보가 없습니다.")
        last = self.market.last(symbol)
        assert last is not None
        lower, upper = krx.price_limits(inst.base_price, inst.kind)
        stats = self.exchange.day_stats.get(symbol, {})
        diff = last.price - inst.base_price
        out = {
            "stck_prpr": str(last.price),
            "prdy_vrss": str(diff),
            "prdy_vrss_sign": "2" if diff > 0 else "5" if diff < 0 else "3",
            "prdy_ctrt": f"{diff * 100 / inst.base_price:.2f}",
            "acml_vol": str(last.cum_volume),
            "acml_tr_pbmn": str(stats.get("amount", 0)),
            "stck_oprc": str(stats.get("open", last.price)),
            "stck_hgpr": str(stats.get("high", last.price)),
            "stck_lwpr": str(stats.get("low", last.price)),
            "stck_mxpr": str(upper),
            "stck_llam": str(lower),
            "stck_sdpr": str(inst.base_price),
            "aspr_unit": str(krx.tick_size(last.price, inst.kind)),
        }
        return JSONResponse(
            {"rt_cd": "0", "msg_cd": "MCA00000", "msg1": "정상처리 되었습니다.", "output": out}
        )

    # ------------------------------------------------------------------ WebSocket

    async def _ws(self, websocket: WebSocket) -> None:
        await websocket.accept()
        sess = _WsSession(self, websocket)
        self._sessions.add(sess)
        self.ws_sessions_opened += 1
        loop = asyncio.get_running_loop()
        writer = loop.create_task(sess.writer())
        pinger = loop.create_task(sess.pinger())
        try:
            while not sess.closed:
                text = await websocket.receive_text()
                await self._ws_message(sess, text)
        except (WebSocketDisconnect, RuntimeError):
            pass
        finally:
            sess.closed = True
            self._forget(sess)
            pinger.cancel()
            sess.out.put_nowait(None)
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await asyncio.wait_for(writer, 2)
            with contextlib.suppress(asyncio.CancelledError):
                await pinger

    def _forget(self, sess: _WsSession) -> None:
        self._sessions.discard(sess)
        if sess.app_key is not None and self._by_key.get(sess.app_key) is sess:
            del self._by_key[sess.app_key]

    async def _ws_message(self, sess: _WsSession, text: str) -> None:
        try:
            msg = json.loads(text)
        except ValueError:
            sess.send(frames.control("", "", "1", "OPSP9999", "JSON PARSING ERROR"))
            return
        header = msg.get("header") or {}
        if header.get("tr_id") == "PINGPONG":
            self.pongs += 1
            return
        body_in = ((msg.get("body") or {}).get("input")) or {}
        tr_id = str(body_in.get("tr_id") or "")
        tr_key = str(body_in.get("tr_key") or "")
        app_key = self._approvals.get(str(header.get("approval_key") or ""))
        if app_key is None:
            sess.send(
                frames.control(tr_id, tr_key, "1", "OPSP0011", "invalid approval : NOT FOUND")
            )
            return
        if sess.app_key is None:
            holder = self._by_key.get(app_key)
            if holder is not None and holder is not sess and not holder.closed:
                self.ws_refused[app_key] += 1
                sess.send(frames.control(tr_id, tr_key, "1", "OPSP8996", "ALREADY IN USE appkey"))
                sess.closed = True
                await asyncio.sleep(0)
                sess.out.put_nowait(None)
                await _close_quietly(sess.ws, 1008)
                return
            sess.app_key = app_key
            self._by_key[app_key] = sess
        elif sess.app_key != app_key:
            sess.send(
                frames.control(tr_id, tr_key, "1", "OPSP0011", "invalid approval : another appkey")
            )
            return
        tr_type = str(header.get("tr_type") or "")
        reg = (tr_id, tr_key)
        if tr_type == "2":
            if reg in sess.regs:
                sess.regs.discard(reg)
                sess.send(frames.control(tr_id, tr_key, "0", "OPSP0001", "UNSUBSCRIBE SUCCESS"))
            else:
                sess.send(
                    frames.control(tr_id, tr_key, "1", "OPSP0003", "UNSUBSCRIBE ERROR(not found!)")
                )
            return
        if tr_type != "1":
            sess.send(
                frames.control(tr_id, tr_key, "1", "OPSP9999", f"invalid tr_type {tr_type!r}")
            )
            return
        key = self._keys[app_key]
        if tr_id in MARKET_TRS:
            # A master symbol beyond the bundle starts trading when first registered.
            if not self.market.trades(tr_key):
                sess.send(
                    frames.control(
                        tr_id, tr_key, "1", "OPSP0019", "invalid tr_key (fake: 종목코드 없음)"
                    )
                )
                return
        elif tr_id == NOTICE_TR[self.env]:
            if tr_key not in key.hts_ids:
                sess.send(
                    frames.control(
                        tr_id, tr_key, "1", "OPSP0019", "invalid tr_key (fake: HTS ID 불일치)"
                    )
                )
                return
        else:
            sess.send(
                frames.control(tr_id, tr_key, "1", "OPSP0017", f"invalid tr_id {tr_id} (fake)")
            )
            return
        if reg in sess.regs:
            sess.send(frames.control(tr_id, tr_key, "1", "OPSP0002", "ALREADY IN SUBSCRIBE"))
            return
        if len(sess.regs) >= self.max_registrations:
            sess.send(frames.control(tr_id, tr_key, "1", "OPSP0008", "MAX SUBSCRIBE OVER"))
            return
        sess.regs.add(reg)
        sess.send(
            frames.control(
                tr_id,
                tr_key,
                "0",
                "OPSP0000",
                "SUBSCRIBE SUCCESS",
                {"iv": sess.aes_iv, "key": sess.aes_key},
            )
        )


wire_bad_key = "EGW00103"


class _DroppedResponse(Response):
    """Starts a reply, sends half of it, then the connection goes away."""

    def __init__(self, raw: bytes) -> None:
        super().__init__(raw, media_type="application/json")
        self._raw = raw

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(self._raw)).encode()),
                ],
            }
        )
        await send(
            {
                "type": "http.response.body",
                "body": self._raw[: len(self._raw) // 3],
                "more_body": True,
            }
        )
        raise ConnectionAbortedError("fake: connection dropped mid-reply")


class _QuietDrops:
    """Outermost ASGI layer: a reply the fake cut off on purpose (``_DroppedResponse``) ends
    with the connection aborted, not with a traceback in the fake's log."""

    def __init__(self, app: Starlette) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await self.app(scope, receive, send)
        except ConnectionAbortedError:
            transport = getattr(getattr(send, "__self__", None), "transport", None)
            if transport is None:
                raise
            transport.abort()


async def _close_quietly(ws: WebSocket, code: int) -> None:
    with contextlib.suppress(Exception):
        await ws.close(code)


def _from_fake_account(a: FakeAccount) -> KisFakeAccount:
    return KisFakeAccount(a.account_no, a.app_key, a.app_secret, a.cash, a.hts_id)


def load_accounts_file(path: Path) -> list[KisFakeAccount]:
    """Accounts from JSON (a list, or ``{"accounts": [...]}``) or TOML (``[[accounts]]``)."""
    text = path.read_text(encoding="utf-8")
    data: Any = tomllib.loads(text) if path.suffix.lower() == ".toml" else json.loads(text)
    items = data.get("accounts", []) if isinstance(data, dict) else data
    out = []
    for i, item in enumerate(items):
        if not isinstance(item, dict):
            raise ValueError(f"{path}: account #{i + 1} is not a table/object")
        missing = [k for k in ("account_no", "app_key", "app_secret") if not item.get(k)]
        if missing:
            raise ValueError(f"{path}: account #{i + 1} lacks {', '.join(missing)}")
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
