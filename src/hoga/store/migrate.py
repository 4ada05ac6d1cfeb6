"""Run Alembic migrations on a connection hoga already holds (no alembic.ini needed)."""

from __future__ import annotations

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util import CommandError
from sqlalchemy.engine import Connection

from hoga.store.db import MIGRATIONS_DIR


def alembic_config(connection: Connection | None = None) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    if connection is not None:
        cfg.attributes["connection"] = connection
    return cfg


def current_revision(connection: Connection) -> str | None:
    return MigrationContext.configure(connection).get_current_revision()


def head_revision() -> str | None:
    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def check_revision(current: str | None) -> str | None:
    """Why a database at revision ``current`` cannot be used by this hoga, or None if it can."""
    script = ScriptDirectory.from_config(alembic_config())
    head = script.get_current_head()
    if current == head:
        return None
    if current is None:
        return (
            f"the database has no hoga schema yet (this hoga needs revision {head}): "
            "run `hoga db upgrade` (or start `hoga serve`, which migrates) first"
        )
    try:
        known = script.get_revision(current) is not None
    except CommandError:
        known = False
    if not known:
        return (
            f"the database schema is at revision {current}, which this hoga does not know - "
            f"it was migrated by a newer hoga (this one stops at {head}); upgrade hoga"
        )
    return (
        f"the database schema is at revision {current}, behind this hoga ({head}): "
        "run `hoga db upgrade` first"
    )


def upgrade_sync(connection: Connection) -> list[str]:
    """Upgrade to head; returns the revisions that were applied, oldest first."""
    before = current_revision(connection)
    command.upgrade(alembic_config(connection), "head")
    script = ScriptDirectory.from_config(alembic_config())
    head = script.get_current_head()
    if before == head:
        return []
    applied = [rev.revision for rev in script.iterate_revisions(head, before)]
    return list(reversed(applied))
