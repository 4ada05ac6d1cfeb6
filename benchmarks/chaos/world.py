"""The people and accounts a chaos run trades with, set up through hoga's own API.

Every user is on the ``premium`` tier, whose limits the admin raises first so that the risk gate
only refuses what is wrong with an order, never the run's volume. Paper users trade their paper
account; KIS and Kiwoom users link a mock account at the matching fake (``base_url``/``ws_url``)
and test it, which adopts the fake's cash as the account's opening books.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

import httpx

from benchmarks.chaos.procs import FakeProcess
from benchmarks.server import ADMIN_PASSWORD, HogaProcess, access_token, bearer, new_user

PASSWORD = "chaos-user-password-1"
FAKE_CASH = 10_000_000_000


@dataclass
class Account:
    """One account a user trades in the run."""

    user: str
    broker: str  # paper | kis | kiwoom
    account_id: int
    broker_account: str | None = None  # the fake's account number (digits only)
    headers: dict[str, str] = field(default_factory=dict)


def fake_accounts(broker: str, count: int) -> list[dict[str, Any]]:
    """The accounts a fake is started with (credentials made up, shaped like the real ones)."""
    out = []
    for n in range(1, count + 1):
        if broker == "kis":
            out.append(
                {
                    "account_no": f"{50_100_000 + n}-01",
                    "app_key": f"PSchaos{n:03d}" + "k" * 26,
                    "app_secret": f"chaossecret{n:03d}" + "s" * 160,
                    "hts_id": f"chaos{n:03d}",
                    "cash": FAKE_CASH,
                }
            )
        else:
            out.append(
                {
                    "account_no": f"{5_020_000_000 + n * 100 + 1}",
                    "app_key": f"KWchaos{n:03d}keyabcdef",
                    "app_secret": f"KWchaossecret{n:03d}-never-printed",
                    "cash": FAKE_CASH,
                }
            )
    return out


class World:
    """The server under test, its fakes, and the accounts the run sends orders for."""

    def __init__(self, server: HogaProcess, fakes: dict[str, FakeProcess]) -> None:
        self.server = server
        self.fakes = fakes
        self.accounts: list[Account] = []
        self.http = httpx.AsyncClient(base_url=server.url, timeout=httpx.Timeout(15.0))

    async def close(self) -> None:
        await self.http.aclose()

    async def login(self, username: str, password: str = PASSWORD) -> dict[str, str]:
        return bearer(await access_token(self.http, username, password))

    async def call(self, account: Account, method: str, path: str, **kw: Any) -> httpx.Response:
        """An API call as the account's user; signs in again once if the token was refused."""
        r = await self.http.request(method, path, headers=account.headers, **kw)
        if r.status_code == 401:
            account.headers = await self.login(account.user)
            r = await self.http.request(method, path, headers=account.headers, **kw)
        return r

    async def build(self, per_broker: int, brokers: list[str]) -> None:
        admin = await self.login("admin", ADMIN_PASSWORD)
        r = await self.http.patch(
            "/api/admin/tiers/premium",
            headers=admin,
            json={
                "daily_trades": 1_000_000,
                "api_calls_per_minute": 100_000,
                "max_positions": 10_000,
            },
        )
        r.raise_for_status()
        for broker in brokers:
            creds = fake_accounts(broker, per_broker) if broker != "paper" else []
            for n in range(1, per_broker + 1):
                user = f"chaos-{broker}-{n}"
                headers = bearer(await new_user(self.http, admin, user, PASSWORD))
                if broker == "paper":
                    listed = await self.http.get("/api/broker-accounts", headers=headers)
                    (paper,) = [a for a in listed.json()["accounts"] if a["broker"] == "paper"]
                    self.accounts.append(Account(user, "paper", paper["id"], None, headers))
                    continue
                self.accounts.append(await self._link(user, headers, broker, creds[n - 1]))

    async def _link(
        self, user: str, headers: dict[str, str], broker: str, cred: dict[str, Any]
    ) -> Account:
        fake = self.fakes[broker]
        body: dict[str, Any] = {
            "broker": broker,
            "env": "mock",
            "account_no": cred["account_no"],
            "app_key": cred["app_key"],
            "app_secret": cred["app_secret"],
            "base_url": fake.url,
            "ws_url": fake.url.replace("http://", "ws://")
            + ("/api/dostk/websocket" if broker == "kiwoom" else ""),
            "label": f"chaos {broker}",
        }
        if broker == "kis":
            body["hts_id"] = cred["hts_id"]
        r = await self.http.post("/api/broker-accounts", headers=headers, json=body)
        if r.status_code != 201:
            raise RuntimeError(f"linking a {broker} account failed: {r.status_code} {r.text}")
        account_id = r.json()["id"]
        # The first successful test adopts the broker's cash as the opening books. The fake
        # may still be warming up (rate window, first token): try a few times.
        for _ in range(10):
            t = await self.http.post(f"/api/broker-accounts/{account_id}/test", headers=headers)
            if t.status_code == 200 and t.json().get("ok"):
                break
            await asyncio.sleep(1.0)
        else:
            raise RuntimeError(f"the {broker} account never tested ok: {t.text}")
        digits = str(cred["account_no"]).replace("-", "")
        return Account(user, broker, account_id, digits, headers)
