"""Three real ``hoga serve`` processes in cluster mode, a load of orders, and the counts.

Each server has its own data directory (so its own paper broker journal: the journal of a
server is the record of what *that* server sent, with the time) and all share one PostgreSQL
database and one NATS server under a prefix of their own.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
import json
import secrets
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import httpx

from tests.e2e.conftest import Server, start_server
from tests.helpers import ADMIN_PASSWORD, PASSWORD
from tests.pg_support import raw_dsn

WORKING = {"ACCEPTED", "PARTIALLY_FILLED"}
FINAL = {"FILLED", "CANCELLED", "REJECTED", "DENIED", "EXPIRED"}


def cluster_env(pg_url: str, nats_url: str, prefix: str, name: str, ttl: float) -> dict[str, str]:
    return {
        "HOGA_DATABASE_URL": pg_url,
        "HOGA_CLUSTER_NATS_URL": nats_url,
        "HOGA_CLUSTER_PREFIX": prefix,
        "HOGA_CLUSTER_INSTANCE_ID": name,
        "HOGA_CLUSTER_LEASE_TTL": str(ttl),
        "HOGA_ADMIN_PASSWORD": ADMIN_PASSWORD,
        "HOGA_MAX_USERS": "40",
        "HOGA_GLOBAL_ORDER_RATE": "200",
        "HOGA_DUPLICATE_WINDOW": "0",
        "HOGA_SIM_TICKS_PER_SECOND": "50",
        "HOGA_LOG_LEVEL": "info",
    }


def shared_secrets() -> dict[str, str]:
    return {
        "HOGA_MASTER_KEY": base64.b64encode(secrets.token_bytes(32)).decode(),
        "HOGA_JWT_SECRET": secrets.token_urlsafe(32),
    }


def start_cluster(tmp_path: Path, envs: list[dict[str, str]]) -> list[Server]:
    """The first server alone (it migrates and creates the first admin), then the others side
    by side."""
    for i in range(len(envs)):
        (tmp_path / f"n{i}").mkdir(parents=True, exist_ok=True)
    first = start_server(tmp_path / "n0" / "var", "n0.log", **envs[0])
    with ThreadPoolExecutor(len(envs)) as pool:
        futures = [
            pool.submit(start_server, tmp_path / f"n{i}" / "var", f"n{i}.log", **envs[i])
            for i in range(1, len(envs))
        ]
    started = [first, *(f.result() for f in futures if f.exception() is None)]
    if len(started) < len(envs):
        stop_all(started)  # none left running when one refused to start
        raise next(e for f in futures if (e := f.exception()) is not None)
    return started


def login(url: str, username: str, password: str) -> dict[str, str]:
    r = httpx.post(
        f"{url}/api/auth/login", json={"username": username, "password": password}, timeout=30
    )
    assert r.status_code == 200, r.text
    return {"Authorization": f"Bearer {r.json()['access_token']}"}


def make_users(urls: list[str], n: int) -> tuple[list[int], list[dict[str, str]]]:
    """``n`` users (tier basic) created through the servers in turn - their tokens work on
    every one. Returns their ids and request headers, in order."""
    admin = login(urls[0], "admin", ADMIN_PASSWORD)

    def make(i: int) -> tuple[int, dict[str, str]]:
        url = urls[i % len(urls)]
        r = httpx.post(
            f"{url}/api/admin/users",
            headers=admin,
            json={"username": f"trader{i:02d}", "password": PASSWORD, "tier": "basic"},
            timeout=60,
        )
        assert r.status_code == 201, r.text
        return int(r.json()["id"]), login(url, f"trader{i:02d}", PASSWORD)

    with ThreadPoolExecutor(6) as pool:
        made = list(pool.map(make, range(n)))
    return [m[0] for m in made], [m[1] for m in made]


@dataclass
class Load:
    """Orders posted to the servers round-robin from a few threads; what was acknowledged."""

    servers: list[Server]
    users: list[dict[str, str]]
    acked: dict[str, int] = field(default_factory=dict)  # client order id -> order id
    refused: int = 0
    failed: int = 0
    down: set[str] = field(default_factory=set)  # server URLs the balancer took out
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _seq: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    def post_one(self, user: int) -> None:
        n = next(self._seq)
        live = [s for s in self.servers if s.url not in self.down]
        server = live[n % len(live)]
        cid = f"u{user}-o{n}"
        body = {"symbol": "005930", "side": "buy", "type": "market", "qty": 1,
                "client_order_id": cid}  # fmt: skip
        try:
            r = httpx.post(f"{server.url}/api/orders", headers=self.users[user], json=body,
                           timeout=30)  # fmt: skip
        except httpx.HTTPError:
            with self._lock:
                self.failed += 1
            return
        with self._lock:
            if r.status_code in (200, 201, 202):
                self.acked[cid] = r.json()["id"]
            else:
                self.refused += 1

    def burst(self, per_user: int, threads: int = 8) -> None:
        jobs = [u for _ in range(per_user) for u in range(len(self.users))]
        with ThreadPoolExecutor(threads) as pool:
            list(pool.map(self.post_one, jobs))


async def _orders(pg_url: str) -> dict[str, dict[str, Any]]:
    conn = await asyncpg.connect(raw_dsn(pg_url.replace("postgresql+asyncpg", "postgresql")))
    try:
        rows = await conn.fetch(
            "select id, user_id, client_order_id, status, broker_order_id from orders"
        )
    finally:
        await conn.close()
    return {r["client_order_id"]: dict(r) for r in rows}


def orders_in_db(pg_url: str) -> dict[str, dict[str, Any]]:
    return asyncio.run(_orders(pg_url))


def placements(data_dir: Path) -> list[dict[str, Any]]:
    """What one server's paper broker booked (a torn last line after kill -9 is skipped)."""
    journal = data_dir / "paper" / "journal.jsonl"
    out = []
    if journal.exists():
        for line in journal.read_text(encoding="utf-8").splitlines():
            try:
                rec = json.loads(line)
            except ValueError:
                continue
            if rec.get("t") == "place":
                out.append(rec)
    return out


async def _kv_values(nats_url: str, bucket: str) -> dict[str, str]:
    import nats

    nc = await nats.connect(nats_url, allow_reconnect=False)
    try:
        kv = await nc.jetstream().key_value(bucket)
        try:
            keys = await kv.keys()
        except Exception:
            return {}
        out = {}
        for k in keys:
            with contextlib.suppress(Exception):  # expired between keys() and get()
                out[k] = (await kv.get(k)).value.decode()
        return out
    finally:
        await nc.close()


def lease_holders(nats_url: str, prefix: str) -> dict[str, str]:
    """Lease name -> holder, read straight from the bucket."""
    return asyncio.run(_kv_values(nats_url, f"{prefix}_leases"))


def stop_all(servers: list[Server]) -> None:
    for s in servers:
        if s.proc.poll() is None:
            s.proc.kill()
            s.proc.wait(10)
