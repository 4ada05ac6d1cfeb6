"""Helpers for tests that drive KIS against the KIS fake over loopback: the fake, an adapter
pointed at it (``kis_world``), and an account linked on a running hoga (shape: tests/broker_support.py)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from hoga.brokers.base import AccountRef, ExecutionEvent, MemoryTokenStore, TokenStore
from hoga.brokers.kis import KisBroker
from hoga.domain.clock import SystemClock
from hoga.domain.secret import Secret
from hoga.fakes.kis import KisFake, KisFakeAccount
from tests.broker_support import fund, link_fake_account
from tests.helpers import Harness, eventually, running

# Shapes as KIS issues them (kis.md §1: 36-character key, 180-character secret).
KEY = "PSkisTEST" + "k" * 27
SECRET = "sEcReT" + "x" * 168 + "ZZ9999"
KEY2 = "PSkisTWO0" + "m" * 27
SECRET2 = "tWoSeCrEt" + "y" * 171
ACCOUNT = "50123456-01"
HTS = "hogatest"


def key_n(n: int) -> tuple[str, str]:
    """The n-th distinct app key/secret pair (for multi-key tests)."""
    return f"PSkisN{n:03d}" + "q" * 27, f"secretN{n:03d}" + "w" * 170


def issue_token(
    base: str, key: str = KEY, secret: str = SECRET, timeout: float = 5
) -> httpx.Response:
    """Ask a KIS fake listening at ``base`` for an access token (``POST /oauth2/tokenP``)."""
    body = {"grant_type": "client_credentials", "appkey": key, "appsecret": secret}
    return httpx.post(f"{base}/oauth2/tokenP", json=body, timeout=timeout)


def account_ref(
    fake: KisFake,
    *,
    account_id: int = 1,
    env: str | None = None,
    account_no: str = ACCOUNT,
    key: str = KEY,
    secret: str = SECRET,
    hts_id: str | None = HTS,
) -> AccountRef:
    return AccountRef(
        account_id=account_id,
        user_id=1,
        broker="kis",
        env=env or fake.env,
        account_no=account_no,
        app_key=Secret(key),
        app_secret=Secret(secret),
        hts_id=hts_id,
        base_url=fake.base_url,
        ws_url=fake.ws_url,
    )


@dataclass
class World:
    fake: KisFake
    broker: KisBroker
    account: AccountRef
    store: TokenStore
    events: list[tuple[int, ExecutionEvent]] = field(default_factory=list)

    async def settle(self, check: Callable[[], bool], what: str, within: float = 15.0) -> None:
        """Trade the fake's market in small steps until ``check()`` holds (bounded)."""

        async def drained() -> bool:
            await self.broker.drain()
            return check()

        await eventually(drained, within, what, step=lambda: self.fake.pump(25), pause=0.01)

    async def notices_ready(self) -> None:
        key = self.broker.key(self.account)

        async def registered() -> bool:
            return key.socket.registrations > 0

        await eventually(registered, 10, "execution notices to be registered")


@contextlib.asynccontextmanager
async def kis_fake(env: str, accounts: list[KisFakeAccount], **kw: Any) -> AsyncIterator[KisFake]:
    """A started KIS fake whose market has traded a while (seed 3 unless given)."""
    fake = KisFake(env=env, accounts=accounts, seed=kw.pop("seed", 3), **kw)
    await fake.start()
    fake.pump(400)
    try:
        yield fake
    finally:
        await fake.stop()


@contextlib.asynccontextmanager
async def kis_world(
    *,
    env: str = "real",
    accounts: list[KisFakeAccount] | None = None,
    store: TokenStore | None = None,
    broker_kw: dict[str, Any] | None = None,
    **fake_kw: Any,
) -> AsyncIterator[World]:
    fake = KisFake(
        env=env,
        accounts=accounts
        if accounts is not None
        else [KisFakeAccount(ACCOUNT, KEY, SECRET, hts_id=HTS)],
        seed=fake_kw.pop("seed", 7),
        **fake_kw,
    )
    await fake.start()
    fake.pump(400)
    store = store or MemoryTokenStore()
    broker = KisBroker(SystemClock(), store, **(broker_kw or {}))
    world = World(fake, broker, account_ref(fake), store)

    async def sink(account_id: int, event: ExecutionEvent) -> None:
        world.events.append((account_id, event))

    broker.set_event_sink(sink)
    await broker.start()
    try:
        yield world
    finally:
        await broker.stop()
        await fake.stop()


# ------------------------------------------------------------------ a running hoga


@contextlib.asynccontextmanager
async def kis_running(
    tmp_path: Path,
    db_url: str,
    *,
    env: str = "real",
    accounts: list[KisFakeAccount] | None = None,
    **settings: Any,
) -> AsyncIterator[tuple[KisFake, Harness]]:
    """The KIS fake (one account with an HTS id unless ``accounts`` says otherwise) and a
    hoga to link it to."""
    default = [KisFakeAccount(ACCOUNT, KEY, SECRET, hts_id=HTS)]
    async with (
        kis_fake(env, default if accounts is None else accounts) as fake,
        running(tmp_path, db_url, **settings) as h,
    ):
        yield fake, h


async def link_account(
    http: Any,
    headers: dict[str, str],
    fake: KisFake,
    *,
    account_no: str = ACCOUNT,
    key: str = KEY,
    secret: str = SECRET,
    hts_id: str | None = HTS,
    seen: list[str] | None = None,
) -> dict[str, Any]:
    """Link a KIS account pointing at the fake through the API; returns the public view."""
    return await link_fake_account(
        http,
        headers,
        fake,
        broker="kis",
        env=fake.env,
        account_no=account_no,
        key=key,
        secret=secret,
        seen=seen,
        **({"hts_id": hts_id} if hts_id else {}),
    )


async def kis_user(
    h: Harness, fake: KisFake, name: str, cash: int = 50_000_000, **link: Any
) -> tuple[dict[str, str], int, int]:
    """A premium user with a KIS account on the fake and ``cash`` in hoga's ledger:
    (headers, user id, account id)."""
    headers = await h.user(name, "premium")
    uid = await h.me(headers)
    account_id = int((await link_account(h.http, headers, fake, **link))["id"])
    await fund(h.hoga, uid, account_id, cash)
    return headers, uid, account_id


async def trade_until(
    h: Harness, fake: KisFake, check: Callable[[], Awaitable[bool]], what: str, within: float = 30.0
) -> None:
    """Trade the fake's market in small steps until ``await check()`` holds (bounded)."""

    async def drained() -> bool:
        await h.hoga.kis.drain()
        return await check()

    await eventually(drained, within, what, step=lambda: fake.pump(20), pause=0.01)
