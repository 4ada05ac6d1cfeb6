"""``make soak``: a real ``hoga serve`` under a steady load for a long time - does it leak?

Ten users send 5 orders/s between them (market buys and sells of one share, and limit orders
resting at the day's lower limit that are cancelled ten seconds later), while 50 WebSocket
clients watch market data (20 symbols each) and 50 more the users' own events - the dashboard's
load, all day. Tokens are renewed the way the dashboard renews them (a new access token, sent
on the open sockets as ``{"type": "auth"}`` before the old one expires).

Every ``--every`` seconds (2 minutes) it prints the server's resident memory, open file
descriptors, order latency (p50/p99, from when each order was due to its 202), errors and
WebSocket traffic; at the end a verdict against the goal: RSS growth at most 10% after the
warm-up (the first report), file descriptors flat, no errors.

    .venv/bin/python -m benchmarks.soak [--minutes 20] [--every 120] [--rate 5] [--database sqlite]

An error is any order or cancel not answered 202, any request that failed, any WebSocket that
closed or reported an error. Exit status 0 when the verdict is met.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import websockets
from tests.helpers import eventually
from tests.pg_support import create_database, drop_database

from benchmarks.chaos.burst import chaos_symbols
from benchmarks.chaos.run import free_port
from benchmarks.server import (
    ADMIN_PASSWORD,
    HogaProcess,
    access_token,
    bearer,
    hoga_env,
    new_user,
    open_fds,
    rss_mb,
)

USERS = 10
POOL = 8
STOCK = 20
PASSWORD = "soak-user-password-1"


@dataclass
class Window:
    """What happened since the last report."""

    latencies: list[float] = field(default_factory=list)
    errors: Counter[str] = field(default_factory=Counter)
    orders: int = 0
    cancels: int = 0
    ws_messages: int = 0


@dataclass
class Sample:
    at: float
    rss: float
    fds: int
    p50: float
    p99: float
    errors: int


class User:
    def __init__(self, name: str, symbol: str) -> None:
        self.name = name
        self.symbol = symbol
        self.token = ""
        self.sockets: list[Any] = []
        self.market_orders = 0


class Soak:
    """One soak run; see the module docstring."""

    def __init__(self, args: argparse.Namespace, server: HogaProcess) -> None:
        self.args = args
        self.server = server
        # A bounded pool, busy enough that its connections stay open: the server's descriptor
        # count then measures the server, not how many connections the client had open. Idle
        # connections are let go before uvicorn's keep-alive timeout (5 s) closes them from
        # its side - reusing one the server is closing fails the request (ReadError).
        self.http = httpx.AsyncClient(
            base_url=server.url,
            timeout=httpx.Timeout(30.0),
            limits=httpx.Limits(
                max_connections=POOL, max_keepalive_connections=POOL, keepalive_expiry=4.0
            ),
        )
        self.users: list[User] = []
        self.window = Window()
        self.total_errors: Counter[str] = Counter()
        self.all_latencies: list[float] = []
        self.samples: list[Sample] = []
        self.ws_alive = 0
        self.stopping = False
        self.started = 0.0

    # ------------------------------------------------------------------ set-up

    async def login(self, user: str, password: str = PASSWORD) -> str:
        return await access_token(self.http, user, password)

    async def setup(self) -> list[str]:
        admin = bearer(await self.login("admin", ADMIN_PASSWORD))
        r = await self.http.patch(
            "/api/admin/tiers/premium",
            headers=admin,
            json={"daily_trades": 1_000_000, "api_calls_per_minute": 100_000},
        )
        r.raise_for_status()
        symbols = [
            s["symbol"]
            for s in (await self.http.get("/api/market/symbols", headers=admin)).json()["symbols"]
        ]
        cheap = chaos_symbols(USERS)  # 5,000-100,000 won: the paper cash buys plenty
        for n in range(USERS):
            name = f"soak{n}"
            user = User(name, cheap[n % len(cheap)])
            user.token = await new_user(self.http, admin, name, PASSWORD)
            self.users.append(user)
        return symbols

    async def stock_up(self, user: User) -> None:
        """Buy STOCK shares and wait (bounded) until they are held."""
        body = {"symbol": user.symbol, "side": "buy", "type": "market", "qty": STOCK}
        r = await self.request(user, "POST", "/api/orders", json=body)
        if r.status_code != 202:
            raise RuntimeError(f"{user.name}: the opening buy was refused: {r.text}")
        o: dict[str, Any] = {}

        async def filled() -> bool:
            nonlocal o
            o = (await self.request(user, "GET", f"/api/orders/{r.json()['id']}")).json()
            return bool(o["status"] == "FILLED")

        await eventually(
            filled, 30, lambda: f"{user.name}'s opening buy to fill ({o.get('status')})", pause=0.1
        )

    # ------------------------------------------------------------------ load

    def error(self, kind: str) -> None:
        self.window.errors[kind] += 1
        self.total_errors[kind] += 1

    async def request(self, user: User, method: str, path: str, **kw: Any) -> httpx.Response:
        return await self.http.request(method, path, headers=bearer(user.token), **kw)

    async def one_order(self, n: int, due: float) -> None:
        # Each user acts every USERS/rate seconds: four market orders, alternately buying and
        # selling one share of its stock (it holds STOCK shares from the start, so a sell never
        # waits for the buy before it), then one resting limit order. Identical orders are
        # then further apart than the duplicate window.
        user = self.users[n % USERS]
        loop = asyncio.get_running_loop()
        resting = (n // USERS) % 5 == 4
        if resting:
            body: dict[str, Any] = {
                "symbol": user.symbol, "side": "buy", "type": "limit", "qty": 1,
                "price": self.lower[user.symbol],
            }  # fmt: skip
        else:
            side = "buy" if user.market_orders % 2 == 0 else "sell"
            user.market_orders += 1
            body = {"symbol": user.symbol, "side": side, "type": "market", "qty": 1}
        try:
            r = await self.request(user, "POST", "/api/orders", json=body)
        except httpx.HTTPError as e:
            self.error(f"order:{type(e).__name__}")
            return
        self.window.latencies.append((loop.time() - due) * 1000)
        self.window.orders += 1
        if r.status_code != 202:
            self.error(f"order:{r.status_code}:{_code(r)}")
            return
        if resting:
            loop.call_later(10.0, lambda: loop.create_task(self.cancel(user, r.json()["id"])))

    async def cancel(self, user: User, order_id: int) -> None:
        if self.stopping:
            return
        try:
            r = await self.request(user, "DELETE", f"/api/orders/{order_id}")
        except httpx.HTTPError as e:
            self.error(f"cancel:{type(e).__name__}")
            return
        self.window.cancels += 1
        if r.status_code != 202:
            self.error(f"cancel:{r.status_code}:{_code(r)}")

    async def orders(self, until: float) -> None:
        loop = asyncio.get_running_loop()
        tasks: set[asyncio.Task[None]] = set()
        n = 0
        start = loop.time()
        while True:
            due = start + n / self.args.rate
            if due >= until:
                break
            await asyncio.sleep(max(0.0, due - loop.time()))
            task = loop.create_task(self.one_order(n, due))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
            n += 1
        if tasks:
            await asyncio.gather(*tasks)

    async def socket(self, user: User, path: str, symbols: list[str], until: float) -> None:
        """One WebSocket for the whole run; a close or an error message is an error (and the
        client connects again, as the dashboard does)."""
        url = self.server.url.replace("http://", "ws://")
        loop = asyncio.get_running_loop()
        while loop.time() < until and not self.stopping:
            try:
                async with websockets.connect(
                    f"{url}{path}?token={user.token}", max_size=2**22, ping_interval=None
                ) as ws:
                    user.sockets.append(ws)
                    self.ws_alive += 1
                    try:
                        await self._read(ws, symbols, until)
                    finally:
                        self.ws_alive -= 1
                        user.sockets.remove(ws)
            except (OSError, websockets.WebSocketException) as e:
                if self.stopping:
                    return
                self.error(f"ws{path}:{type(e).__name__}")
                await asyncio.sleep(1.0)

    async def _read(self, ws: Any, symbols: list[str], until: float) -> None:
        if symbols:
            await ws.send(json.dumps({"type": "subscribe", "symbols": symbols}))
        loop = asyncio.get_running_loop()
        while not self.stopping:
            try:
                raw = await asyncio.wait_for(ws.recv(), max(0.1, until - loop.time()))
            except TimeoutError:
                return
            self.window.ws_messages += 1
            msg = json.loads(raw)
            if msg.get("type") == "error":
                self.error(f"ws:{msg.get('code')}")

    async def renew_tokens(self) -> None:
        """A fresh access token per user before the old one runs out; open sockets get it."""
        while not self.stopping:
            await asyncio.sleep(self.args.renew)
            for user in self.users:
                try:
                    user.token = await self.login(user.name)
                except httpx.HTTPError as e:
                    self.error(f"login:{type(e).__name__}")
                    continue
                for ws in list(user.sockets):
                    with contextlib.suppress(websockets.WebSocketException):
                        await ws.send(json.dumps({"type": "auth", "token": user.token}))

    # ------------------------------------------------------------------ reports

    def report(self) -> Sample:
        w, self.window = self.window, Window()
        lat = sorted(w.latencies)
        self.all_latencies += lat
        sample = Sample(
            at=time.monotonic() - self.started,
            rss=rss_mb(self.server.pid),
            fds=open_fds(self.server.pid),
            p50=_pct(lat, 0.50),
            p99=_pct(lat, 0.99),
            errors=sum(w.errors.values()),
        )
        self.samples.append(sample)
        m, s = divmod(int(sample.at), 60)
        print(
            f"[{m:3d}:{s:02d}] rss {sample.rss:7.1f} MB  fds {sample.fds:4d}  orders "
            f"{w.orders:5d} ({w.orders / max(1.0, self.args.every):.1f}/s) cancels {w.cancels:4d}"
            f"  p50 {sample.p50:6.1f} ms  p99 {sample.p99:7.1f} ms  errors {sample.errors}"
            f" (total {sum(self.total_errors.values())})  ws {self.ws_alive} open, "
            f"{w.ws_messages:,} msgs" + (f"  {dict(w.errors)}" if w.errors else ""),
            flush=True,
        )
        return sample

    async def reporter(self, until: float) -> None:
        loop = asyncio.get_running_loop()
        while True:
            wait = min(self.args.every, until - loop.time())
            if wait <= 0:
                return
            await asyncio.sleep(wait)
            self.report()

    def verdict(self) -> tuple[bool, str]:
        if len(self.samples) < 2:
            return False, "verdict: too short - run longer than two report intervals"
        base, rest = self.samples[0], self.samples[1:]
        last = rest[-1]
        growth = (last.rss - base.rss) / base.rss * 100
        fd_low, fd_high = min(s.fds for s in rest), max(s.fds for s in rest)
        fd_room = max(POOL + 2, base.fds // 20)
        fds_flat = base.fds - fd_room <= fd_low and fd_high <= base.fds + fd_room
        errors = sum(self.total_errors.values())
        ok = growth <= 10.0 and fds_flat and errors == 0
        lat = sorted(self.all_latencies)
        text = (
            f"verdict: {'MET' if ok else 'NOT MET'} - RSS {base.rss:.1f} -> {last.rss:.1f} MB after "
            f"warm-up ({growth:+.1f}%, goal <= +10%); fds {base.fds} -> {fd_low}..{fd_high} "
            f"({'flat' if fds_flat else 'NOT flat'}, room +/-{fd_room}); errors {errors} (goal 0)"
            + (f" {dict(self.total_errors)}" if errors else "")
            + f"; order latency over the run p50 {_pct(lat, 0.5):.1f} ms, p99 "
            f"{_pct(lat, 0.99):.1f} ms, {len(lat)} orders"
        )
        return ok, text

    # ------------------------------------------------------------------ the run

    async def run(self) -> bool:
        symbols = await self.setup()
        self.lower = {}
        for user in self.users:
            r = await self.request(user, "GET", "/api/market/rules", params={"symbol": user.symbol})
            r.raise_for_status()
            self.lower[user.symbol] = int(r.json()["lower"])
            await self.stock_up(user)
        loop = asyncio.get_running_loop()
        self.started = time.monotonic()
        until = loop.time() + self.args.minutes * 60
        sockets = []
        for n in range(self.args.ws):
            user = self.users[n % USERS]
            watch = symbols[(n * 7) % len(symbols) :][:20] or symbols[:20]
            sockets.append(self.socket(user, "/ws/market-data", watch, until))
            sockets.append(self.socket(user, "/ws/events", [], until))
        renew = loop.create_task(self.renew_tokens())
        try:
            await asyncio.gather(self.orders(until), self.reporter(until), *sockets)
        finally:
            self.stopping = True
            renew.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await renew
            await self.http.aclose()
        ok, text = self.verdict()
        print(text, flush=True)
        return ok


def _pct(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    return values[min(len(values) - 1, int(len(values) * q))]


def _code(r: httpx.Response) -> str:
    try:
        return str(r.json()["error"]["code"])
    except (ValueError, KeyError, TypeError):
        return "?"


async def amain(args: argparse.Namespace) -> int:
    with tempfile.TemporaryDirectory(prefix="hoga-soak-") as tmp:
        pg_name = None
        settings: dict[str, str] = {
            # The dashboard renews tokens; so do the clients here, well before expiry.
            "access_token_ttl": str(max(300, int(args.renew * 2))),
            "ws_max_connections": str(max(5, args.ws // USERS + 2)),
            "log_level": "warning",
            # A user's identical orders are 4 s apart when sent; on a loaded machine the server
            # can take two of them within 2 s and refuse the second as a duplicate - the guard
            # working, not a leak. The soak measures leaks, so the window is narrowed.
            "duplicate_window": "0.5",
        }
        if args.database == "postgres":
            pg_name, url = await create_database("hoga_chaos_")
            settings["database_url"] = url
        server = HogaProcess(hoga_env(tmp, free_port(), **settings), Path(tmp) / "server.log")
        print(
            f"soak: {args.minutes:g} min, {args.rate:g} orders/s over {USERS} users, "
            f"{args.ws} market-data + {args.ws} event WebSockets, {args.database}; report every "
            f"{args.every:g} s (the first is the warm-up)",
            flush=True,
        )
        server.start()
        try:
            await server.wait_ready()
            ok = await Soak(args, server).run()
        finally:
            server.stop()
            if pg_name is not None:
                await drop_database(pg_name)
        if not ok:
            print(server.tail(20))
        return 0 if ok else 1


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, default=20.0)
    ap.add_argument("--every", type=float, default=120.0, help="seconds between reports")
    ap.add_argument("--rate", type=float, default=5.0, help="orders per second, all users")
    ap.add_argument("--ws", type=int, default=50, help="market-data clients (and as many event)")
    ap.add_argument("--renew", type=float, default=600.0, help="seconds between token renewals")
    ap.add_argument("--database", choices=("sqlite", "postgres"), default="sqlite")
    args = ap.parse_args(argv)
    return asyncio.run(amain(args))


if __name__ == "__main__":
    sys.exit(main())
