"""The SQLite store's threads and connections under churn: the checkpointer's thread owns its
connection for its whole life, and the store can be started and stopped while checkpoints and
writes are running without crashing the process (a segfault here kills the whole test run)."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from pathlib import Path

import pytest
from sqlalchemy import text

from hoga.store.checkpoint import WalCheckpointer
from hoga.store.db import SYSTEM, Database


def _checkpoint_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("sqlite-checkpoint")]


async def test_start_stop_200_times_while_checkpoints_and_writes_run(tmp_path: Path) -> None:
    path = tmp_path / "churn.db"
    url = f"sqlite+aiosqlite:///{path}"
    setup = Database(url)
    await setup.start()
    async with setup.tx(SYSTEM) as conn:
        await conn.execute(text("create table t (x integer, pad blob)"))
    await setup.close()

    written = 0
    for cycle in range(200):
        db = Database(url)
        assert db.checkpointer is not None
        # Checkpoint continuously: stop() then nearly always meets one in progress.
        db.checkpointer.interval = 0.0
        await db.start()
        writer_done = asyncio.Event()

        async def writes(db: Database = db, done: asyncio.Event = writer_done) -> None:
            nonlocal written
            try:
                for _ in range(3):
                    async with db.tx(SYSTEM) as conn:
                        await conn.execute(
                            text("insert into t values (:x, zeroblob(2048))"), {"x": written}
                        )
                    written += 1
                    await asyncio.sleep(0)
            finally:
                done.set()

        task = asyncio.create_task(writes())
        # Let a checkpoint start on the thread before closing (odd cycles close mid-write).
        await asyncio.sleep(0)
        if cycle % 2 == 0:
            await writer_done.wait()
        await db.close()
        # A write racing the close either committed before it or failed cleanly after it.
        await asyncio.gather(task, return_exceptions=True)
        assert db.checkpointer.runs >= 0
        assert not _checkpoint_threads(), "stop() returned before its thread ended"

    check = Database(url)
    await check.start()
    try:
        async with check.tx(SYSTEM) as conn:
            n = (await conn.execute(text("select count(*) from t"))).scalar_one()
            ok = (await conn.execute(text("pragma integrity_check"))).scalar_one()
    finally:
        await check.close()
    assert ok == "ok"
    assert 0 < n <= written


async def test_stop_waits_for_a_checkpoint_in_progress(tmp_path: Path) -> None:
    """stop() returns only once the thread has finished its checkpoint and closed its own
    connection; nothing else ever touches that connection."""
    path = tmp_path / "wait.db"
    db = Database(f"sqlite+aiosqlite:///{path}")
    await db.start()
    async with db.tx(SYSTEM) as conn:
        await conn.execute(text("create table t (x integer)"))
        await conn.execute(text("insert into t values (1)"))
    cp = db.checkpointer
    assert cp is not None
    await cp.checkpoint()
    assert cp.runs >= 1
    owner = cp.thread_ident
    assert owner is not None and owner != threading.get_ident()
    await db.close()
    assert not _checkpoint_threads()
    assert cp.thread_ident is None


async def test_checkpointer_can_restart_after_stop(tmp_path: Path) -> None:
    path = tmp_path / "again.db"
    db = Database(f"sqlite+aiosqlite:///{path}")
    await db.start()
    await db.close()
    cp = WalCheckpointer(path, interval=3600)
    for _ in range(3):
        cp.start()
        await cp.checkpoint()
        await cp.stop()
    assert cp.runs == 3
    assert not _checkpoint_threads()


async def test_the_inline_connection_refuses_any_other_thread(tmp_path: Path) -> None:
    """The event loop's SQLite connection is the loop thread's alone: a thread that reached
    for it would get an error, never a shared connection."""
    db = Database(f"sqlite+aiosqlite:///{tmp_path / 'own.db'}")
    await db.start()
    try:
        async with db.tx(SYSTEM) as conn:
            raw = (await conn.get_raw_connection()).driver_connection
            assert isinstance(raw, sqlite3.Connection)
        with pytest.raises(sqlite3.ProgrammingError, match="thread"):
            await asyncio.to_thread(raw.execute, "select 1")
    finally:
        await db.close()
