"""The test PostgreSQL server: its URL (``HOGA_TEST_PG_URL``, default the local trust-auth
server's ``test`` database), asyncpg DSNs, and throwaway databases - for the fixtures in
conftest.py, the support modules and the chaos and soak benchmarks alike."""

from __future__ import annotations

import os
import uuid

import asyncpg

PG_URL = os.environ.get("HOGA_TEST_PG_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test")


def raw_dsn(url: str, database: str | None = None) -> str:
    """The asyncpg DSN of a SQLAlchemy ``postgresql+asyncpg`` URL (another ``database`` on the
    same server if given)."""
    dsn = url.replace("postgresql+asyncpg://", "postgresql://")
    if database:
        dsn = dsn.rsplit("/", 1)[0] + "/" + database
    return dsn


async def create_database(prefix: str, url: str = PG_URL) -> tuple[str, str]:
    """A fresh, empty database named ``prefix`` and a random suffix on the server of ``url``:
    (its name, its SQLAlchemy URL)."""
    name = f"{prefix}{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(raw_dsn(url))
    try:
        await admin.execute(f'create database "{name}"')
    finally:
        await admin.close()
    return name, url.rsplit("/", 1)[0] + "/" + name


async def drop_database(name: str, url: str = PG_URL) -> None:
    """Drop database ``name`` (its sessions too) and the roles hoga derived from its name:
    roles are cluster-wide and would outlive it."""
    admin = await asyncpg.connect(raw_dsn(url))
    try:
        await admin.execute(f'drop database if exists "{name}" with (force)')
        for kind in ("app", "system"):
            await admin.execute(f'drop role if exists "{name}_{kind}"')
    finally:
        await admin.close()
