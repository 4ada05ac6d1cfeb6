"""Admin commands beside a live database: they never migrate, never take an exclusive lock, and
refuse a schema that is not the one this hoga knows (issue 11, "admin commands freeze trading").

A nightly ``pg_dump`` holds ACCESS SHARE on every table for minutes. Any statement that wants
an exclusive lock queues behind it - and every later statement of the live server queues behind
*that*. So an admin command must not ask for one at all.
"""

from __future__ import annotations

import asyncio
import subprocess
import time
from pathlib import Path

import asyncpg
import pytest

from tests.e2e.conftest import HOGA, server_env
from tests.helpers import free_port
from tests.pg_support import raw_dsn

pytestmark = pytest.mark.postgres


def _env(tmp_path: Path, db_url: str) -> dict[str, str]:
    return server_env(tmp_path / "var", free_port(), HOGA_DATABASE_URL=db_url)


def _cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*HOGA, *args], env=env, capture_output=True, text=True, timeout=120)


async def _run_beside(
    conn: asyncpg.Connection, env: dict[str, str], *args: str, within: float = 90.0
) -> subprocess.CompletedProcess[str]:
    """Run ``hoga ARGS`` and fail the moment any session of this database waits for a lock."""
    proc = await asyncio.create_subprocess_exec(
        *HOGA, *args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    done = asyncio.ensure_future(proc.communicate())
    deadline = time.monotonic() + within
    try:
        while not done.done():
            waiting = await conn.fetch(
                "select l.mode, l.relation::regclass::text as rel from pg_locks l "
                "join pg_database d on d.oid = l.database "
                "where not l.granted and d.datname = current_database()"
            )
            if waiting:
                raise AssertionError(
                    f"hoga {' '.join(args)} waits for a lock behind the reader: "
                    + ", ".join(f"{w['mode']} on {w['rel']}" for w in waiting)
                )
            if time.monotonic() > deadline:
                raise AssertionError(f"hoga {' '.join(args)} did not finish")
            await asyncio.wait({done}, timeout=0.05)
        out, err = done.result()
    finally:
        if proc.returncode is None:
            proc.kill()
            await done
    assert proc.returncode is not None
    return subprocess.CompletedProcess(args, proc.returncode, out.decode(), err.decode())


async def test_admin_commands_take_no_exclusive_lock_behind_a_long_read(
    tmp_path: Path, pg_url: str
) -> None:
    env = _env(tmp_path, pg_url)
    up = await asyncio.to_thread(_cli, env, "db", "upgrade")
    assert up.returncode == 0, up.stderr
    reader = await asyncpg.connect(raw_dsn(pg_url))
    try:
        tables = [
            r["tablename"]
            for r in await reader.fetch(
                "select tablename from pg_tables where schemaname = 'public' order by 1"
            )
        ]
        assert "users" in tables and "orders" in tables
        # What pg_dump does: one transaction holding ACCESS SHARE on every table.
        tx = reader.transaction(isolation="repeatable_read")
        await tx.start()
        await reader.execute(
            "lock table " + ", ".join(f'"{t}"' for t in tables) + " in access share mode"
        )
        watcher = await asyncpg.connect(raw_dsn(pg_url))
        try:
            added = await _run_beside(
                watcher, env, "user", "add", "carol", "--password", "carol-password-1"
            )
            assert added.returncode == 0, added.stderr
            listed = await _run_beside(watcher, env, "user", "list")
            assert listed.returncode == 0, listed.stderr
            assert "carol" in listed.stdout
            tiers = await _run_beside(watcher, env, "user", "set-tier", "carol", "basic")
            assert tiers.returncode == 0, tiers.stderr
            # Re-running the upgrade at head (and so a server start) takes none either: RLS
            # that is already in place is left alone.
            again = await _run_beside(watcher, env, "db", "upgrade")
            assert again.returncode == 0, again.stderr
            assert "up to date" in again.stdout
        finally:
            await watcher.close()
            await tx.rollback()
    finally:
        await reader.close()


async def test_admin_commands_refuse_a_database_that_was_never_migrated(
    tmp_path: Path, pg_url: str
) -> None:
    env = _env(tmp_path, pg_url)
    res = await asyncio.to_thread(_cli, env, "user", "list")
    assert res.returncode != 0
    errors = [line for line in res.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, res.stderr
    assert "hoga db upgrade" in errors[0]
    assert "Traceback" not in res.stderr
    # Nothing was created behind the operator's back.
    conn = await asyncpg.connect(raw_dsn(pg_url))
    try:
        n = await conn.fetchval("select count(*) from pg_tables where schemaname = 'public'")
    finally:
        await conn.close()
    assert n == 0


async def test_admin_commands_refuse_a_schema_this_hoga_does_not_know(
    tmp_path: Path, pg_url: str
) -> None:
    env = _env(tmp_path, pg_url)
    assert (await asyncio.to_thread(_cli, env, "db", "upgrade")).returncode == 0
    conn = await asyncpg.connect(raw_dsn(pg_url))
    try:
        await conn.execute("update alembic_version set version_num = '9999_from_the_future'")
    finally:
        await conn.close()
    res = await asyncio.to_thread(_cli, env, "user", "list")
    assert res.returncode != 0
    errors = [line for line in res.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, res.stderr
    assert "9999_from_the_future" in errors[0] and "newer" in errors[0]
