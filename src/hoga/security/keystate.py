"""Which vault key encrypts new secrets: decided in the database, shared by every process.

The key *material* lives in the key file (or ``HOGA_MASTER_KEY``); the database holds only key
ids, in ``system_state`` under ``vault.keys``: ``{"current": id, "retired": [ids]}``. Every
encryption first calls ``use_current`` in the same transaction that stores the envelope: it
reads the current id (``FOR SHARE`` on PostgreSQL) and switches the process's vault to it,
reading the key file again if the key is new to this process - or refuses (VaultError) when the
key cannot be found. So a process never encrypts with a key the database no longer names, and a
server running beside ``hoga vault rotate`` learns the new key before the old one is retired.

``promote`` (the rotation's switch) takes the row ``FOR UPDATE``: it waits for encryptions in
flight under the old key to commit, and every later one sees the new key. On SQLite one writer
at a time gives the same order.

Each server also records the key ids it holds and where they come from (``vault.server``), so
the rotation can refuse to switch to a key the running server cannot load (a server started
from ``HOGA_MASTER_KEY`` cannot re-read its environment).
"""

from __future__ import annotations

import os
import socket
from datetime import datetime
from typing import Any

from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from hoga.domain.errors import ServiceUnavailable
from hoga.security.vault import Vault, VaultError
from hoga.store import tables as t
from hoga.store.repos import system as system_repo

KEYS = "vault.keys"
SERVER = "vault.server"


async def register(conn: AsyncConnection, vault: Vault, now: datetime) -> None:
    """On a database that names no key yet, make this vault's current key the current one.
    Never overwrites: another process may have promoted a key meanwhile."""
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    await conn.execute(
        dialect.insert(t.system_state)
        .values(key=KEYS, value={"current": vault.current_key_id, "retired": []}, updated_at=now)
        .on_conflict_do_nothing(index_elements=[t.system_state.c.key])
    )


async def state(conn: AsyncConnection, *, lock: system_repo.Lock = None) -> dict[str, Any]:
    doc = await system_repo.get(conn, KEYS, lock=lock) or {}
    retired = doc.get("retired")
    return {
        "current": doc.get("current"),
        "retired": [str(k) for k in retired] if isinstance(retired, list) else [],
    }


async def use_current(vault: Vault, conn: AsyncConnection, now: datetime) -> str:
    """Call before encrypting in ``conn``'s transaction: the vault then encrypts with the key
    the database names current (see the module docstring). Returns its id."""
    doc = await state(conn, lock="share")
    if doc["current"] is None:
        await register(conn, vault, now)
        doc = await state(conn, lock="share")
    kid = str(doc["current"])
    try:
        vault.use(kid)
    except VaultError as e:
        raise ServiceUnavailable(str(e), "vault.key_unavailable") from None
    return kid


async def promote(conn: AsyncConnection, kid: str, now: datetime) -> str | None:
    """Make ``kid`` the key that encrypts from now on; returns the previous current id."""
    doc = await state(conn, lock="update")
    previous = doc["current"]
    retired = [k for k in doc["retired"] if k != kid]
    await system_repo.put(conn, KEYS, {"current": kid, "retired": retired}, now)
    return str(previous) if previous is not None else None


async def retire(conn: AsyncConnection, kids: list[str], now: datetime) -> None:
    doc = await state(conn, lock="update")
    retired = sorted(set(doc["retired"]) | {k for k in kids if k != doc["current"]})
    await system_repo.put(conn, KEYS, {"current": doc["current"], "retired": retired}, now)


async def record_server(conn: AsyncConnection, vault: Vault, now: datetime) -> None:
    """What the running server can decrypt and whether it can learn new keys (a key file it
    re-reads) or not (the environment)."""
    ring = vault.ring
    await system_repo.put(
        conn,
        SERVER,
        {
            "source": ring.source,
            "path": str(ring.path.resolve()) if ring.path is not None else None,
            "key_ids": sorted(ring.keys),
            "pid": os.getpid(),
            "host": socket.gethostname(),
        },
        now,
    )


async def server_record(conn: AsyncConnection) -> dict[str, Any] | None:
    return await system_repo.get(conn, SERVER)
