"""The store under faults: a transaction is all or nothing, and a storage fault surfaces as
``StorageUnavailable``/``StorageFull`` (503), with real SQLite and PostgreSQL errors."""

from __future__ import annotations

import asyncio
from datetime import datetime
from pathlib import Path

import asyncpg
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from hoga.domain.clock import KST
from hoga.domain.errors import StorageFull, StorageUnavailable
from hoga.store import tables as t
from hoga.store.db import SYSTEM, Database
from tests.faults import sqlite_full_on_insert
from tests.pg_support import raw_dsn


async def _put(conn: AsyncConnection, key: str) -> None:
    await conn.execute(
        t.system_state.insert().values(key=key, value={}, updated_at=datetime.now(KST))
    )


async def _count(db: Database) -> int:
    async with db.tx(SYSTEM) as conn:
        return int(
            (
                await conn.execute(
                    text("select count(*) from system_state where key like 'probe%'")
                )
            ).scalar_one()
        )


async def test_a_savepoint_never_commits_its_transaction_early(db: Database) -> None:
    """A transaction that reads, opens a savepoint (as booking a fill does), then fails later
    leaves nothing behind: the savepoint's RELEASE is not a commit."""

    async def book() -> None:
        async with db.tx(SYSTEM) as conn:
            await conn.execute(text("select count(*) from system_state"))
            async with conn.begin_nested():
                await _put(conn, "probe-fill")
            raise RuntimeError("a later step of the same transaction failed")

    with pytest.raises(RuntimeError):
        await book()
    assert await _count(db) == 0


async def test_sqlite_disk_full_rolls_back_everything_and_says_so(tmp_path: Path) -> None:
    db = Database(f"sqlite+aiosqlite:///{tmp_path / 'full.db'}")
    await db.migrate()
    await db.start()
    try:
        async with db.tx(SYSTEM) as conn:
            await conn.execute(text("create table second (x integer)"))
            await sqlite_full_on_insert(conn, "second")

        async def book() -> None:
            async with db.tx(SYSTEM) as conn:
                await conn.execute(text("select 1"))
                async with conn.begin_nested():
                    await _put(conn, "probe-first")
                await conn.execute(text("insert into second values (1)"))

        with pytest.raises(StorageFull) as err:
            await book()
        assert err.value.status == 503 and err.value.code == "storage.full"
        assert "second" not in err.value.message  # no SQL or values in the answer
        assert await _count(db) == 0
        # Reads go on working, and so do writes that need no new space.
        async with db.tx(SYSTEM) as conn:
            await _put(conn, "probe-small")
        assert await _count(db) == 1
    finally:
        await db.close()


@pytest.mark.postgres
async def test_postgres_connection_terminated_mid_transaction(pg_url: str) -> None:
    db = Database(pg_url)
    await db.migrate()
    await db.start()
    try:

        async def book() -> None:
            async with db.tx(SYSTEM) as conn:
                await _put(conn, "probe-half")
                pid = (await conn.execute(text("select pg_backend_pid()"))).scalar_one()
                admin = await asyncpg.connect(raw_dsn(pg_url))
                try:
                    await admin.execute("select pg_terminate_backend($1)", pid)
                finally:
                    await admin.close()
                await _put(conn, "probe-after")

        with pytest.raises(StorageUnavailable) as err:
            await book()
        assert err.value.status == 503 and err.value.code == "storage.unavailable"
        # Nothing half-written, and the next transaction gets a fresh connection.
        assert await _count(db) == 0
    finally:
        await db.close()


async def test_sqlite_close_waits_for_a_transaction_in_progress(tmp_path: Path) -> None:
    db = Database(f"sqlite+aiosqlite:///{tmp_path / 'close.db'}")
    await db.migrate()
    await db.start()
    inside = asyncio.Event()
    release = asyncio.Event()

    async def long_tx() -> None:
        async with db.tx(SYSTEM) as conn:
            await _put(conn, "probe-a")
            inside.set()
            await release.wait()
            await _put(conn, "probe-b")

    task = asyncio.create_task(long_tx())
    await inside.wait()
    closing = asyncio.create_task(db.close())
    await asyncio.sleep(0)
    assert not closing.done()  # waiting for the transaction, not closing under it
    release.set()
    await task
    await closing
    with pytest.raises(StorageUnavailable):
        async with db.tx(SYSTEM):
            pass
    again = Database(f"sqlite+aiosqlite:///{tmp_path / 'close.db'}")
    await again.start()
    try:
        assert await _count(again) == 2
    finally:
        await again.close()
