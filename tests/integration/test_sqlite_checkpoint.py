"""SQLite's write-ahead log is checkpointed by hoga's own thread, not inside order-path commits."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from sqlalchemy import text

from hoga.store.checkpoint import BACKSTOP_PAGES
from hoga.store.db import SYSTEM, Database


async def test_commits_reach_the_main_file_through_the_checkpointer(tmp_path: Path) -> None:
    path = tmp_path / "hoga.db"
    db = Database(f"sqlite+aiosqlite:///{path}")
    await db.start()
    try:
        assert db.checkpointer is not None
        async with db.tx(SYSTEM) as conn:
            limit = (await conn.execute(text("PRAGMA wal_autocheckpoint"))).scalar()
            assert limit == BACKSTOP_PAGES  # commits themselves only checkpoint as a backstop
            await conn.execute(text("create table t (x integer)"))
            await conn.execute(text("insert into t values (42)"))

        def main_file_rows() -> list[tuple[int]]:
            # immutable=1 reads the database file alone, ignoring the write-ahead log.
            ro = sqlite3.connect(f"file:{path}?immutable=1", uri=True)
            try:
                return ro.execute("select x from t").fetchall()
            except sqlite3.OperationalError:
                return []  # the table itself is still only in the log
            finally:
                ro.close()

        assert main_file_rows() == []
        await db.checkpointer.checkpoint()
        assert main_file_rows() == [(42,)]
    finally:
        await db.close()
