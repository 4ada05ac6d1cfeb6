"""hoga backup of a running server under order load, hoga restore elsewhere (SQLite and
PostgreSQL): checksums, equal tables, a usable vault, a restored server that starts paused and
opens no broker session until resumed."""

from __future__ import annotations

import asyncio
import contextlib
import json
import tarfile
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from sqlalchemy import select
from sqlalchemy.engine import make_url

from hoga.ops.backup import BackupError, archives, create_backup, prune
from hoga.ops.restore import restore_backup
from hoga.store import tables as t
from hoga.store.db import SYSTEM, Database
from tests.conftest import PG_URL, _raw_dsn
from tests.helpers import Harness, eventually, make_settings, running

KIWOOM = {
    "broker": "kiwoom",
    "env": "mock",
    "account_no": "1234567890",
    "app_key": "backup-app-key-0123456789",
    "app_secret": "backup-app-secret-" + "s" * 30,
    # A closed loopback port: nothing outside this machine is ever contacted.
    "base_url": "http://127.0.0.1:9",
    "ws_url": "ws://127.0.0.1:9",
}


@contextlib.asynccontextmanager
async def _pg_database() -> AsyncIterator[str]:
    """A fresh database owned by a fresh role that is NOT a superuser (as in production: the
    owner is subject to the forced row-level security, so pg_dump must run as the system)."""
    suffix = uuid.uuid4().hex[:10]
    name, role = f"hoga_r_{suffix}", f"hoga_owner_{suffix}"
    admin = await asyncpg.connect(_raw_dsn(PG_URL))
    try:
        await admin.execute(f'create role "{role}" login createrole')
        await admin.execute(f'create database "{name}" owner "{role}"')
    finally:
        await admin.close()
    try:
        yield (
            make_url(PG_URL).set(username=role, database=name).render_as_string(hide_password=False)
        )
    finally:
        admin = await asyncpg.connect(_raw_dsn(PG_URL))
        try:
            await admin.execute(f'drop database if exists "{name}" with (force)')
            await admin.execute(f'drop role if exists "{role}"')
        finally:
            await admin.close()


@contextlib.asynccontextmanager
async def _target(kind: str, tmp_path: Path, name: str) -> AsyncIterator[str]:
    if kind == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / name / 'var' / 'hoga.db'}"
    else:
        async with _pg_database() as url:
            yield url


async def _tables(url: str) -> dict[str, list[dict[str, Any]]]:
    """Every row of every table, in primary-key order (as the owner, RLS admitting SYSTEM)."""
    db = Database(url, app_role=None)
    await db.start()
    out: dict[str, list[dict[str, Any]]] = {}
    try:
        async with db.tx(SYSTEM) as conn:
            for table in t.metadata.sorted_tables:
                pk = list(table.primary_key.columns)
                rows = (await conn.execute(select(table).order_by(*pk))).mappings().all()
                out[table.name] = [dict(r) for r in rows]
    finally:
        await db.close()
    return out


async def _load(h: Harness, users: list[dict[str, str]], n: int, progress: list[int]) -> None:
    """``n`` orders per user, market and resting limit orders, with the market trading."""
    for i in range(n):
        for headers in users:
            body: dict[str, Any] = (
                {"symbol": "005930", "side": "buy", "type": "market", "qty": 1}
                if i % 2 == 0
                else {
                    "symbol": "000660",
                    "side": "buy",
                    "type": "limit",
                    "qty": 1,
                    "price": 150_000,
                }
            )
            r = await h.http.post("/api/orders", json=body, headers=headers)
            assert r.status_code == 202, r.text
            progress.append(r.json()["id"])
        h.pump(10)
        await h.hoga.paper.drain()
        await asyncio.sleep(0)


def _consistent(tables: dict[str, list[dict[str, Any]]]) -> None:
    """A snapshot, not a torn copy: fills belong to orders and add up to their filled
    quantity; cash equals its ledger."""
    orders = {o["id"]: o for o in tables["orders"]}
    filled: dict[int, int] = {}
    for f in tables["fills"]:
        assert f["order_id"] in orders
        filled[f["order_id"]] = filled.get(f["order_id"], 0) + f["qty"]
    for oid, o in orders.items():
        assert o["filled_qty"] == filled.get(oid, 0), oid
    ledger: dict[int, int] = {}
    for row in tables["cash_ledger"]:
        ledger[row["account_id"]] = ledger.get(row["account_id"], 0) + row["amount"]
    for acct in tables["broker_accounts"]:
        assert acct["cash"] == ledger.get(acct["id"], 0), acct["id"]


def _without_restore_marks(
    tables: dict[str, list[dict[str, Any]]],
) -> dict[str, list[dict[str, Any]]]:
    """The restore writes the paused state and its audit entry; nothing else may differ."""
    out = dict(tables)
    out["system_state"] = [
        r for r in tables["system_state"] if not r["key"].startswith("server.paused")
    ]
    out["audit_log"] = [r for r in tables["audit_log"] if r["action"] != "server.pause"]
    return out


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def kind(request: pytest.FixtureRequest) -> str:
    if request.param == "postgres":
        request.getfixturevalue("pg_available")
    return str(request.param)


async def test_backup_under_load_restores_equal_and_paused(kind: str, tmp_path: Path) -> None:
    out = tmp_path / "backups"
    async with _target(kind, tmp_path, "src") as src_url, running(tmp_path / "src", src_url) as h:
        alice = await h.user("alice", "premium")
        bob = await h.user("bob", "premium")
        r = await h.http.post("/api/broker-accounts", json=KIWOOM, headers=alice)
        assert r.status_code == 201, r.text
        kiwoom_id = r.json()["id"]
        h.pump(300)

        # Backup A while orders flow.
        progress: list[int] = []
        load = asyncio.create_task(_load(h, [alice, bob], 14, progress))

        async def started() -> bool:
            return len(progress) >= 8

        await eventually(started, within=30, what="orders flowing")
        a = await create_backup(h.hoga.settings, out)
        assert not load.done(), "the backup must be taken while orders flow"
        await load
        assert len(progress) == 28

        # Backup B of the same running server, now quiet: the restore must equal it exactly.
        await h.hoga.paper.drain()
        b = await create_backup(h.hoga.settings, out)
        source = await _tables(src_url)
        token_before = alice

    assert a.manifest["database"] == {"sqlite": "sqlite", "postgres": "postgresql"}[kind]
    assert a.manifest["schema_revision"]
    assert set(a.manifest["files"]) >= {"keys/master.key", "keys/jwt.key", "paper/journal.jsonl"}
    with tarfile.open(a.path) as tar:
        doc = json.loads(tar.extractfile("manifest.json").read())  # type: ignore[union-attr]
    assert doc == a.manifest and all(len(f["sha256"]) == 64 for f in doc["files"].values())

    # A: a consistent snapshot taken mid-load.
    async with _target(kind, tmp_path, "restore-a") as url_a:
        settings_a = make_settings(tmp_path / "restore-a", url_a)
        result = await restore_backup(settings_a, a.path)
        assert result.credentials_verified >= 1
        snap = await _tables(url_a)
        _consistent(snap)
        assert 8 <= len(snap["orders"]) < len(source["orders"])
        # Rows that are never rewritten are identical to the source's.
        for name in ("fills", "cash_ledger"):
            src_rows = {r["id"]: r for r in source[name]}
            assert all(src_rows[r["id"]] == r for r in snap[name])

    # B: every table equal; the vault opens; the server starts paused with no broker session.
    async with _target(kind, tmp_path, "restore-b") as url_b:
        settings_b = make_settings(tmp_path / "restore-b", url_b)
        result = await restore_backup(settings_b, b.path)
        restored = await _tables(url_b)
        assert _without_restore_marks(restored) == _without_restore_marks(source)
        pause = next(r for r in restored["system_state"] if r["key"] == "server.paused")
        assert pause["value"]["paused"] is True

        async with running(tmp_path / "restore-b", url_b) as r_h:
            hoga = r_h.hoga
            assert hoga.control.paused
            assert not hoga.raw_brokers["kiwoom"]._accounts, "no broker session while paused"
            # An account linked while paused opens none either.
            bob = await r_h.login("bob")
            r = await r_h.http.post(
                "/api/broker-accounts", json={**KIWOOM, "account_no": "1234567891"}, headers=bob
            )
            assert r.status_code == 201, r.text
            assert not hoga.raw_brokers["kiwoom"]._accounts
            # The vault decrypts the restored credentials; the old access token still works.
            users = {u.username: u for u in await hoga.auth.list_users()}
            ref = await hoga.accounts.ref_for(users["alice"].id, kiwoom_id)
            assert ref.app_secret is not None and ref.app_secret.reveal() == KIWOOM["app_secret"]
            me = await r_h.http.get("/api/me", headers=token_before)
            assert me.status_code == 200
            # Orders are accepted but held while paused; resuming sends them.
            r = await r_h.http.post(
                "/api/orders",
                json={"symbol": "005930", "side": "buy", "type": "market", "qty": 1},
                headers=alice,
            )
            assert r.status_code == 202
            order_id = r.json()["id"]
            assert (await r_h.order(alice, order_id))["status"] == "QUEUED"
            admin = await r_h.admin()
            assert (await r_h.http.post("/api/admin/resume", headers=admin)).status_code == 200
            assert len(hoga.raw_brokers["kiwoom"]._accounts) == 2, "resuming opens the sessions"
            await r_h.wait_status(alice, order_id, "FILLED")


async def test_restore_refuses_a_non_empty_target_and_a_damaged_archive(tmp_path: Path) -> None:
    src_url = f"sqlite+aiosqlite:///{tmp_path / 'src' / 'var' / 'hoga.db'}"
    async with running(tmp_path / "src", src_url) as h:
        good = await create_backup(h.hoga.settings, tmp_path / "backups")

    # Not empty: the source's own data dir.
    with pytest.raises(BackupError, match="not empty"):
        await restore_backup(make_settings(tmp_path / "src", src_url), good.path)

    # Damaged: one byte of the database changed, manifest untouched.
    damaged = tmp_path / "damaged.tar.gz"
    with tarfile.open(good.path) as src, tarfile.open(damaged, "w:gz") as dst:
        for m in src.getmembers():
            data = src.extractfile(m).read()  # type: ignore[union-attr]
            if m.name == "database/hoga.db":
                data = data[:-1] + bytes([data[-1] ^ 1])
            import io

            dst.addfile(m, io.BytesIO(data))
    target = tmp_path / "t1"
    settings = make_settings(target, f"sqlite+aiosqlite:///{target / 'var' / 'hoga.db'}")
    with pytest.raises(BackupError, match="checksum mismatch"):
        await restore_backup(settings, damaged)
    assert not (target / "var").exists(), "nothing is left behind"

    # A wrong vault key: the restore fails on the credentials and leaves the target empty.
    async with running(
        tmp_path / "src2", f"sqlite+aiosqlite:///{tmp_path / 'src2' / 'hoga.db'}"
    ) as h:
        alice = await h.user("alice")
        assert (
            await h.http.post("/api/broker-accounts", json=KIWOOM, headers=alice)
        ).status_code == 201
        with_creds = await create_backup(h.hoga.settings, tmp_path / "backups2")
    import base64

    target = tmp_path / "t2"
    settings = make_settings(
        target,
        f"sqlite+aiosqlite:///{target / 'var' / 'hoga.db'}",
        master_key=base64.b64encode(b"k" * 32).decode(),
    )
    with pytest.raises(BackupError, match="does not open broker account"):
        await restore_backup(settings, with_creds.path)
    assert not (target / "var").exists()


def test_retention_keeps_the_newest(tmp_path: Path) -> None:
    for i in range(6):
        (tmp_path / f"hoga-backup-2026120{i}T000000000000Z.tar.gz").write_bytes(b"x")
    (tmp_path / "unrelated.txt").write_text("keep me")
    removed = prune(tmp_path, 3)
    assert [p.name[12:20] for p in removed] == ["20261200", "20261201", "20261202"]
    assert [p.name[12:20] for p in archives(tmp_path)] == ["20261203", "20261204", "20261205"]
    assert (tmp_path / "unrelated.txt").exists()
