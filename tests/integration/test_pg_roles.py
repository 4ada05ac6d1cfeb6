"""The documented PostgreSQL roles, created with docs/operations.md's own SQL on the local
server (unique names), carry a whole server: the app role cannot widen itself, system work
runs on its own login, and superuser or mismatched logins are refused (issue 12)."""

from __future__ import annotations

import re
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest
from sqlalchemy import text

from hoga.store.db import Actor, Database, DatabaseUnavailable
from tests.conftest import PG_URL, _raw_dsn
from tests.helpers import running

pytestmark = pytest.mark.postgres
DOCS = Path(__file__).parents[2] / "docs" / "operations.md"


def _documented_sql(prefix: str) -> list[str]:
    doc = DOCS.read_text(encoding="utf-8")
    block = re.search(r"<!-- roles-sql -->\s*```sql\n(.*?)```", doc, re.S)
    assert block, "docs/operations.md lost its roles SQL block"
    sql = re.sub(r"\bhoga_(owner|app|system)\b", rf"{prefix}_\1", block.group(1))
    sql = re.sub(r"\bDATABASE hoga\b", f"DATABASE {prefix}", sql)
    return [s.strip() for s in sql.split(";") if s.strip()]


def _url(login: str, database: str) -> str:
    base = PG_URL.split("://", 1)[1].split("@", 1)[1].rsplit("/", 1)[0]
    return f"postgresql+asyncpg://{login}:pw@{base}/{database}"


@pytest.fixture
async def roles(pg_available: None) -> AsyncIterator[str]:
    prefix = f"hoga_r{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(_raw_dsn(PG_URL))
    try:
        for statement in _documented_sql(prefix):
            await admin.execute(statement)
        db = await asyncpg.connect(_raw_dsn(PG_URL, prefix))
        try:
            await db.execute("REVOKE CREATE ON SCHEMA public FROM PUBLIC")
            await db.execute(f"ALTER SCHEMA public OWNER TO {prefix}_owner")
        finally:
            await db.close()
        yield prefix
    finally:
        await admin.execute(f'drop database if exists "{prefix}" with (force)')
        for kind in ("owner", "app", "system"):
            await admin.execute(f'drop role if exists "{prefix}_{kind}"')
        await admin.close()


async def test_the_documented_roles_run_a_server_that_cannot_widen_itself(
    tmp_path: Path, roles: str
) -> None:
    urls = {
        "database_owner_url": _url(f"{roles}_owner", roles),
        "database_system_url": _url(f"{roles}_system", roles),
        "database_allow_superuser": False,
    }
    async with running(tmp_path, _url(f"{roles}_app", roles), **urls) as h:
        alice = await h.user("alice", "basic")
        bob = await h.user("bob", "basic")
        for headers in (alice, bob):
            r = await h.http.post(
                "/api/orders",
                json={
                    "symbol": "005930",
                    "side": "buy",
                    "type": "limit",
                    "qty": 1,
                    "price": 60_000,
                },
                headers=headers,
            )
            assert r.status_code == 202, r.text
        admin = await h.admin()
        assert len((await h.http.get("/api/admin/users", headers=admin)).json()["users"]) == 3
        a_id = (await h.http.get("/api/me", headers=alice)).json()["id"]
        async with h.hoga.db.tx(Actor.user(a_id)) as conn:
            who = (await conn.execute(text("select current_user, session_user"))).one()
            assert tuple(who) == (f"{roles}_app", f"{roles}_app")
            # The old switch no longer opens anything.
            await conn.execute(text("select set_config('app.system', 'on', true)"))
            owners = {r[0] for r in await conn.execute(text("select user_id from orders"))}
            users = (await conn.execute(text("select count(*) from users"))).scalar()
        assert owners == {a_id} and users == 1
        for widen in (f"set role {roles}_system", f"set role {roles}_owner", "set role postgres"):
            with pytest.raises(Exception, match="permission denied"):
                async with h.hoga.db.tx(Actor.user(a_id)) as conn:
                    await conn.execute(text(widen))


async def test_superuser_and_mismatched_logins_are_refused(roles: str, pg_url: str) -> None:
    db = Database(pg_url, allow_superuser=False)
    await db.migrate()
    with pytest.raises(DatabaseUnavailable, match="superuser"):
        await db.start()
    # Separate logins must each be their own role.
    wrong = Database(
        _url(f"{roles}_system", roles),
        owner_url=_url(f"{roles}_owner", roles),
        system_url=_url(f"{roles}_system", roles),
        allow_superuser=False,
    )
    await wrong.migrate()
    with pytest.raises(DatabaseUnavailable, match="must log in as the role"):
        await wrong.start()
