"""Shared set-up for the KIS tests: a fake over loopback and an adapter pointed at it."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

from hoga.brokers.base import AccountRef, ExecutionEvent, MemoryTokenStore, TokenStore
from hoga.brokers.kis import KisBroker
from hoga.domain.clock import SystemClock
from hoga.domain.secret import Secret
from hoga.fakes.kis import KisFake, KisFakeAccount

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


def ref(
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

    async def settle(self, check: Callable[[], bool], what: str, rounds: int = 200) -> None:
        """Trade the fake's market in small steps until ``check()`` holds (bounded)."""
        for _ in range(rounds):
            await self.broker.drain()
            if check():
                return
            self.fake.pump(25)
            await asyncio.sleep(0.005)
        raise AssertionError(f"never happened: {what}")

    async def notices_ready(self) -> None:
        key = self.broker.key(self.account)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 10
        while key.socket.registrations == 0:
            if loop.time() > deadline:
                raise AssertionError("execution notices were never registered")
            await asyncio.sleep(0.01)


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
    world = World(fake, broker, ref(fake), store)

    async def sink(account_id: int, event: ExecutionEvent) -> None:
        world.events.append((account_id, event))

    broker.set_event_sink(sink)
    await broker.start()
    try:
        yield world
    finally:
        await broker.stop()
        await fake.stop()
