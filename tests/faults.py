"""Real storage faults for tests, at a chosen step.

* SQLite full: a trigger on the chosen table writes a 4 MB blob while the connection's
  ``max_page_count`` allows no growth, so SQLite itself answers SQLITE_FULL ("database or disk
  is full") exactly when that table is written - the same error a full disk gives.
* PostgreSQL: a trigger terminates the transaction's own backend (``pg_terminate_backend``, the
  server answers 57P01 like an operator's kill) the first ``times`` times a row matches.
"""

from __future__ import annotations

import asyncpg
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from tests.pg_support import raw_dsn


async def sqlite_full_on_insert(
    conn: AsyncConnection, table: str, *, when: str = "1", event: str = "INSERT"
) -> None:
    """From now on, writing ``table`` (where ``when`` holds, in trigger SQL over NEW) fails
    with SQLITE_FULL on this connection. Undo with ``sqlite_space_again``."""
    await conn.execute(text("create table if not exists fault_pad (b blob)"))
    # Test-only DDL from the test's own constants.
    pad = "insert into fault_pad values (zeroblob(4000000))"
    ddl = f"create trigger fault_full_{table} after {event} on {table} when {when} begin {pad}; end"
    await conn.execute(text(ddl))
    pages = (await conn.execute(text("pragma page_count"))).scalar_one()
    await conn.execute(text(f"pragma max_page_count = {int(pages) + 8}"))


async def sqlite_space_again(conn: AsyncConnection, table: str) -> None:
    await conn.execute(text(f"drop trigger if exists fault_full_{table}"))
    await conn.execute(text("pragma max_page_count = 1073741823"))


async def pg_terminate_on(
    db_url: str,
    table: str,
    *,
    when: str = "true",
    event: str = "INSERT",
    times: int = 1,
) -> None:
    """The first ``times`` writes of ``table`` matching ``when`` (SQL over NEW) kill their
    own connection. Installed as the test database's owner (a superuser): the function is
    SECURITY DEFINER, since a role that is not superuser may not terminate a superuser's
    session (hoga's app role is SET on a session the superuser logged in)."""
    conn = await asyncpg.connect(raw_dsn(db_url))
    try:
        await conn.execute("create sequence if not exists fault_kills")
        await conn.execute(
            f"""
            create or replace function fault_kill_{table}() returns trigger language plpgsql
            security definer as $$
            begin
              if nextval('fault_kills') <= {int(times)} then
                perform pg_terminate_backend(pg_backend_pid());
              end if;
              return new;
            end $$
            """
        )
        await conn.execute(
            f"create trigger fault_kill_{table} after {event} on {table} for each row "
            f"when ({when}) execute function fault_kill_{table}()"
        )
    finally:
        await conn.close()


async def pg_kills(db_url: str) -> int:
    """How many times the kill triggers fired so far."""
    conn = await asyncpg.connect(raw_dsn(db_url))
    try:
        row = await conn.fetchrow("select last_value, is_called from fault_kills")
        return int(row["last_value"]) if row["is_called"] else 0
    finally:
        await conn.close()
