"""Row-level security on PostgreSQL: the second wall between tenants.

Every table with a ``user_id`` column, and ``users`` itself (by ``id``), gets RLS enabled *and
forced*, with two policies, one per role:

* ``tenant_isolation`` for the **app role** (user requests): a row is visible and writable
  only when its user is the transaction's ``app.user_id``;
* ``system_access`` for the **system role** (start-up, dispatcher, reconciliation, admin
  pages): every row.

Neither policy reads a setting a connection could change to widen itself: the old predicate
admitted ``app.system = 'on'``, which any session could set (issue 12). Both roles own no
table and cannot bypass RLS, so a query that forgets its ``WHERE user_id = ...`` returns
nothing of anyone else's. Role names default to ``<database>_app`` / ``<database>_system``
(``store/db.py``); docs/operations.md has the SQL that creates them.
"""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

POLICY = "tenant_isolation"
SYSTEM_POLICY = "system_access"
#: Stored as the policies' comment with the role names; a policy without this exact text is
#: (re)created. Bump it when a predicate changes.
POLICY_VERSION = "hoga-rls-v2"
_USER = "nullif(current_setting('app.user_id', true), '')::bigint"


def _ident(name: str) -> str:
    if not name.replace("_", "").isalnum():
        raise ValueError(f"refusing unsafe SQL identifier {name!r}")
    return f'"{name}"'


async def tenant_tables(conn: AsyncConnection) -> list[str]:
    """Tables in the current schema that have a ``user_id`` column."""
    rows = await conn.execute(
        text(
            "select c.table_name from information_schema.columns c "
            "join information_schema.tables t on t.table_schema = c.table_schema "
            "and t.table_name = c.table_name "
            "where c.table_schema = current_schema() and c.column_name = 'user_id' "
            "and t.table_type = 'BASE TABLE' order by 1"
        )
    )
    return [r[0] for r in rows]


async def _ensure_role(conn: AsyncConnection, role: str) -> None:
    exists = (
        await conn.execute(text("select 1 from pg_roles where rolname = :r"), {"r": role})
    ).scalar()
    if exists:
        return
    try:
        async with conn.begin_nested():
            await conn.execute(text(f"create role {_ident(role)} nologin nobypassrls"))
    except Exception:
        raise RuntimeError(
            f"PostgreSQL role {role!r} does not exist and the migration's login may not create "
            "it: create it first (docs/operations.md, 'PostgreSQL roles')"
        ) from None


async def ensure_rls(
    conn: AsyncConnection, app_role: str, system_role: str, *, switch_roles: bool = True
) -> None:
    """Grant both roles data access and enforce RLS with their policies (idempotent).

    ``switch_roles``: one login switches into the roles per transaction (development); the
    roles are created if missing and granted to that login. With separate logins the roles
    must exist (docs/operations.md) and nothing is granted to the owner.

    A table whose RLS and policies are already in place is left alone: ``ALTER TABLE`` and
    ``CREATE/DROP POLICY`` take ACCESS EXCLUSIVE locks, which would queue behind any long
    reader (a nightly ``pg_dump``) and stall every later statement of the live server. Grants
    and role checks take no table lock.
    """
    version = f"{POLICY_VERSION} {app_role} {system_role}"
    for role in (app_role, system_role):
        r = _ident(role)
        await _ensure_role(conn, role)
        if switch_roles:
            is_super = (
                await conn.execute(
                    text("select rolsuper from pg_roles where rolname = current_user")
                )
            ).scalar()
            member = (
                await conn.execute(
                    text("select pg_has_role(current_user, :role, 'MEMBER')"), {"role": role}
                )
            ).scalar()
            if not is_super and not member:
                # A non-superuser owner must be a member of the role to SET ROLE to it.
                await conn.execute(text(f"grant {r} to current_user"))
        await conn.execute(text(f"grant usage on schema public to {r}"))
        await conn.execute(
            text(f"grant select, insert, update, delete on all tables in schema public to {r}")
        )
        await conn.execute(text(f"grant usage, select on all sequences in schema public to {r}"))
        await conn.execute(text(f"revoke all on alembic_version from {r}"))
        if role == system_role:
            # hoga backup's pg_dump logs in as the system role (the one login that reads
            # every row): it must read, and lock, every table it dumps.
            await conn.execute(text(f"grant select on alembic_version to {r}"))
    state = await _policy_state(conn)
    tables = dict.fromkeys(await tenant_tables(conn), "user_id")
    tables["users"] = "id"
    for table, column in sorted(tables.items()):
        t = _ident(table)
        enabled, forced, mine, system = state.get(table, (False, False, None, None))
        if not enabled:
            await conn.execute(text(f"alter table {t} enable row level security"))
        if not forced:
            await conn.execute(text(f"alter table {t} force row level security"))
        if mine != version:
            pred = f"{_ident(column)} = {_USER}"
            await conn.execute(text(f"drop policy if exists {POLICY} on {t}"))
            await conn.execute(
                text(
                    f"create policy {POLICY} on {t} to {_ident(app_role)} "
                    f"using ({pred}) with check ({pred})"
                )
            )
            await conn.execute(text(f"comment on policy {POLICY} on {t} is '{version}'"))
        if system != version:
            await conn.execute(text(f"drop policy if exists {SYSTEM_POLICY} on {t}"))
            await conn.execute(
                text(
                    f"create policy {SYSTEM_POLICY} on {t} to {_ident(system_role)} "
                    "using (true) with check (true)"
                )
            )
            await conn.execute(text(f"comment on policy {SYSTEM_POLICY} on {t} is '{version}'"))


async def _policy_state(
    conn: AsyncConnection,
) -> dict[str, tuple[bool, bool, str | None, str | None]]:
    """(RLS enabled, forced, our two policies' version comments) per table."""
    rows = await conn.execute(
        text(
            "select c.relname, c.relrowsecurity, c.relforcerowsecurity, "
            "obj_description(p.oid, 'pg_policy'), obj_description(q.oid, 'pg_policy') "
            "from pg_class c join pg_namespace n on n.oid = c.relnamespace "
            "left join pg_policy p on p.polrelid = c.oid and p.polname = :policy "
            "left join pg_policy q on q.polrelid = c.oid and q.polname = :system "
            "where n.nspname = current_schema() and c.relkind = 'r'"
        ),
        {"policy": POLICY, "system": SYSTEM_POLICY},
    )
    return {r[0]: (bool(r[1]), bool(r[2]), r[3], r[4]) for r in rows}


async def rls_status(conn: AsyncConnection) -> dict[str, tuple[bool, bool]]:
    """(enabled, forced) for every tenant table and ``users`` - what the isolation tests
    check."""
    out: dict[str, tuple[bool, bool]] = {}
    for table in [*await tenant_tables(conn), "users"]:
        row = (
            await conn.execute(
                text(
                    "select relrowsecurity, relforcerowsecurity from pg_class "
                    "where oid = cast(:t as regclass)"
                ),
                {"t": table},
            )
        ).one()
        out[table] = (bool(row[0]), bool(row[1]))
    return out
