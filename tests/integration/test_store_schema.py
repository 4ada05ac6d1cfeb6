"""The migrated schema matches the table definitions, on SQLite and PostgreSQL."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import select, text

from hoga.store import tables as t
from hoga.store.db import SYSTEM, Database


async def test_migrations_build_exactly_the_declared_schema(db: Database) -> None:
    def diff(sync_conn):  # type: ignore[no-untyped-def]
        ctx = MigrationContext.configure(sync_conn, opts={"compare_type": False})
        return compare_metadata(ctx, t.metadata)

    async with db.tx(SYSTEM) as conn:
        differences = await conn.run_sync(diff)
    assert differences == []


async def test_migrate_twice_applies_nothing_the_second_time(db: Database) -> None:
    assert await db.migrate() == []


async def test_seed_tiers_follow_design(db: Database) -> None:
    async with db.tx(SYSTEM) as conn:
        rows = (await conn.execute(select(t.tiers).order_by(t.tiers.c.daily_trades))).all()
    assert [
        (r.name, r.daily_trades, r.max_strategies, r.max_positions, r.priority) for r in rows
    ] == [
        ("free", 10, 1, 5, "normal"),
        ("basic", 50, 3, 10, "normal"),
        ("premium", 100, 5, 20, "vip"),
    ]


async def test_sqlite_runs_wal_with_foreign_keys(sqlite_url: str) -> None:
    db = Database(sqlite_url)
    await db.migrate()
    await db.start()
    async with db.tx(SYSTEM) as conn:
        assert (await conn.execute(text("pragma journal_mode"))).scalar() == "wal"
        assert (await conn.execute(text("pragma foreign_keys"))).scalar() == 1
    await db.close()
