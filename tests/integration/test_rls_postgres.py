"""The second wall: PostgreSQL row-level security on every tenant table."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pytest
from sqlalchemy import text

from hoga.domain.clock import KST
from hoga.store import tables as t
from hoga.store.db import SYSTEM, Actor, Database
from hoga.store.rls import rls_status
from tests.helpers import running

pytestmark = pytest.mark.postgres


async def test_every_table_with_user_id_has_rls_enabled_and_forced(pg_url: str) -> None:
    db = Database(pg_url)
    await db.migrate()
    await db.start()
    async with db.tx(SYSTEM) as conn:
        status = await rls_status(conn)
    await db.close()
    expected = {tbl.name for tbl in t.metadata.sorted_tables if "user_id" in tbl.c}
    assert set(status) == expected | {"users"}
    assert all(enabled and forced for enabled, forced in status.values()), status


async def test_a_later_migrate_repairs_rls_that_was_lost_and_leaves_intact_tables_alone(
    pg_url: str,
) -> None:
    import asyncpg

    from tests.pg_support import raw_dsn

    db = Database(pg_url)
    await db.migrate()
    raw = await asyncpg.connect(raw_dsn(pg_url))
    try:
        await raw.execute("alter table orders no force row level security")
        await raw.execute("alter table fills disable row level security")
        await raw.execute("drop policy tenant_isolation on positions")
        before = await raw.fetchval(
            "select oid from pg_policy where polname = 'tenant_isolation' "
            "and polrelid = 'users'::regclass"
        )
        await db.migrate()
        after = await raw.fetchval(
            "select oid from pg_policy where polname = 'tenant_isolation' "
            "and polrelid = 'users'::regclass"
        )
        repaired = await raw.fetchval(
            "select count(*) from pg_policy where polname = 'tenant_isolation' "
            "and polrelid = 'positions'::regclass"
        )
    finally:
        await raw.close()
    await db.start()
    async with db.tx(SYSTEM) as conn:
        status = await rls_status(conn)
    await db.close()
    assert all(enabled and forced for enabled, forced in status.values()), status
    assert repaired == 1
    # An intact policy is not dropped and recreated (that takes an exclusive lock).
    assert before == after


async def test_app_role_neither_owns_tables_nor_bypasses_rls(pg_url: str) -> None:
    db = Database(pg_url)
    await db.migrate()
    await db.start()
    seen = {}
    for actor in (SYSTEM, Actor.user(1)):
        async with db.tx(actor) as conn:
            who = (await conn.execute(text("select current_user"))).scalar()
            role = (
                await conn.execute(
                    text("select rolsuper, rolbypassrls from pg_roles where rolname = current_user")
                )
            ).one()
            owned = (
                await conn.execute(
                    text(
                        "select count(*) from pg_tables where schemaname = 'public' "
                        "and tableowner = current_user"
                    )
                )
            ).scalar()
        seen[actor.system] = who
        assert tuple(role) == (False, False)
        assert owned == 0
    await db.close()
    # Role names derive from the database's: two hoga databases on a cluster share none.
    name = pg_url.rsplit("/", 1)[1]
    assert seen == {True: f"{name}_system", False: f"{name}_app"}


async def test_unfiltered_query_sees_only_the_acting_users_rows(
    tmp_path: Path, pg_url: str
) -> None:
    async with running(tmp_path, pg_url) as h:
        alice = await h.user("alice", "basic")
        bob = await h.user("bob", "basic")
        for headers in (alice, bob):
            for price in (60_000, 61_000):
                r = await h.post_order(headers, type="limit", qty=1, price=price)
                assert r.status_code == 202
        a_id = (await h.http.get("/api/me", headers=alice)).json()["id"]
        b_id = (await h.http.get("/api/me", headers=bob)).json()["id"]
        db = h.hoga.db
        for table in (
            "orders",
            "broker_accounts",
            "cash_ledger",
            "audit_log",
            "order_events",
            "refresh_tokens",
        ):
            async with db.tx(Actor.user(a_id)) as conn:
                owners = {r[0] for r in await conn.execute(text(f"select user_id from {table}"))}  # noqa: S608
            assert owners == {a_id}, table
        async with db.tx(Actor.user(b_id)) as conn:
            n = (await conn.execute(text("select count(*) from orders"))).scalar()
            # Writing a row for someone else is refused by the policy's WITH CHECK.
            with pytest.raises(Exception, match="row-level security"):
                async with conn.begin_nested():
                    await conn.execute(
                        t.audit_log.insert().values(
                            user_id=a_id, ts=datetime.now(KST), action="forged", detail={}
                        )
                    )
        assert n == 2
        # A connection that names no user at all sees nothing.
        async with db.engine.connect() as conn:
            assert (await conn.execute(text("select count(*) from orders"))).scalar() == 0
            await conn.rollback()
