"""``hoga restore ARCHIVE``: a backup into an empty data dir and database, started paused.

In order, stopping at the first problem:

1. The archive's members are exactly the manifest's files (no other names, no paths leaving
   the archive) and each one's sha256 and size match the manifest.
2. The target is empty: the data dir does not exist or holds nothing, and - on PostgreSQL -
   the database has no tables. A restore never overwrites anything.
3. The archive's database kind is the target's, and its schema revision is one this hoga knows.
4. The key files, the database (a file copy for SQLite; for PostgreSQL ``pg_restore --no-owner
   --no-acl --single-transaction`` as the owner (``HOGA_DATABASE_OWNER_URL``) without the dump's
   policies, which name the source's roles; the migration step then grants the target's app
   and system roles and creates their row-level-security policies) and the paper journal are put in place, and the
   schema is brought to this hoga's head.
5. Every vault envelope (broker credentials, broker tokens, TOTP secrets, notification channel
   URLs) is decrypted with the restored key - or ``HOGA_MASTER_KEY``.
6. The paused state is written: the next ``hoga serve`` starts with strategies stopped, orders
   held and no broker session opened, so a restored copy never trades beside the original
   until an admin resumes it.

If step 4 or 5 fails, what was written is removed again (files, or the tables created in the
empty database), so the target is left as empty as it was.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import shutil
import tarfile
import tempfile
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import create_async_engine

from hoga.config import Settings
from hoga.domain.clock import SystemClock
from hoga.ops.backup import (
    FORMAT,
    JOURNAL,
    KEY_FILES,
    BackupError,
    libpq_target,
    owner_url,
    run_tool,
    sha256_file,
    sqlite_path,
)
from hoga.security.vault import (
    VaultError,
    account_aad,
    channel_aad,
    load_vault,
    token_aad,
    totp_aad,
)
from hoga.store import tables as t
from hoga.store.db import SYSTEM, Database

log = logging.getLogger(__name__)


@dataclass
class RestoreResult:
    """What was restored: the manifest, row counts per table, envelopes verified."""

    manifest: dict[str, Any]
    rows: dict[str, int] = field(default_factory=dict)
    credentials_verified: int = 0


def _safe_name(name: str) -> bool:
    p = PurePosixPath(name)
    return not p.is_absolute() and ".." not in p.parts and name == p.as_posix()


def _extract_verified(archive: Path, into: Path) -> dict[str, Any]:
    try:
        with tarfile.open(archive, "r:gz") as tar:
            return _verified_members(tar, archive, into)
    except (OSError, tarfile.TarError, EOFError) as e:
        raise BackupError(f"{archive} is not a readable hoga backup archive ({e})") from None


def _verified_members(tar: tarfile.TarFile, archive: Path, into: Path) -> dict[str, Any]:
    try:
        member = tar.getmember("manifest.json")
        manifest: dict[str, Any] = json.loads(tar.extractfile(member).read())  # type: ignore[union-attr]
    except (KeyError, ValueError, AttributeError):
        raise BackupError(f"{archive} has no readable manifest.json") from None
    if manifest.get("format") != FORMAT:
        raise BackupError(f"unsupported backup format {manifest.get('format')!r}")
    files: dict[str, Any] = manifest.get("files") or {}
    names = {m.name for m in tar.getmembers()}
    if names != {"manifest.json", *files}:
        raise BackupError("the archive's members do not match its manifest")
    for name, want in files.items():
        m = tar.getmember(name)
        if not _safe_name(name) or not m.isfile():
            raise BackupError(f"unsafe archive member {name!r}")
        dst = into / name
        dst.parent.mkdir(parents=True, exist_ok=True)
        with tar.extractfile(m) as src, dst.open("wb") as out:  # type: ignore[union-attr]
            shutil.copyfileobj(src, out)
        if dst.stat().st_size != want.get("size") or sha256_file(dst) != want.get("sha256"):
            raise BackupError(f"checksum mismatch for {name}: the archive is damaged")
    return manifest


async def _pg_tables(url: str) -> list[str]:
    """The public schema's tables, read from the catalog as the owner."""
    engine = create_async_engine(url)
    try:
        async with engine.connect() as conn:
            rows = await conn.execute(
                text("select tablename from pg_tables where schemaname = 'public'")
            )
            return [r[0] for r in rows]
    finally:
        await engine.dispose()


async def _pg_drop(url: str, tables: list[str]) -> None:
    engine = create_async_engine(url)
    try:
        async with engine.begin() as conn:
            for name in tables:
                await conn.execute(text(f'drop table if exists "{name}" cascade'))
    finally:
        await engine.dispose()


def _without_policies(toc: str) -> str:
    """The dump's table of contents minus its RLS policies (and their comments): a policy
    names the source's roles (``TO <db>_app``), which the target need not have. The migration
    step after the restore creates the policies for the target's own roles."""
    kept = [line for line in toc.splitlines() if " POLICY " not in line.split(";", 1)[-1]]
    return "\n".join(kept) + "\n"


async def _pg_restore(url: str, dump: Path) -> None:
    """``pg_restore`` as the owner. Row-level security is switched on only after the data
    (pg_dump's post-data section), so the owner's COPY is not filtered."""
    uri, env = libpq_target(url)
    toc = await run_tool("pg_restore", "--list", str(dump), env=env, what="pg_restore --list")
    listing = dump.with_name("toc.list")
    await asyncio.to_thread(listing.write_text, _without_policies(toc.decode()), "utf-8")
    await run_tool(
        "pg_restore",
        "--no-owner",
        "--no-acl",
        "--single-transaction",
        "--exit-on-error",
        "--use-list",
        str(listing),
        "--dbname",
        uri,
        str(dump),
        env=env,
        what="pg_restore",
    )


def _check_revision(rev: str | None) -> None:
    from alembic.script import ScriptDirectory
    from alembic.util import CommandError

    from hoga.store.migrate import alembic_config

    if rev is None:
        raise BackupError("the backup's database has no hoga schema")
    try:
        known = ScriptDirectory.from_config(alembic_config()).get_revision(rev) is not None
    except CommandError:
        known = False
    if not known:
        raise BackupError(
            f"the backup's schema revision {rev} is unknown to this hoga (made by a newer "
            "one): restore it with that hoga version"
        )


async def verify_vault(db: Database, settings: Settings) -> int:
    """Decrypt every vault envelope in the database; returns how many. Raises BackupError
    naming the first that does not open."""
    vault = load_vault(
        settings.master_key.get_secret_value() if settings.master_key else None,
        Path(settings.data_dir) / "master.key",
    )
    n = 0
    async with db.tx(SYSTEM) as conn:
        checks: list[tuple[str, str, str]] = []
        for r in (await conn.execute(t.broker_accounts.select())).all():
            if r.secrets_enc:
                checks.append(
                    (
                        f"broker account {r.id}",
                        r.secrets_enc,
                        account_aad(r.user_id, r.id, r.broker, r.env),
                    )
                )
        for r in (await conn.execute(t.broker_tokens.select())).all():
            checks.append(
                (f"broker token {r.id}", r.token_enc, token_aad(r.user_id, r.account_id, r.kind))
            )
        for r in (
            await conn.execute(t.users.select().where(t.users.c.totp_secret_enc.is_not(None)))
        ).all():
            checks.append((f"TOTP secret of user {r.id}", r.totp_secret_enc, totp_aad(r.id)))
        for r in (await conn.execute(t.notification_channels.select())).all():
            checks.append((f"notification channel {r.id}", r.url_enc, channel_aad(r.user_id, r.id)))
    for what, envelope, aad in checks:
        try:
            vault.decrypt(envelope, aad)
        except VaultError as e:
            raise BackupError(f"the vault key does not open {what}: {e}") from None
        n += 1
    return n


async def _row_counts(db: Database) -> dict[str, int]:
    out: dict[str, int] = {}
    async with db.tx(SYSTEM) as conn:
        for table in t.metadata.sorted_tables:
            out[table.name] = int(
                (await conn.execute(select(func.count()).select_from(table))).scalar_one()
            )
    return out


def _data_dir_empty(data: Path) -> bool:
    return not data.exists() or not any(p for p in data.iterdir() if p.name != "lost+found")


async def restore_backup(
    settings: Settings, archive: Path, *, reason: str | None = None
) -> RestoreResult:
    """Restore ``archive`` into the (empty) data dir and database of ``settings``."""
    from hoga.execution.control import write_pause

    data = Path(settings.data_dir)
    url = settings.sqlalchemy_url
    await asyncio.to_thread(_precheck, archive, data)
    if settings.is_postgres and await _pg_tables(owner_url(settings)):
        raise BackupError("the target database is not empty: restore only into an empty database")
    with tempfile.TemporaryDirectory(prefix=".hoga-restore-") as tmp:
        stage = Path(tmp)
        manifest = await asyncio.to_thread(_extract_verified, archive, stage)
        kind = "postgresql" if settings.is_postgres else "sqlite"
        if manifest.get("database") != kind:
            raise BackupError(
                f"the backup holds a {manifest.get('database')} database; the target is {kind}"
            )
        _check_revision(manifest.get("schema_revision"))
        if manifest.get("master_key") == "environment" and not settings.master_key:
            raise BackupError(
                "the backup was made with HOGA_MASTER_KEY in the environment: set the same "
                "HOGA_MASTER_KEY for the restore"
            )
        created_dir = await asyncio.to_thread(_place_files, stage, data)
        try:
            if settings.is_postgres:
                await _pg_restore(owner_url(settings), stage / "database" / "hoga.pgdump")
            else:
                await asyncio.to_thread(_place_sqlite, stage, sqlite_path(url))
            db = Database(url, **settings.database_options())
            await db.migrate()
            await db.start()
            try:
                verified = await verify_vault(db, settings)
                await write_pause(
                    db,
                    SystemClock(),
                    True,
                    reason=reason
                    or f"restored from {archive.name} (backup of {manifest.get('created_at')})",
                    by="hoga restore",
                )
                rows = await _row_counts(db)
            finally:
                await db.close()
        except BaseException:
            await _undo(settings, data, created_dir)
            raise
    log.info("restored %s: %d credentials verified; server paused", archive, verified)
    return RestoreResult(manifest, rows, verified)


def _precheck(archive: Path, data: Path) -> None:
    if not archive.is_file():
        raise BackupError(f"no archive at {archive}")
    if not _data_dir_empty(data):
        raise BackupError(f"the data dir {data} is not empty: restore only into an empty one")


def _place_files(stage: Path, data: Path) -> bool:
    """Key files (0600) and the paper journal into the data dir; True if it was created."""
    created = not data.exists()
    data.mkdir(parents=True, exist_ok=True)
    for key in KEY_FILES:
        src = stage / "keys" / key
        if src.exists():
            shutil.copyfile(src, data / key)
            os.chmod(data / key, 0o600)
    if (stage / JOURNAL).exists():
        (data / JOURNAL).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(stage / JOURNAL, data / JOURNAL)
    return created


def _place_sqlite(stage: Path, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    if target.exists():
        raise BackupError(f"a database already exists at {target}")
    shutil.copyfile(stage / "database" / "hoga.db", target)


async def _undo(settings: Settings, data: Path, created_dir: bool) -> None:
    """Leave the target as empty as it was."""
    try:
        if settings.is_postgres:
            owner = owner_url(settings)
            await _pg_drop(owner, await _pg_tables(owner))
        else:
            await asyncio.to_thread(_remove_sqlite, sqlite_path(settings.sqlalchemy_url))
    except Exception as e:
        log.warning("restore: could not remove the partly restored database (%s)", e)
    await asyncio.to_thread(_empty_dir, data, created_dir)


def _remove_sqlite(target: Path) -> None:
    for suffix in ("", "-wal", "-shm"):
        Path(f"{target}{suffix}").unlink(missing_ok=True)


def _empty_dir(data: Path, created_dir: bool) -> None:
    if created_dir:
        shutil.rmtree(data, ignore_errors=True)
    else:
        for p in list(data.iterdir()):
            if p.name != "lost+found":
                shutil.rmtree(p) if p.is_dir() else p.unlink(missing_ok=True)
