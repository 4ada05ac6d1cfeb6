"""Order bursts: what the chaos run sends, and what hoga acknowledged.

Every order of a run is different from every other of its account in (symbol, side, type,
quantity, price). That is what lets the broker's side be checked without client order ids (KIS
and Kiwoom have none): two identical orders at a fake mean one order reached it twice.

The mix: market buys and sells (some large enough to fill in parts over several trades),
marketable limit orders at the day's limit (fill at once, like market orders), and resting
limit orders at the opposite limit (never fill; later bursts cancel some of them).
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

from benchmarks.chaos.world import Account, World
from hoga.domain import krx
from hoga.marketdata.universe import Universe, bundled_universe


@dataclass(frozen=True)
class Spec:
    """One order to send."""

    account: Account
    client_order_id: str
    symbol: str
    side: str
    type: str
    qty: int
    price: int | None

    def body(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "symbol": self.symbol,
            "side": self.side,
            "type": self.type,
            "qty": self.qty,
            "account_id": self.account.account_id,
            "client_order_id": self.client_order_id,
        }
        if self.price is not None:
            out["price"] = self.price
        return out


@dataclass
class Sent:
    """What happened to one request: ``status`` 0 means no answer (the server was down)."""

    spec: Spec
    status: int = 0
    order_id: int | None = None
    code: str | None = None


@dataclass
class BurstResult:
    sent: list[Sent] = field(default_factory=list)
    cancels: int = 0

    @property
    def acked(self) -> list[Sent]:
        return [s for s in self.sent if s.status == 202 and s.order_id is not None]


def chaos_symbols(count: int = 12) -> list[str]:
    """Liquid-looking stocks at 5,000-100,000 won: cheap enough for many orders."""
    universe = Universe(bundled_universe())
    picked = [
        i.symbol
        for i in sorted(universe.instruments, key=lambda i: i.symbol)
        if i.kind == "stock" and 5_000 <= i.base_price <= 100_000
    ]
    return picked[:count]


class Planner:
    """Draws orders from a seeded generator, never the same order twice for an account."""

    def __init__(self, rng: random.Random, symbols: list[str], run_tag: str) -> None:
        self.rng = rng
        self.symbols = symbols
        self.tag = run_tag
        self.universe = Universe(bundled_universe())
        self.used: set[tuple[int, str, str, str, int, int | None]] = set()
        self.count = 0

    def _limits(self, symbol: str) -> tuple[int, int]:
        inst = self.universe.get(symbol)
        assert inst is not None
        lower, upper = krx.price_limits(inst.base_price, inst.kind)
        return lower, upper

    def one(self, account: Account, holdings: dict[str, int]) -> Spec | None:
        for _ in range(50):
            roll = self.rng.random()
            held = [s for s, q in holdings.items() if q >= 2]
            side = "sell" if held and roll < 0.35 else "buy"
            symbol = self.rng.choice(held if side == "sell" else self.symbols)
            lower, upper = self._limits(symbol)
            kind = self.rng.random()
            if side == "buy":
                qty = self.rng.randint(1, 60) if kind < 0.85 else self.rng.randint(200, 1500)
                order_type, price = (
                    ("market", None)
                    if kind < 0.5
                    else ("limit", upper)
                    if kind < 0.7
                    else ("limit", lower)  # rests: never marketable
                    if kind < 0.85
                    else ("market", None)  # large: fills in parts
                )
            else:
                qty = self.rng.randint(1, max(1, holdings[symbol] // 3))
                order_type, price = (
                    ("market", None)
                    if kind < 0.5
                    else ("limit", lower)
                    if kind < 0.8
                    else ("limit", upper)
                )
            key = (account.account_id, symbol, side, order_type, qty, price)
            if key in self.used:
                continue
            self.used.add(key)
            self.count += 1
            cid = f"{self.tag}-{self.count}"
            return Spec(account, cid, symbol, side, order_type, qty, price)
        return None

    def plan(
        self, accounts: list[Account], per_account: int, holdings: dict[int, dict[str, int]]
    ) -> list[Spec]:
        specs = []
        for account in accounts:
            held = dict(holdings.get(account.account_id, {}))
            for _ in range(per_account):
                spec = self.one(account, held)
                if spec is None:
                    continue
                if spec.side == "sell":
                    held[spec.symbol] -= spec.qty  # do not plan to sell the same shares twice
                specs.append(spec)
        self.rng.shuffle(specs)
        return specs


async def send(
    world: World,
    specs: list[Spec],
    rate: float,
    cancels: list[tuple[Account, int]],
    on_answer: Callable[[], None] = lambda: None,
) -> BurstResult:
    """Send ``specs`` at ``rate`` per second (and the ``cancels``), concurrently; a request the
    server never answered (it was killed) is recorded with status 0. ``on_answer`` is called
    after each order request the server answered."""
    result = BurstResult()
    loop = asyncio.get_running_loop()
    start = loop.time()

    async def one(i: int, spec: Spec) -> None:
        await asyncio.sleep(max(0.0, start + i / rate - loop.time()))
        sent = Sent(spec)
        result.sent.append(sent)
        try:
            r = await world.call(spec.account, "POST", "/api/orders", json=spec.body())
        except httpx.HTTPError:
            return
        sent.status = r.status_code
        on_answer()
        data = r.json() if r.headers.get("content-type", "").startswith("application/json") else {}
        if r.status_code == 202:
            sent.order_id = int(data["id"])
        else:
            sent.code = str((data.get("error") or {}).get("code") or r.status_code)

    async def cancel(i: int, account: Account, order_id: int) -> None:
        await asyncio.sleep(max(0.0, start + (i + 0.5) / rate - loop.time()))
        try:
            r = await world.call(account, "DELETE", f"/api/orders/{order_id}")
        except httpx.HTTPError:
            return
        if r.status_code == 202:
            result.cancels += 1

    tasks = [one(i, s) for i, s in enumerate(specs)]
    step = max(1, len(specs) // max(1, len(cancels))) if cancels else 1
    tasks += [cancel(n * step, a, oid) for n, (a, oid) in enumerate(cancels)]
    await asyncio.gather(*tasks)
    return result
