"""``hoga vault rotate``: a new master key, safe beside a running server.

The phases, each committed before the next begins:

1. **Add** the new key to the key file (the server re-reads the file when the database names a
   key it does not have). With ``HOGA_MASTER_KEY`` the new key is the first one listed, and the
   running server must already have it (it cannot re-read its environment): otherwise the
   rotation refuses before changing anything.
2. **Promote** it in the database (``security/keystate.promote``): from this commit on, every
   process encrypts with it; encryptions in flight under the old key finish first.
3. **Re-encrypt** every stored secret under it (``reencrypt_secrets``).
4. **Retire** the old keys - only once no stored envelope names them - in the database, then
   remove them from the key file.

A rotation interrupted after phase 2 is finished by running it again.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Table, select
from sqlalchemy.ext.asyncio import AsyncConnection

from hoga.domain.clock import Clock
from hoga.domain.errors import Conflict
from hoga.execution.accounts import AccountService
from hoga.security import keystate
from hoga.security.vault import Vault, account_aad, channel_aad, token_aad, totp_aad
from hoga.store import tables as t
from hoga.store.db import SYSTEM, Database


@dataclass
class Rotation:
    """What a rotation did."""

    new_key: str
    reencrypted: int = 0
    retired: list[str] = field(default_factory=list)
    kept_in_env: list[str] = field(default_factory=list)


async def _stragglers(db: Database, current: str) -> int:
    """Stored envelopes under any key other than ``current``."""
    async with db.tx(SYSTEM) as conn:
        accounts = (
            await conn.execute(
                select(t.broker_accounts.c.secrets_enc).where(
                    t.broker_accounts.c.secrets_enc.is_not(None)
                )
            )
        ).all()
        tokens = (await conn.execute(select(t.broker_tokens.c.token_enc))).all()
        totp = (
            await conn.execute(
                select(t.users.c.totp_secret_enc).where(t.users.c.totp_secret_enc.is_not(None))
            )
        ).all()
        channels = (await conn.execute(select(t.notification_channels.c.url_enc))).all()
    return sum(
        1
        for (env,) in [*accounts, *tokens, *totp, *channels]
        if env and Vault.key_id_of(env) != current
    )


async def _check_server_can_follow(db: Database, vault: Vault, new: str, running: bool) -> None:
    if not running:
        return
    async with db.tx(SYSTEM) as conn:
        rec = await keystate.server_record(conn)
    if rec is None:
        return
    ids = rec.get("key_ids") or []
    path = rec.get("path")
    ours = str(vault.ring.path.resolve()) if vault.ring.path is not None else None
    if new in ids or (path is not None and path == ours):
        return
    where = "HOGA_MASTER_KEY" if rec.get("source") == "environment" else f"key file {path}"
    raise Conflict(
        f"the running server (pid {rec.get('pid')} on {rec.get('host')}) reads its keys from "
        f"{where} and does not have key {new!r}: restart it with the new key added first "
        "(new key first, old key kept), then rotate",
        "vault.server_lacks_key",
    )


async def rotate_vault_keys(
    db: Database,
    vault: Vault,
    accounts: AccountService,
    clock: Clock,
    *,
    server_running: bool,
) -> Rotation:
    """Run the rotation's four phases (see the module docstring)."""
    ring = vault.ring
    async with db.tx(SYSTEM) as conn:
        await keystate.register(conn, vault, clock.now())
        before = await keystate.state(conn)
    if ring.path is not None:
        new = ring.add_key() if before["current"] in (None, ring.current) else ring.current
    else:
        new = ring.current  # HOGA_MASTER_KEY: the first key listed
    await _check_server_can_follow(db, vault, new, server_running)
    async with db.tx(SYSTEM) as conn:
        await keystate.promote(conn, new, clock.now())
    result = Rotation(new)
    for _ in range(3):
        result.reencrypted += await reencrypt_secrets(db, vault, clock)
        accounts.forget_credentials()
        if await _stragglers(db, new) == 0:
            break
    else:
        raise Conflict(
            "secrets under the old key keep appearing; nothing was retired - run the rotation "
            "again",
            "vault.rotation_incomplete",
        )
    old = [k for k in ring.keys if k != new]
    async with db.tx(SYSTEM) as conn:
        await keystate.retire(conn, old, clock.now())
    if ring.path is not None:
        result.retired = ring.retire_others()
    else:
        result.retired, result.kept_in_env = old, old
    return result


async def reencrypt_secrets(db: Database, vault: Vault, clock: Clock) -> int:
    """Re-encrypt every stored secret under the key the database names current (broker
    credentials, broker tokens, TOTP secrets, notification channel URLs); returns how many."""
    n = 0
    async with db.tx(SYSTEM) as conn:
        await keystate.use_current(vault, conn, clock.now())
        rows = (await conn.execute(t.broker_accounts.select())).all()
        for r in rows:
            if not r.secrets_enc:
                continue
            aad = account_aad(r.user_id, r.id, r.broker, r.env)
            doc = vault.decrypt_json(r.secrets_enc, aad)
            digits = doc.get("account_no", "").replace("-", "")
            await conn.execute(
                t.broker_accounts.update()
                .where(t.broker_accounts.c.id == r.id)
                .values(
                    secrets_enc=vault.encrypt_json(doc, aad),
                    key_id=vault.current_key_id,
                    fingerprint=vault.fingerprint(str(r.user_id), r.broker, r.env, digits),
                )
            )
            n += 1
        n += await _reencrypt(
            conn,
            vault,
            t.broker_tokens,
            "token_enc",
            lambda r: token_aad(r.user_id, r.account_id, r.kind),
        )
        n += await _reencrypt(conn, vault, t.users, "totp_secret_enc", lambda r: totp_aad(r.id))
        # Notification channel URLs (notify/store.py), bound to user and row like the rest.
        n += await _reencrypt(
            conn,
            vault,
            t.notification_channels,
            "url_enc",
            lambda r: channel_aad(r.user_id, r.id),
        )
    return n


async def _reencrypt(
    conn: AsyncConnection, vault: Vault, table: Table, column: str, aad_of: Callable[[Any], str]
) -> int:
    """Re-encrypt the secret in ``column`` of every row of ``table`` that has one (``aad_of``
    gives the row's binding), recording the key in ``key_id`` where the table keeps one;
    returns how many rows."""
    secret = table.c[column]
    n = 0
    for r in (await conn.execute(table.select().where(secret.is_not(None)))).all():
        aad = aad_of(r)
        values = {column: vault.encrypt(vault.decrypt(getattr(r, column), aad), aad)}
        if "key_id" in table.c:
            values["key_id"] = vault.current_key_id
        await conn.execute(table.update().where(table.c.id == r.id).values(values))
        n += 1
    return n
