"""Broker access tokens kept across restarts, encrypted with the vault.

Contract: a token is stored per (account, kind), encrypted under the key the database names
current and bound to its user and account (``token_aad``); one that no longer decrypts is
ignored (the adapter issues a new one), never an error.
"""

from __future__ import annotations

import logging

from hoga.domain.clock import Clock
from hoga.security import keystate
from hoga.security.vault import Vault, VaultError
from hoga.store.db import SYSTEM, Actor, Database

log = logging.getLogger(__name__)


class VaultTokenStore:
    """Broker tokens in the ``broker_tokens`` table, encrypted with the vault and bound to
    their account (the server's implementation of ``brokers.base.TokenStore``)."""

    def __init__(self, db: Database, vault: Vault, clock: Clock) -> None:
        self._db = db
        self._vault = vault
        self._clock = clock

    async def _owner(self, account_id: int) -> int | None:
        from hoga.store import tables as t

        async with self._db.tx(SYSTEM) as conn:
            row = (
                await conn.execute(
                    t.broker_accounts.select()
                    .with_only_columns(t.broker_accounts.c.user_id)
                    .where(t.broker_accounts.c.id == account_id)
                )
            ).first()
        return int(row[0]) if row else None

    async def load(self, account_id: int, kind: str) -> tuple[str, float] | None:
        from hoga.security.vault import token_aad
        from hoga.store import tables as t

        user_id = await self._owner(account_id)
        if user_id is None:
            return None
        async with self._db.tx(Actor.user(user_id)) as conn:
            row = (
                await conn.execute(
                    t.broker_tokens.select().where(
                        t.broker_tokens.c.user_id == user_id,
                        t.broker_tokens.c.account_id == account_id,
                        t.broker_tokens.c.kind == kind,
                    )
                )
            ).first()
        if row is None:
            return None
        try:
            token = self._vault.decrypt(
                row.token_enc, token_aad(user_id, account_id, kind)
            ).decode()
        except VaultError:
            log.warning(
                "stored %s token of account %s does not decrypt; ignoring it", kind, account_id
            )
            return None
        return token, row.expires_at.timestamp()

    async def save(self, account_id: int, kind: str, token: str, expires_at: float) -> None:
        from datetime import datetime

        from hoga.domain.clock import KST
        from hoga.security.vault import token_aad
        from hoga.store import tables as t

        user_id = await self._owner(account_id)
        if user_id is None:
            return
        async with self._db.tx(Actor.user(user_id)) as conn:
            kid = await keystate.use_current(self._vault, conn, self._clock.now())
            values = {
                "token_enc": self._vault.encrypt(
                    token.encode(), token_aad(user_id, account_id, kind)
                ),
                "key_id": kid,
                "issued_at": self._clock.now(),
                "expires_at": datetime.fromtimestamp(expires_at, KST),
            }
            res = await conn.execute(
                t.broker_tokens.update()
                .where(
                    t.broker_tokens.c.user_id == user_id,
                    t.broker_tokens.c.account_id == account_id,
                    t.broker_tokens.c.kind == kind,
                )
                .values(**values)
            )
            if res.rowcount == 0:
                await conn.execute(
                    t.broker_tokens.insert().values(
                        user_id=user_id, account_id=account_id, kind=kind, **values
                    )
                )
