"""The documented PostgreSQL roles, created with docs/operations.md's own SQL on the local
server (unique names), carry a whole server: the app role cannot widen itself, system work
runs on its own login, and superuser or mismatched logins are refused (issue 12)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import text

from hoga.store.db import Actor, Database, DatabaseUnavailable
from tests.helpers import running
from tests.pg_roles import documented_roles
from tests.pg_roles import login_url as _url

pytestmark = pytest.mark.postgres


@pytest.fixture
async def roles(pg_available: None) -> AsyncIterator[str]:
    async with documented_roles() as prefix:
        yield prefix


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
            r = await h.post_order(headers, type="limit", qty=1, price=60_000)
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
