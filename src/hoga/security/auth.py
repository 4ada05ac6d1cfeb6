"""Users, sign-in and sessions: the one place that decides who someone is.

``AuthService`` owns password checks (argon2id), login throttling, TOTP, access and refresh
tokens, IP allowlists, the user cap, tiers and the audit entries for all of it. The API and the
CLI both go through it, so the rules are the same whichever door is used. It is cut by job:
``user_admin.py`` (users and tiers), ``signin.py`` (sign-in, sessions, ``authenticate``),
``self_service.py`` (password, allowlist, TOTP), over the shared state in ``auth_core.py``;
the audit trail's reads and writes are here.
"""

from __future__ import annotations

from typing import Any

from hoga.security.self_service import SelfService
from hoga.security.signin import SignIn
from hoga.security.user_admin import UserAdmin
from hoga.store.db import SYSTEM, Actor
from hoga.store.repos import audit


class AuthService(UserAdmin, SignIn, SelfService):
    """See the module docstring. All methods are safe to call concurrently."""

    async def log_audit(
        self,
        user_id: int | None,
        action: str,
        *,
        ip: str | None = None,
        target: str | None = None,
        actor_id: int | None = None,
        **detail: Any,
    ) -> None:
        actor = Actor.user(user_id) if user_id is not None else SYSTEM
        async with self._db.tx(actor) as conn:
            await audit.record(
                conn,
                action=action,
                now=self._clock.now(),
                user_id=user_id,
                actor_id=actor_id,
                target=target,
                ip=ip,
                detail=detail,
            )

    async def audit_entries(
        self, user_id: int, limit: int = 100, before_id: int | None = None
    ) -> list[audit.AuditEntry]:
        async with self._db.tx(Actor.user(user_id)) as conn:
            return await audit.list_for_user(conn, user_id, limit, before_id)

    async def all_audit_entries(
        self,
        limit: int = 200,
        before_id: int | None = None,
        action: str | None = None,
        user_id: int | None = None,
    ) -> list[audit.AuditEntry]:
        async with self._db.tx(SYSTEM) as conn:
            return await audit.list_all(conn, limit, before_id, action, user_id)
