"""Helpers for tests that drive Kiwoom against the Kiwoom fake over loopback: the fake, an
adapter (``kiwoom_adapter``), and an account linked on a running hoga (shape:
tests/broker_support.py)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hoga.brokers.base import AccountRef, MemoryTokenStore, TokenStore
from hoga.brokers.kiwoom import ClientOptions, KiwoomBroker, KiwoomWire, RealtimeOptions, Timeouts
from hoga.domain import krx
from hoga.domain.clock import Clock, SystemClock
from hoga.domain.market import Instrument, Tick
from hoga.domain.secret import Secret
from hoga.fakes import FakeAccount, FakeOptions
from hoga.fakes.kiwoom import KiwoomFake, KiwoomFaults
from tests.broker_support import Collected, fund, link_fake_account
from tests.helpers import Harness, eventually, running

APP_KEY = "KWAPPKEY0001abcdefgh"
APP_SECRET = "KWSECRET0001-never-print-me-0123456789"
ACCOUNT_NO = "5012345601"
APP_KEY_2 = "KWAPPKEY0002ijklmnop"
APP_SECRET_2 = "KWSECRET0002-also-never-print-me-987654"
ACCOUNT_NO_2 = "5098765401"
CASH = 1_000_000_000

FAST_REALTIME = RealtimeOptions(backoff_min=0.05, backoff_max=0.5, takeover_backoff=60.0)


def feed_wire(clock: Clock) -> KiwoomWire:
    """A wire of its own (no cached token, quick reconnects) for a feed test against the fake."""
    return KiwoomWire(
        clock=clock,
        store=MemoryTokenStore(),
        options=ClientOptions(rate=50),
        realtime=FAST_REALTIME,
    )


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


def account_ref(
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
        clock=clock or SystemClock(),
        token_store=store or MemoryTokenStore(),
        options=ClientOptions(rate=rate, timeouts=timeouts or Timeouts(order=2.0, query=5.0)),
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


@contextlib.asynccontextmanager
async def kiwoom_running(
    tmp_path: Path, db_url: str, **settings: Any
) -> AsyncIterator[tuple[KiwoomFake, Harness]]:
    """The Kiwoom fake and a hoga (pacing Kiwoom at 50 calls/s unless told) to link it to."""
    async with (
        kiwoom_fake() as fake,
        running(tmp_path, db_url, **{"kiwoom_rate": 50, **settings}) as h,
    ):
        yield fake, h


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
    return await link_fake_account(
        http,
        headers,
        fake,
        broker="kiwoom",
        env=env,
        account_no=account_no,
        key=key,
        secret=secret,
        label="키움 모의",
    )


async def fund_from_broker(hoga: Any, user_id: int, account_id: int) -> int:
    """Record the broker's cash (the adapter's own ``balance()``) as the account's opening
    balance in hoga's ledger; returns it."""
    ref = await hoga.accounts.ref_for(user_id, account_id)
    bal = await hoga.brokers["kiwoom"].balance(ref)
    await fund(hoga, user_id, account_id, bal.cash)
    cash: int = bal.cash
    return cash


async def kiwoom_user(
    h: Harness, fake: KiwoomFake, name: str = "kim", **link: Any
) -> tuple[dict[str, str], int, int]:
    """A premium user with a Kiwoom account on the fake, funded with the broker's cash:
    (headers, user id, account id)."""
    headers = await h.user(name, "premium")
    uid = await h.me(headers)
    acct = await link_account(h.http, headers, fake, **link)
    await fund_from_broker(h.hoga, uid, acct["id"])
    return headers, uid, int(acct["id"])


@dataclass
class Resting:
    """A Kiwoom user's limit buy resting at the broker below the market, ACCEPTED by hoga."""

    headers: dict[str, str]
    uid: int
    account_id: int
    order: dict[str, Any]
    price: int
    inst: Instrument


async def resting_buy(
    h: Harness, fake: KiwoomFake, qty: int = 2, below: float = 0.8, symbol: str = "005930"
) -> Resting:
    """Link and fund a Kiwoom user and rest a limit buy of ``qty`` at ``below`` the last trade."""
    headers, uid, account_id = await kiwoom_user(h, fake)
    tick = await traded(fake, symbol)
    inst = fake.market.instrument(symbol)
    assert inst is not None
    price = krx.round_to_tick(int(tick.price * below), inst.kind)
    order = await h.submit(
        headers, symbol=symbol, type="limit", qty=qty, price=price, account_id=account_id
    )
    accepted = await h.until_status(headers, order["id"], "ACCEPTED")
    return Resting(headers, uid, account_id, accepted, price, inst)


def pumping(fake: KiwoomFake) -> Callable[[], object]:
    """A ``step`` for ``Harness.until_status``: trade the fake's market a little between looks."""
    return lambda: fake.pump(10)
