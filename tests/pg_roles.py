"""PostgreSQL roles made the documented way for tests: docs/operations.md's ``roles-sql`` block
(deploy/postgres/roles.sql verbatim - tests/unit/test_deploy_files.py checks they agree) run by
psql with a unique database name, because roles are cluster-wide; dropped afterwards."""

from __future__ import annotations

import asyncio
import contextlib
import re
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg

from tests.pg_support import PG_URL, raw_dsn

DOCS = Path(__file__).parents[1] / "docs" / "operations.md"
KINDS = ("owner", "app", "system")


def documented_block() -> str:
    """The roles SQL as docs/operations.md shows it (deploy/postgres/roles.sql, verbatim)."""
    doc = DOCS.read_text(encoding="utf-8")
    block = re.search(r"<!-- roles-sql -->\s*```sql\n(.*?)```", doc, re.S)
    assert block, "docs/operations.md lost its roles SQL block"
    return block.group(1)


def run_documented_sql(prefix: str, workdir: Path) -> None:
    """The documented block, run by psql as the superuser the documented way, with
    ``db=<prefix>`` (roles ``<prefix>_owner|app|system``)."""
    script = workdir / "roles.sql"
    script.write_text(documented_block(), encoding="utf-8")
    psql = shutil.which("psql")
    assert psql, "psql is needed to run the documented roles SQL"
    res = subprocess.run(
        [psql, "-v", "ON_ERROR_STOP=1", "--no-psqlrc", "--quiet", "-v", f"db={prefix}",
         *(arg for kind in KINDS for arg in ("-v", f"{kind}_password=pw")),
         "-f", str(script), "-d", raw_dsn(PG_URL)],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert res.returncode == 0, res.stderr


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
    admin = await asyncpg.connect(raw_dsn(PG_URL))
    try:
        with tempfile.TemporaryDirectory() as tmp:
            await asyncio.to_thread(run_documented_sql, prefix, Path(tmp))
        yield prefix
    finally:
        await admin.execute(f'drop database if exists "{prefix}" with (force)')
        for kind in KINDS:
            await admin.execute(f'drop role if exists "{prefix}_{kind}"')
        await admin.close()
