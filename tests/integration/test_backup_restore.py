"""hoga backup of a running server under order load, hoga restore elsewhere (SQLite and
PostgreSQL): checksums, equal tables, a usable vault, a restored server that starts paused and
opens no broker session until resumed."""

from __future__ import annotations

import asyncio
import contextlib
import json
import tarfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from hoga.ops.backup import BackupError, archives, create_backup, prune
from hoga.ops.restore import restore_backup
from hoga.store import tables as t
from hoga.store.db import SYSTEM, Database
from tests.helpers import Harness, eventually, make_settings, running
from tests.pg_roles import documented_roles, login_url, separate_logins

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
async def _pg_database() -> AsyncIterator[tuple[str, dict[str, Any]]]:
    """A fresh database with its owner, app and system roles made as docs/operations.md says
    (unique names, dropped after), and the server's three logins: the app URL and the
    owner/system URLs as settings. As in production no login is a superuser, so pg_dump must
    run as the system role and pg_restore as the owner."""
    async with documented_roles() as prefix:
        yield login_url(f"{prefix}_app", prefix), separate_logins(prefix)


@contextlib.asynccontextmanager
async def _target(
    kind: str, tmp_path: Path, name: str
) -> AsyncIterator[tuple[str, dict[str, Any]]]:
    if kind == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / name / 'var' / 'hoga.db'}", {}
    else:
        async with _pg_database() as target:
            yield target


async def _tables(url: str, options: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    """Every row of every table, in primary-key order (as the system role: RLS admits all)."""
    db = Database(url, **make_settings(Path("unused"), url, **options).database_options())
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


async def _load(
    h: Harness, users: list[dict[str, str]], n: int, progress: list[int], stop: asyncio.Event
) -> None:
    """Orders per user, market and resting limit orders, with the market trading: at least
    ``n`` rounds, and on until ``stop`` is set plus two more rounds - so orders flow before,
    during and after a backup however slow the machine is."""
    i, after_stop = 0, 0
    while i < n or after_stop < 2:
        after_stop += stop.is_set()
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
        i += 1


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
    async with (
        _target(kind, tmp_path, "src") as (src_url, src_opts),
        running(tmp_path / "src", src_url, **src_opts) as h,
    ):
        alice = await h.user("alice", "premium")
        bob = await h.user("bob", "premium")
        r = await h.http.post("/api/broker-accounts", json=KIWOOM, headers=alice)
        assert r.status_code == 201, r.text
        kiwoom_id = r.json()["id"]
        h.pump(300)

        # Backup A while orders flow.
        progress: list[int] = []
        stop = asyncio.Event()
        load = asyncio.create_task(_load(h, [alice, bob], 14, progress, stop))

        async def started() -> bool:
            return len(progress) >= 8

        await eventually(started, within=30, what="orders flowing")
        a = await create_backup(h.hoga.settings, out)
        assert not load.done(), "the backup must be taken while orders flow"
        stop.set()
        await load
        assert len(progress) >= 28

        # Backup B of the same running server, now quiet: the restore must equal it exactly.
        await h.hoga.paper.drain()
        b = await create_backup(h.hoga.settings, out)
        source = await _tables(src_url, src_opts)
        token_before = alice

    assert a.manifest["database"] == {"sqlite": "sqlite", "postgres": "postgresql"}[kind]
    assert a.manifest["schema_revision"]
    assert set(a.manifest["files"]) >= {"keys/master.key", "keys/jwt.key", "paper/journal.jsonl"}
    with tarfile.open(a.path) as tar:
        doc = json.loads(tar.extractfile("manifest.json").read())  # type: ignore[union-attr]
    assert doc == a.manifest and all(len(f["sha256"]) == 64 for f in doc["files"].values())

    # A: a consistent snapshot taken mid-load.
    async with _target(kind, tmp_path, "restore-a") as (url_a, opts_a):
        settings_a = make_settings(tmp_path / "restore-a", url_a, **opts_a)
        result = await restore_backup(settings_a, a.path)
        assert result.credentials_verified >= 1
        snap = await _tables(url_a, opts_a)
        _consistent(snap)
        assert 8 <= len(snap["orders"]) < len(source["orders"])
        # Rows that are never rewritten are identical to the source's.
        for name in ("fills", "cash_ledger"):
            src_rows = {r["id"]: r for r in source[name]}
            assert all(src_rows[r["id"]] == r for r in snap[name])

    # B: every table equal; the vault opens; the server starts paused with no broker session.
    async with _target(kind, tmp_path, "restore-b") as (url_b, opts_b):
        settings_b = make_settings(tmp_path / "restore-b", url_b, **opts_b)
        result = await restore_backup(settings_b, b.path)
        restored = await _tables(url_b, opts_b)
        assert _without_restore_marks(restored) == _without_restore_marks(source)
        pause = next(r for r in restored["system_state"] if r["key"] == "server.paused")
        assert pause["value"]["paused"] is True

        async with running(tmp_path / "restore-b", url_b, **opts_b) as r_h:
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
            r = await r_h.post_order(alice, qty=1)
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
