"""Helpers for tests that drive the Kiwoom adapter against the Kiwoom fake over loopback."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from hoga.brokers.base import (
    AccountRef,
    ExecutionEvent,
    FillEvent,
    MemoryTokenStore,
    OrderUpdate,
    TokenStore,
)
from hoga.brokers.kiwoom import KiwoomBroker, RealtimeOptions, Timeouts
from hoga.domain.clock import Clock, SystemClock
from hoga.domain.market import Tick
from hoga.domain.secret import Secret
from hoga.fakes import FakeAccount, FakeOptions
from hoga.fakes.kiwoom import KiwoomFake, KiwoomFaults
from tests.helpers import eventually

APP_KEY = "KWAPPKEY0001abcdefgh"
APP_SECRET = "KWSECRET0001-never-print-me-0123456789"
ACCOUNT_NO = "5012345601"
APP_KEY_2 = "KWAPPKEY0002ijklmnop"
APP_SECRET_2 = "KWSECRET0002-also-never-print-me-987654"
ACCOUNT_NO_2 = "5098765401"
CASH = 1_000_000_000

FAST_REALTIME = RealtimeOptions(backoff_min=0.05, backoff_max=0.5, takeover_backoff=60.0)


def fake_options(**overrides: Any) -> FakeOptions:
    values: dict[str, Any] = {
        "broker": "kiwoom",
        "accounts": [
            FakeAccount(ACCOUNT_NO, APP_KEY, APP_SECRET, CASH),
            FakeAccount(ACCOUNT_NO_2, APP_KEY_2, APP_SECRET_2, CASH),
        ],
        "seed": 7,
    }
    values.update(overrides)
    return FakeOptions(**values)


@contextlib.asynccontextmanager
async def kiwoom_fake(
    *, rate: float = 50.0, page_size: int = 3, faults: KiwoomFaults | None = None, **kw: Any
) -> AsyncIterator[KiwoomFake]:
    fake = KiwoomFake(fake_options(), rate=rate, page_size=page_size, faults=faults, **kw)
    await fake.start()
    try:
        yield fake
    finally:
        await fake.stop()


def account(
    fake: KiwoomFake,
    account_id: int = 1,
    *,
    key: str = APP_KEY,
    secret: str = APP_SECRET,
    account_no: str = ACCOUNT_NO,
    env: str = "mock",
    user_id: int = 1,
) -> AccountRef:
    return AccountRef(
        account_id=account_id,
        user_id=user_id,
        broker="kiwoom",
        env=env,
        account_no=account_no,
        app_key=Secret(key),
        app_secret=Secret(secret),
        base_url=fake.base_url,
    )


@dataclass
class Collected:
    """Execution events an adapter delivered, in order."""

    events: list[tuple[int, ExecutionEvent]] = field(default_factory=list)

    async def __call__(self, account_id: int, event: ExecutionEvent) -> None:
        self.events.append((account_id, event))

    def fills(self, broker_order_id: str | None = None) -> list[FillEvent]:
        return [
            e
            for _, e in self.events
            if isinstance(e, FillEvent)
            and (broker_order_id is None or e.fill.broker_order_id == broker_order_id)
        ]

    def updates(self, broker_order_id: str | None = None) -> list[OrderUpdate]:
        return [
            e
            for _, e in self.events
            if isinstance(e, OrderUpdate)
            and (broker_order_id is None or e.report.broker_order_id == broker_order_id)
        ]


@contextlib.asynccontextmanager
async def kiwoom_adapter(
    *,
    rate: float = 50.0,
    store: TokenStore | None = None,
    timeouts: Timeouts | None = None,
    realtime: RealtimeOptions = FAST_REALTIME,
    clock: Clock | None = None,
) -> AsyncIterator[tuple[KiwoomBroker, Collected]]:
    broker = KiwoomBroker(
        rate=rate,
        clock=clock or SystemClock(),
        token_store=store or MemoryTokenStore(),
        timeouts=timeouts or Timeouts(order=2.0, query=5.0),
        realtime=realtime,
    )
    sink = Collected()
    broker.set_event_sink(sink)
    await broker.start()
    try:
        yield broker, sink
    finally:
        await broker.stop()


async def traded(fake: KiwoomFake, symbol: str, rounds: int = 400) -> Tick:
    """Pump the fake's market until ``symbol`` has traded (bounded) and return its last trade."""
    for _ in range(rounds):
        tick = fake.market.last(symbol)
        if tick is not None and tick.volume > 0:
            return tick
        fake.pump(20)
    raise AssertionError(f"{symbol} never traded")


async def attached(broker: KiwoomBroker, ref: AccountRef) -> None:
    """Attach and wait until the realtime session is logged in with its registrations."""
    await broker.attach(ref)
    rt = broker.client(ref).realtime
    assert rt is not None

    async def ready() -> bool:
        return rt.connected.is_set()

    await eventually(ready, 5.0, "the realtime session to log in")


# ------------------------------------------------------------------ a running hoga


async def link_account(
    http: Any,
    headers: dict[str, str],
    fake: KiwoomFake,
    *,
    key: str = APP_KEY,
    secret: str = APP_SECRET,
    account_no: str = ACCOUNT_NO,
    env: str = "mock",
) -> dict[str, Any]:
    """Link a Kiwoom account pointing at the fake through the API; returns the public view."""
    r = await http.post(
        "/api/broker-accounts",
        json={
            "broker": "kiwoom",
            "env": env,
            "account_no": account_no,
            "app_key": key,
            "app_secret": secret,
            "base_url": fake.base_url,
            "ws_url": fake.ws_url,
            "label": "키움 모의",
        },
        headers=headers,
    )
    assert r.status_code == 201, r.text
    view: dict[str, Any] = r.json()
    return view


async def fund_from_broker(hoga: Any, user_id: int, account_id: int) -> int:
    """Record the broker's cash as the account's opening balance in hoga's ledger.

    hoga does not yet sync a linked broker account's cash into its ledger (reported to the
    lead); until it does, tests post the adapter's own ``balance()`` figure as a deposit.
    """
    from hoga.store.db import Actor
    from hoga.store.repos import ledger

    ref = await hoga.accounts.ref_for(user_id, account_id)
    bal = await hoga.brokers["kiwoom"].balance(ref)
    async with hoga.db.tx(Actor.user(user_id)) as conn:
        await ledger.post_cash(
            conn, user_id, account_id, bal.cash, "deposit", hoga.clock.now(), note="opening"
        )
    cash: int = bal.cash
    return cash
