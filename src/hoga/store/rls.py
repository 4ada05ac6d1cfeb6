"""Row-level security on PostgreSQL: the second wall between tenants.

Every table with a ``user_id`` column gets RLS enabled *and forced*, with one policy: a row is
visible and writable only when its ``user_id`` equals the transaction's ``app.user_id``, or the
transaction runs as the system (``app.system = 'on'``, used by start-up, the dispatcher and
admin pages). The server connects as an app role that owns no table and has no BYPASSRLS, so a
query that forgets its ``WHERE user_id = ...`` returns nothing of anyone else's.
"""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

POLICY = "tenant_isolation"
#: Stored as the policy's comment; a policy without this exact text is (re)created. Bump it
#: when ``_PREDICATE`` changes.
POLICY_VERSION = "hoga-rls-v1"
_PREDICATE = (
    "current_setting('app.system', true) = 'on' "
    "OR user_id = nullif(current_setting('app.user_id', true), '')::bigint"
)


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


async def ensure_rls(conn: AsyncConnection, role: str) -> None:
    """Create the app role if needed, grant it data access, and enforce RLS (idempotent).

    A table whose RLS and policy are already in place is left alone: ``ALTER TABLE`` and
    ``CREATE/DROP POLICY`` take ACCESS EXCLUSIVE locks, which would queue behind any long
    reader (a nightly ``pg_dump``) and stall every later statement of the live server. Grants
    and role checks take no table lock.
    """
    r = _ident(role)
    await conn.execute(
        text(
            "do $$ begin if not exists (select from pg_roles where rolname = :role) then "
            f"create role {r} nologin nobypassrls; end if; end $$".replace(":role", f"'{role}'")
        )
    )
    is_super = (
        await conn.execute(text("select rolsuper from pg_roles where rolname = current_user"))
    ).scalar()
    if not is_super:
        member = (
            await conn.execute(
                text("select pg_has_role(current_user, :role, 'MEMBER')"), {"role": role}
            )
        ).scalar()
        if not member:
            # A non-superuser owner must be a member of the role to SET ROLE to it.
            await conn.execute(text(f"grant {r} to current_user"))
    await conn.execute(text(f"grant usage on schema public to {r}"))
    await conn.execute(
        text(f"grant select, insert, update, delete on all tables in schema public to {r}")
    )
    await conn.execute(text(f"grant usage, select on all sequences in schema public to {r}"))
    await conn.execute(text(f"revoke all on alembic_version from {r}"))
    state = await _policy_state(conn)
    for table in await tenant_tables(conn):
        t = _ident(table)
        enabled, forced, version = state.get(table, (False, False, None))
        if not enabled:
            await conn.execute(text(f"alter table {t} enable row level security"))
        if not forced:
            await conn.execute(text(f"alter table {t} force row level security"))
        if version != POLICY_VERSION:
            await conn.execute(text(f"drop policy if exists {POLICY} on {t}"))
            await conn.execute(
                text(
                    f"create policy {POLICY} on {t} using ({_PREDICATE}) with check ({_PREDICATE})"
                )
            )
            await conn.execute(text(f"comment on policy {POLICY} on {t} is '{POLICY_VERSION}'"))


async def _policy_state(conn: AsyncConnection) -> dict[str, tuple[bool, bool, str | None]]:
    """(RLS enabled, forced, our policy's version comment) per table of the current schema."""
    rows = await conn.execute(
        text(
            "select c.relname, c.relrowsecurity, c.relforcerowsecurity, "
            "obj_description(p.oid, 'pg_policy') "
            "from pg_class c join pg_namespace n on n.oid = c.relnamespace "
            "left join pg_policy p on p.polrelid = c.oid and p.polname = :policy "
            "where n.nspname = current_schema() and c.relkind = 'r'"
        ),
        {"policy": POLICY},
    )
    return {r[0]: (bool(r[1]), bool(r[2]), r[3]) for r in rows}


async def rls_status(conn: AsyncConnection) -> dict[str, tuple[bool, bool]]:
    """(enabled, forced) for every tenant table - what the isolation tests check."""
    out: dict[str, tuple[bool, bool]] = {}
    for table in await tenant_tables(conn):
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
