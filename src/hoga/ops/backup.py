"""``hoga backup``: one archive of a running server, without stopping it.

The archive (``hoga-backup-<UTC time>.tar.gz``) holds:

* ``database/hoga.db`` - SQLite: a copy taken with SQLite's online backup API on a connection
  of its own, opened, used and closed in one worker thread (docs/architecture.md, "Threads and
  SQLite connections"); in WAL mode the copy is one consistent snapshot and the server's writers
  are never blocked. Or ``database/hoga.pgdump`` - PostgreSQL: ``pg_dump -Fc`` of the database
  (one consistent snapshot, as the system role from ``HOGA_DATABASE_SYSTEM_URL``, whose RLS
  policy admits every row; the password goes through ``PGPASSWORD``, never the command line).
* ``keys/master.key`` and ``keys/jwt.key`` - the vault and token keys, when they are files (a
  key given in the environment is not written anywhere; the manifest says so).
* ``paper/journal.jsonl`` - the paper broker's journal, up to its last complete line.
* ``manifest.json`` - format, hoga version, creation time, database kind, schema revision and
  the sha256 and size of every other member.

The archive is written under a temporary name and renamed into place, so a backup directory
never holds a half-written archive under a real name. ``prune`` keeps the newest N.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import os
import shutil
import sqlite3
import tarfile
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine

from hoga import __version__
from hoga.config import Settings

log = logging.getLogger(__name__)

FORMAT = 1
PREFIX = "hoga-backup-"
SUFFIX = ".tar.gz"
KEY_FILES = ("master.key", "jwt.key")
JOURNAL = Path("paper") / "journal.jsonl"


class BackupError(Exception):
    """A backup or restore could not be made; the message says what to fix."""


@dataclass(frozen=True)
class BackupResult:
    """Where the archive went and what it holds (the manifest)."""

    path: Path
    manifest: dict[str, Any]


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def sqlite_path(url: str) -> Path:
    db = make_url(url).database
    if not db or db == ":memory:":
        raise BackupError("an in-memory SQLite database cannot be backed up")
    return Path(db)


def libpq_target(url: str) -> tuple[str, dict[str, str]]:
    """A libpq URI without the password, and the environment that carries the password."""
    parsed = make_url(url)
    env = dict(os.environ)
    if parsed.password:
        env["PGPASSWORD"] = str(parsed.password)
    uri = parsed.set(drivername="postgresql", password=None).render_as_string(hide_password=False)
    return uri, env


def dump_url(settings: Settings) -> str:
    """The login pg_dump uses: the system role (``HOGA_DATABASE_SYSTEM_URL``), whose policy
    admits every row of the forced row-level security. Neither the owner (no policy names it)
    nor the app role (its own user's rows only) would see every row. Without separate logins
    (development) the one URL is a superuser, which RLS does not restrict."""
    return settings.database_system_url or settings.sqlalchemy_url


def owner_url(settings: Settings) -> str:
    """The login that owns the schema: migrations, the schema revision, restore."""
    return settings.database_owner_url or settings.sqlalchemy_url


def _copy_sqlite(src: Path, dst: Path) -> str | None:
    """Online backup of ``src`` into ``dst``; returns the copy's schema revision.

    Runs in a worker thread: both connections are opened, used and closed here."""
    if not src.exists():
        raise BackupError(f"no database at {src}")
    # Read/write open (a read-only one cannot join a WAL database whose -shm it cannot map);
    # only reads are issued.
    source = sqlite3.connect(src, timeout=30)
    try:
        target = sqlite3.connect(dst)
        try:
            source.backup(target)  # all pages in one step: one consistent snapshot
            target.execute("PRAGMA journal_mode=DELETE")
            ok = target.execute("PRAGMA quick_check").fetchone()[0]
            if ok != "ok":
                raise BackupError(f"the database copy failed its integrity check: {ok}")
            try:
                row = target.execute("select version_num from alembic_version").fetchone()
            except sqlite3.OperationalError:
                row = None
        finally:
            target.close()
    finally:
        source.close()
    return str(row[0]) if row else None


def _copy_journal(src: Path, dst: Path) -> None:
    """Copy the journal up to its last complete line (the server may be appending)."""
    data = src.read_bytes()
    cut = data.rfind(b"\n")
    dst.write_bytes(data[: cut + 1] if cut >= 0 else b"")


async def pg_revision(url: str) -> str | None:
    from hoga.store.migrate import current_revision

    engine = create_async_engine(url)
    try:
        async with engine.connect() as conn:
            rev: str | None = await conn.run_sync(current_revision)
            return rev
    finally:
        await engine.dispose()


async def run_tool(*argv: str, env: dict[str, str], what: str) -> bytes:
    """Run a PostgreSQL client tool (``pg_dump``, ``pg_restore``) and return its output; a
    failure is a ``BackupError`` naming ``what`` with the tool's own message."""
    proc = await asyncio.create_subprocess_exec(
        *argv,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env,
    )
    out, err = await proc.communicate()
    if proc.returncode != 0:
        raise BackupError(f"{what} failed: {err.decode(errors='replace').strip()[:500]}")
    return out


async def _pg_dump(url: str, dst: Path) -> None:
    uri, env = libpq_target(url)
    await run_tool(
        "pg_dump",
        "--format=custom",
        "--enable-row-security",
        "--file",
        str(dst),
        "--dbname",
        uri,
        env=env,
        what="pg_dump",
    )


def _pack(stage: Path, out_dir: Path, manifest: dict[str, Any], name: str) -> Path:
    files: dict[str, Any] = {}
    for path in sorted(p for p in stage.rglob("*") if p.is_file()):
        rel = path.relative_to(stage).as_posix()
        files[rel] = {"sha256": sha256_file(path), "size": path.stat().st_size}
    manifest = {**manifest, "files": files}
    (stage / "manifest.json").write_text(json.dumps(manifest, indent=2), encoding="utf-8")
    final = out_dir / name
    part = out_dir / f".{name}.part"
    with tarfile.open(part, "w:gz", compresslevel=6) as tar:
        tar.add(stage / "manifest.json", arcname="manifest.json")
        for rel in files:
            tar.add(stage / rel, arcname=rel)
    os.chmod(part, 0o600)  # key files inside: readable by the owner only
    part.replace(final)
    return final


async def create_backup(
    settings: Settings, out_dir: Path, *, now: datetime | None = None
) -> BackupResult:
    """Write one archive of the server described by ``settings`` into ``out_dir``."""
    now = now or datetime.now(UTC)
    await asyncio.to_thread(out_dir.mkdir, parents=True, exist_ok=True)
    data = Path(settings.data_dir)
    name = f"{PREFIX}{now.astimezone(UTC).strftime('%Y%m%dT%H%M%S%fZ')}{SUFFIX}"
    manifest: dict[str, Any] = {
        "format": FORMAT,
        "hoga_version": __version__,
        "created_at": now.astimezone(UTC).isoformat(),
        "database": "postgresql" if settings.is_postgres else "sqlite",
        "master_key": "environment" if settings.master_key else "file",
        "jwt_key": "environment" if settings.jwt_secret else "file",
    }
    stage = Path(tempfile.mkdtemp(prefix=".hoga-backup-", dir=out_dir))
    try:
        await asyncio.to_thread(_stage_files, data, stage)
        if settings.is_postgres:
            manifest["schema_revision"] = await pg_revision(owner_url(settings))
            await _pg_dump(dump_url(settings), stage / "database" / "hoga.pgdump")
        else:
            manifest["schema_revision"] = await asyncio.to_thread(
                _copy_sqlite, sqlite_path(settings.sqlalchemy_url), stage / "database" / "hoga.db"
            )
        path = await asyncio.to_thread(_pack, stage, out_dir, manifest, name)
    finally:
        await asyncio.to_thread(shutil.rmtree, stage, ignore_errors=True)
    log.info("backup written: %s", path)
    return BackupResult(path, await asyncio.to_thread(read_manifest, path))


def read_manifest(archive: Path) -> dict[str, Any]:
    with tarfile.open(archive, "r:gz") as tar:
        member = tar.extractfile("manifest.json")
        if member is None:
            raise BackupError(f"{archive} has no manifest.json")
        doc: dict[str, Any] = json.loads(member.read())
    return doc


def _stage_files(data: Path, stage: Path) -> None:
    """Key files and the paper journal into the staging dir (worker thread)."""
    (stage / "database").mkdir()
    (stage / "keys").mkdir()
    for key in KEY_FILES:
        if (data / key).exists():
            shutil.copyfile(data / key, stage / "keys" / key)
    if (data / JOURNAL).exists():
        (stage / "paper").mkdir()
        _copy_journal(data / JOURNAL, stage / JOURNAL)


def archives(out_dir: Path) -> list[Path]:
    """Backups in ``out_dir``, oldest first (names sort by creation time)."""
    if not out_dir.is_dir():
        return []
    return sorted(
        p for p in out_dir.iterdir() if p.name.startswith(PREFIX) and p.name.endswith(SUFFIX)
    )


def prune(out_dir: Path, keep: int) -> list[Path]:
    """Delete all but the newest ``keep`` archives; returns the deleted ones."""
    old = archives(out_dir)[:-keep] if keep > 0 else []
    for p in old:
        p.unlink(missing_ok=True)
    return old
