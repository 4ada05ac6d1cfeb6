"""User and tier administration (admins and the CLI): creating users within the server's
cap, changing tier, active flag, limits and trading state, and tier limits.

Contract: every change is audited and recorded as an ``auth_changes`` row in the same
transaction, so every process (API, CLI, another server) forgets its stale copy; disabling a
user revokes all their sessions. The user cap counts active users and holds on re-enabling.
"""

from __future__ import annotations

import secrets
from typing import Any

from hoga.domain.errors import InvalidInput, LimitExceeded, NotFound
from hoga.domain.tiers import Tier
from hoga.security import passwords
from hoga.security.auth_core import TRADING_STATES, AuthCore, check_username
from hoga.store.db import SYSTEM
from hoga.store.repos import audit, auth_changes, sessions
from hoga.store.repos import users as users_repo
from hoga.store.repos.users import UserRecord


class UserAdmin(AuthCore):
    """Users and tiers; see the module docstring."""

    async def bootstrap_admin(self, username: str, password: str | None) -> str | None:
        """Create the first admin if there are no users; return a generated password to show once."""
        async with self._db.tx(SYSTEM) as conn:
            if await users_repo.list_users(conn):
                return None
        generated = None
        if not password:
            generated = password = secrets.token_urlsafe(12)
        await self.create_user(username, password, "premium", is_admin=True, actor_id=None, ip=None)
        return generated

    async def create_user(
        self,
        username: str,
        password: str,
        tier: str,
        *,
        is_admin: bool = False,
        actor_id: int | None,
        ip: str | None,
    ) -> UserRecord:
        name = check_username(username)
        problem = passwords.check_policy(password)
        if problem:
            raise InvalidInput(problem, "user.weak_password")
        hashed = await passwords.hash_password(password)
        async with self._create_lock, self._db.tx(SYSTEM) as conn:
            if await users_repo.count_active_users(conn) >= self.max_users:
                raise LimitExceeded(
                    f"이 서버의 사용자 수 한도({self.max_users}명)에 도달했습니다. "
                    "관리자가 HOGA_MAX_USERS를 늘리거나 사용자를 비활성화해야 합니다 "
                    f"(user cap of {self.max_users} reached)",
                    "user.cap_reached",
                    limit=self.max_users,
                )
            user = await users_repo.create_user(
                conn,
                username=name,
                password_hash=hashed,
                tier=tier,
                is_admin=is_admin,
                now=self._clock.now(),
            )
            await audit.record(
                conn,
                action="user.create",
                now=self._clock.now(),
                user_id=user.id,
                actor_id=actor_id,
                target=name,
                ip=ip,
                detail={"tier": tier, "admin": is_admin},
            )
        self._users[user.id] = user
        for hook in self.on_user_created:
            await hook(user)
        return user

    async def list_users(self) -> list[UserRecord]:
        async with self._db.tx(SYSTEM) as conn:
            return await users_repo.list_users(conn)

    async def find_user(self, username: str) -> UserRecord:
        async with self._db.tx(SYSTEM) as conn:
            user = await users_repo.get_user_by_username(conn, username)
        if user is None:
            raise NotFound(f"사용자 {username!r}이(가) 없습니다 (no such user)", "user.not_found")
        return user

    async def admin_update(
        self, user_id: int, *, actor_id: int | None, ip: str | None, **changes: Any
    ) -> UserRecord:
        """Change tier, active flag, limits or trading state of a user (admins, CLI)."""
        allowed = {
            "tier",
            "is_active",
            "is_admin",
            "max_order_value",
            "daily_loss_limit",
            "trading_state",
            "api_calls_per_minute",
        }
        values = {k: v for k, v in changes.items() if k in allowed}
        if "tier" in values:
            await self.tier(values["tier"])
        if "trading_state" in values and values["trading_state"] not in TRADING_STATES:
            raise InvalidInput(
                f"trading_state must be one of {TRADING_STATES}", "user.bad_trading_state"
            )
        before = await self.user(user_id)
        if not values:
            return before  # nothing to change (an empty PATCH used to be an SQL error)
        async with self._create_lock, self._db.tx(SYSTEM) as conn:
            reactivating = values.get("is_active") is True and not before.is_active
            if reactivating and await users_repo.count_active_users(conn) >= self.max_users:
                raise LimitExceeded(
                    f"사용자 수 한도({self.max_users}명)에 도달했습니다", "user.cap_reached"
                )
            user = await users_repo.update_user(conn, user_id, **values)
            for key, value in values.items():
                if getattr(before, key) != value:
                    await audit.record(
                        conn,
                        action=f"user.{key}",
                        now=self._clock.now(),
                        user_id=user_id,
                        actor_id=actor_id,
                        target=user.username,
                        ip=ip,
                        detail={"from": getattr(before, key), "to": value},
                    )
            disabled = values.get("is_active") is False
            if disabled:
                for fam in await sessions.revoke_all(conn, user_id, self._clock.now()):
                    self._revoked[fam] = True
            await auth_changes.record(
                conn,
                user_id,
                auth_changes.USER_DISABLED if disabled else auth_changes.USER_CHANGED,
                self._clock.now(),
            )
        return await self._changed(user)

    async def set_trading_state(self, user_id: int, state: str, reason: str) -> UserRecord:
        user = await self.user(user_id)
        if user.trading_state == state:
            return user
        async with self._db.tx(SYSTEM) as conn:
            user = await users_repo.update_user(conn, user_id, trading_state=state)
            await audit.record(
                conn,
                action="user.trading_state",
                now=self._clock.now(),
                user_id=user_id,
                actor_id=None,
                target=user.username,
                detail={"to": state, "reason": reason},
            )
            await auth_changes.record(conn, user_id, auth_changes.USER_CHANGED, self._clock.now())
        return await self._changed(user)

    async def list_tiers(self) -> list[Tier]:
        async with self._db.tx(SYSTEM) as conn:
            return await users_repo.list_tiers(conn)

    async def update_tier(
        self, name: str, *, actor_id: int | None, ip: str | None, **values: Any
    ) -> Tier:
        for key in ("daily_trades", "max_strategies", "max_positions", "api_calls_per_minute"):
            if key in values and (not isinstance(values[key], int) or values[key] < 0):
                raise InvalidInput(
                    f"{key} must be a non-negative integer", "tier.bad_value", field=key
                )
        if "priority" in values and values["priority"] not in ("normal", "vip"):
            raise InvalidInput(
                "priority must be 'normal' or 'vip'", "tier.bad_value", field="priority"
            )
        async with self._db.tx(SYSTEM) as conn:
            tier = await users_repo.update_tier(conn, name, self._clock.now(), **values)
            await audit.record(
                conn,
                action="tier.update",
                now=self._clock.now(),
                user_id=None,
                actor_id=actor_id,
                target=name,
                ip=ip,
                detail=dict(values.items()),
            )
        self._tiers[name] = tier
        return tier
