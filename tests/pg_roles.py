"""PostgreSQL roles made the documented way for tests: docs/operations.md's ``roles-sql`` block
(the one source of truth; deploy/postgres/roles.sql must agree with it), with a unique prefix
in place of ``hoga`` because roles are cluster-wide, dropped afterwards."""

from __future__ import annotations

import contextlib
import re
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg

from tests.conftest import PG_URL, _raw_dsn

DOCS = Path(__file__).parents[1] / "docs" / "operations.md"
KINDS = ("owner", "app", "system")


def documented_block() -> str:
    doc = DOCS.read_text(encoding="utf-8")
    block = re.search(r"<!-- roles-sql -->\s*```sql\n(.*?)```", doc, re.S)
    assert block, "docs/operations.md lost its roles SQL block"
    return block.group(1)


def documented_sql(prefix: str) -> list[str]:
    """The documented statements with ``hoga`` (roles and database) renamed to ``prefix``."""
    sql = re.sub(r"\bhoga_(owner|app|system)\b", rf"{prefix}_\1", documented_block())
    sql = re.sub(r"\bDATABASE hoga\b", f"DATABASE {prefix}", sql)
    return [s.strip() for s in sql.split(";") if s.strip()]


def login_url(login: str, database: str) -> str:
    """An asyncpg URL for ``login`` on the test server (trust authentication)."""
    base = PG_URL.split("://", 1)[1].split("@", 1)[1].rsplit("/", 1)[0]
    return f"postgresql+asyncpg://{login}:pw@{base}/{database}"


def separate_logins(prefix: str) -> dict[str, object]:
    """Settings overrides for a server on the documented roles (owner/system URLs)."""
    return {
        "database_owner_url": login_url(f"{prefix}_owner", prefix),
        "database_system_url": login_url(f"{prefix}_system", prefix),
        "database_allow_superuser": False,
    }


@contextlib.asynccontextmanager
async def documented_roles() -> AsyncIterator[str]:
    """A database and its three roles made as docs/operations.md says; yields the prefix
    (database ``<prefix>``, roles ``<prefix>_owner|app|system``)."""
    prefix = f"hoga_r{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(_raw_dsn(PG_URL))
    try:
        for statement in documented_sql(prefix):
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
        for kind in KINDS:
            await admin.execute(f'drop role if exists "{prefix}_{kind}"')
        await admin.close()
