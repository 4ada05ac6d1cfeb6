"""Users, sign-in and sessions: the one place that decides who someone is.

``AuthService`` owns password checks (argon2id), login throttling, TOTP, access and refresh
tokens, IP allowlists, the user cap, tiers and the audit entries for all of it. The API and the
CLI both go through it, so the rules are the same whichever door is used.
"""

from __future__ import annotations

import asyncio
import re
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from hoga.domain.clock import Clock
from hoga.domain.errors import (
    Conflict,
    Forbidden,
    InvalidInput,
    LimitExceeded,
    NotFound,
    Unauthorized,
)
from hoga.domain.tiers import Tier
from hoga.security import ipallow, keystate, passwords, totp
from hoga.security.throttle import Throttle
from hoga.security.tokens import TokenService, hash_token, new_family_id, new_refresh_token
from hoga.security.vault import Vault, VaultError, totp_aad
from hoga.store.db import SYSTEM, Actor, Database
from hoga.store.repos import audit, auth_changes, sessions
from hoga.store.repos import users as users_repo
from hoga.store.repos.users import UserRecord

USERNAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{2,31}")
TRADING_STATES = ("ACTIVE", "REDUCING", "HALTED")
BAD_LOGIN = "아이디 또는 비밀번호가 올바르지 않습니다 (invalid username or password)"

UserHook = Callable[[UserRecord], Awaitable[object]]


@dataclass(frozen=True, slots=True)
class TokenPair:
    access_token: str
    refresh_token: str
    expires_in: int
    token_type: str = "bearer"  # noqa: S105 - the OAuth token type, not a credential

    def as_dict(self) -> dict[str, Any]:
        return {
            "access_token": self.access_token,
            "refresh_token": self.refresh_token,
            "token_type": self.token_type,
            "expires_in": self.expires_in,
        }


@dataclass(frozen=True, slots=True)
class AuthContext:
    """An authenticated request: the user, their tier, and the sign-in session it belongs to."""

    user: UserRecord
    tier: Tier
    session_id: str

    @property
    def user_id(self) -> int:
        return self.user.id

    @property
    def actor(self) -> Actor:
        return Actor.user(self.user.id)


def _locked(wait: float) -> None:
    if wait > 0:
        raise LimitExceeded(
            f"시도가 너무 많습니다. {int(wait // 60) + 1}분 후 다시 시도하세요 (too many attempts)",
            "auth.locked",
            retry_after=wait,
        )


def check_username(username: str) -> str:
    name = username.strip()
    if not USERNAME_RE.fullmatch(name):
        raise InvalidInput(
            "아이디는 3-32자의 영문, 숫자, '_', '.', '-'여야 합니다 (3-32 letters, digits, _ . -)",
            "user.bad_username",
        )
    return name


class AuthService:
    """See the module docstring. All methods are safe to call concurrently."""

    def __init__(
        self,
        db: Database,
        vault: Vault,
        tokens: TokenService,
        clock: Clock,
        *,
        max_users: int,
        refresh_ttl: int,
        throttle: Throttle,
    ) -> None:
        self._db = db
        self._vault = vault
        self.tokens = tokens
        self._clock = clock
        self.max_users = max_users
        self._refresh_ttl = refresh_ttl
        self.throttle: Throttle = throttle
        self._users: dict[int, UserRecord] = {}
        self._tiers: dict[str, Tier] = {}
        self._revoked: dict[str, bool] = {}
        self._totp_steps: dict[int, int] = {}
        self._create_lock = asyncio.Lock()
        self.on_user_created: list[UserHook] = []
        self.on_user_changed: list[UserHook] = []
        #: Called after this process committed an ``auth_changes`` row, so the local watcher
        #: applies it at once instead of at its next poll (security/changes.py).
        self.on_change_written: list[Callable[[], None]] = []

    # --- caches

    async def user(self, user_id: int) -> UserRecord:
        u = self._users.get(user_id)
        if u is None:
            async with self._db.tx(SYSTEM) as conn:
                u = await users_repo.get_user(conn, user_id)
            if u is None:
                raise NotFound("사용자를 찾을 수 없습니다 (no such user)", "user.not_found")
            self._users[user_id] = u
        return u

    async def tier(self, name: str) -> Tier:
        tier = self._tiers.get(name)
        if tier is None:
            async with self._db.tx(SYSTEM) as conn:
                tier = await users_repo.get_tier(conn, name)
            if tier is None:
                raise NotFound(f"등급 {name!r}이(가) 없습니다 (unknown tier)", "tier.not_found")
            self._tiers[name] = tier
        return tier

    async def _changed(self, user: UserRecord) -> UserRecord:
        self._users[user.id] = user
        self._wrote_change()
        for hook in self.on_user_changed:
            await hook(user)
        return user

    def _wrote_change(self) -> None:
        for hook in self.on_change_written:
            hook()

    def apply_change(self, change: auth_changes.AuthChange) -> None:
        """Forget what a change (made here or by another process) made stale."""
        self._users.pop(change.user_id, None)
        if change.kind == auth_changes.SESSION_REVOKED and change.session_id:
            self._revoked[change.session_id] = True
        elif change.kind == auth_changes.USER_DISABLED:
            # Sessions were revoked in the database; re-read whatever was cached.
            self._revoked.clear()

    # --- users

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

    # --- sign-in

    async def login(
        self,
        username: str,
        password: str,
        otp: str | None,
        *,
        ip: str | None,
        user_agent: str | None,
    ) -> TokenPair:
        name = username.strip().lower()
        # Per (account, address) lock, per-address lock, per-account back-off (throttle.py).
        ukey, ikey, gkey = f"u:{name}|{ip or '?'}", f"ip:{ip or '?'}", f"u:{name}"
        _locked(self.throttle.locked_for(ukey, ikey, gkey))
        async with self._db.tx(SYSTEM) as conn:
            user = await users_repo.get_user_by_username(conn, username.strip())
        ok = await passwords.verify_password(user.password_hash if user else None, password)
        if not ok or user is None or not user.is_active:
            await self._fail(ukey, ikey, gkey, user, ip, "password")
            raise Unauthorized(BAD_LOGIN, "auth.invalid_credentials")
        if user.totp_enabled:
            if not otp:
                # The password was right: say a second factor is needed (not a failure).
                raise Unauthorized(
                    "OTP 코드를 입력하세요 (one-time code required)", "auth.otp_required"
                )
            if not await self._check_second_factor(user, otp):
                await self._fail(ukey, ikey, gkey, user, ip, "otp")
                raise Unauthorized(
                    "OTP 코드가 올바르지 않습니다 (invalid one-time code)", "auth.otp_invalid"
                )
        self.throttle.success(ukey)
        pair = await self._new_session(user, ip, user_agent)
        async with self._db.tx(SYSTEM) as conn:
            await audit.record(
                conn,
                action="auth.login",
                now=self._clock.now(),
                user_id=user.id,
                ip=ip,
                detail={"user_agent": (user_agent or "")[:120], "otp": user.totp_enabled},
            )
        return pair

    async def _fail(
        self,
        ukey: str,
        ikey: str,
        gkey: str,
        user: UserRecord | None,
        ip: str | None,
        why: str,
    ) -> None:
        # Addresses get more room than usernames: several people may share one.
        delay = self.throttle.failure(
            ukey, ikey, limits={ikey: self.throttle.max_failures * 4}, backoff=(gkey,)
        )
        async with self._db.tx(SYSTEM) as conn:
            await audit.record(
                conn,
                action="auth.login_failed",
                now=self._clock.now(),
                user_id=user.id if user else None,
                ip=ip,
                detail={"username": gkey[2:][:64], "reason": why},
            )
        if delay:
            await asyncio.sleep(delay)

    async def _check_second_factor(self, user: UserRecord, code: str) -> bool:
        secret = self._totp_secret(user)
        if secret is None:
            return False
        step = totp.verify(secret, code, self._clock.time(), self._totp_steps.get(user.id))
        if step is not None:
            self._totp_steps[user.id] = step
            return True
        async with self._db.tx(Actor.user(user.id)) as conn:
            used = await sessions.use_recovery_code(
                conn, user.id, totp.hash_recovery_code(code), self._clock.now()
            )
            if used:
                await audit.record(
                    conn, action="auth.recovery_code_used", now=self._clock.now(), user_id=user.id
                )
        return used

    def _totp_secret(self, user: UserRecord) -> str | None:
        if not user.totp_secret_enc:
            return None
        try:
            return self._vault.decrypt(user.totp_secret_enc, totp_aad(user.id)).decode()
        except VaultError:
            return None

    async def _new_session(
        self, user: UserRecord, ip: str | None, user_agent: str | None, family: str | None = None
    ) -> TokenPair:
        family = family or new_family_id()
        refresh = new_refresh_token()
        now = self._clock.now()
        async with self._db.tx(Actor.user(user.id)) as conn:
            await sessions.add_refresh(
                conn,
                user.id,
                family_id=family,
                token_hash=hash_token(refresh),
                now=now,
                expires_at=now + timedelta(seconds=self._refresh_ttl),
                ip=ip,
                user_agent=user_agent,
            )
        self._revoked[family] = False
        access, ttl = self.tokens.issue_access(user.id, family)
        return TokenPair(access_token=access, refresh_token=refresh, expires_in=ttl)

    async def refresh(
        self, refresh_token: str, *, ip: str | None, user_agent: str | None
    ) -> TokenPair:
        now = self._clock.now()
        async with self._db.tx(SYSTEM) as conn:
            rec = await sessions.find_refresh(conn, hash_token(refresh_token))
        if rec is None:
            raise Unauthorized(
                "유효하지 않은 갱신 토큰입니다 (invalid refresh token)", "token.invalid"
            )
        if rec.revoked_at is not None:
            raise Unauthorized("로그아웃된 세션입니다 (session revoked)", "token.revoked")
        reused = rec.used_at is not None
        if not reused:
            async with self._db.tx(Actor.user(rec.user_id)) as conn:
                reused = not await sessions.mark_used(conn, rec.user_id, rec.id, now)
        if reused:
            # A rotated token came back: someone holds a copy. End the whole session.
            async with self._db.tx(Actor.user(rec.user_id)) as conn:
                await sessions.revoke_family(conn, rec.user_id, rec.family_id, now)
                await audit.record(
                    conn,
                    action="auth.refresh_reuse",
                    now=now,
                    user_id=rec.user_id,
                    ip=ip,
                    detail={"session": rec.family_id[:8]},
                )
                await auth_changes.record(
                    conn, rec.user_id, auth_changes.SESSION_REVOKED, now, rec.family_id
                )
            self._revoked[rec.family_id] = True
            self._wrote_change()
            raise Unauthorized(
                "이미 사용된 갱신 토큰입니다. 보안을 위해 세션을 종료했습니다 (refresh token reused; session revoked)",
                "token.reused",
            )
        if rec.expires_at <= now:
            raise Unauthorized(
                "세션이 만료되었습니다. 다시 로그인하세요 (session expired)", "token.expired"
            )
        user = await self.user(rec.user_id)
        if not user.is_active:
            raise Unauthorized(BAD_LOGIN, "auth.invalid_credentials")
        return await self._new_session(user, ip, user_agent, family=rec.family_id)

    async def logout(self, ctx: AuthContext, *, ip: str | None) -> None:
        await self.revoke_session(ctx.user_id, ctx.session_id, ip=ip, action="auth.logout")

    async def revoke_session(
        self, user_id: int, session_id: str, *, ip: str | None, action: str = "auth.session_revoked"
    ) -> None:
        async with self._db.tx(Actor.user(user_id)) as conn:
            await sessions.revoke_family(conn, user_id, session_id, self._clock.now())
            await audit.record(
                conn,
                action=action,
                now=self._clock.now(),
                user_id=user_id,
                ip=ip,
                detail={"session": session_id[:8]},
            )
            await auth_changes.record(
                conn, user_id, auth_changes.SESSION_REVOKED, self._clock.now(), session_id
            )
        self._revoked[session_id] = True
        self._wrote_change()

    async def list_sessions(self, user_id: int) -> list[sessions.RefreshRecord]:
        async with self._db.tx(Actor.user(user_id)) as conn:
            return await sessions.active_families(conn, user_id, self._clock.now())

    async def authenticate(self, token: str, ip: str | None) -> AuthContext:
        """Verify an access token for a request from ``ip``; raise 401/403 otherwise."""
        claims = self.tokens.verify_access(token)
        try:
            user = await self.user(claims.user_id)
        except NotFound:
            raise Unauthorized(
                "유효하지 않은 토큰입니다 (invalid token)", "token.invalid"
            ) from None
        # Disabled first: disabling also revokes the sessions, and the caller should learn why.
        if not user.is_active:
            raise Unauthorized("비활성화된 계정입니다 (account disabled)", "auth.disabled")
        revoked = self._revoked.get(claims.session_id)
        if revoked is None:
            async with self._db.tx(Actor.user(claims.user_id)) as conn:
                revoked = await sessions.family_revoked(conn, claims.user_id, claims.session_id)
            self._revoked[claims.session_id] = revoked
        if revoked:
            raise Unauthorized("로그아웃된 세션입니다 (session revoked)", "token.revoked")
        if not ipallow.allowed(ip, user.ip_allowlist):
            raise Forbidden(
                f"이 IP({ip})에서는 접근할 수 없습니다 (address not in your allowlist)",
                "auth.ip_not_allowed",
            )
        return AuthContext(user=user, tier=await self.tier(user.tier), session_id=claims.session_id)

    # --- self-service

    async def _check_current_password(
        self, user: UserRecord, password: str, ip: str | None, action: str
    ) -> None:
        """Verify a signed-in user's password, throttled like sign-in: a stolen access token
        must not buy unlimited guesses (per (account, address) lock, per-account back-off)."""
        akey, gkey = f"pw:{user.id}|{ip or '?'}", f"pw:{user.id}"
        _locked(self.throttle.locked_for(akey, gkey))
        if await passwords.verify_password(user.password_hash, password):
            self.throttle.success(akey)
            return
        delay = self.throttle.failure(akey, backoff=(gkey,))
        async with self._db.tx(Actor.user(user.id)) as conn:
            await audit.record(
                conn, action=action, now=self._clock.now(), user_id=user.id, ip=ip, detail={}
            )
        if delay:
            await asyncio.sleep(delay)
        raise Forbidden(
            "현재 비밀번호가 올바르지 않습니다 (current password is wrong)",
            "auth.wrong_password",
        )

    async def change_password(
        self, ctx: AuthContext, old: str, new: str, *, ip: str | None
    ) -> None:
        await self._check_current_password(ctx.user, old, ip, "auth.password_change_failed")
        problem = passwords.check_policy(new)
        if problem:
            raise InvalidInput(problem, "user.weak_password")
        hashed = await passwords.hash_password(new)
        now = self._clock.now()
        async with self._db.tx(Actor.user(ctx.user_id)) as conn:
            user = await users_repo.update_user(
                conn, ctx.user_id, password_hash=hashed, password_changed_at=now
            )
            # Every other session ends; this one stays.
            for fam in await sessions.active_families(conn, ctx.user_id, now):
                if fam.family_id != ctx.session_id:
                    await sessions.revoke_family(conn, ctx.user_id, fam.family_id, now)
                    await auth_changes.record(
                        conn, ctx.user_id, auth_changes.SESSION_REVOKED, now, fam.family_id
                    )
                    self._revoked[fam.family_id] = True
            await auth_changes.record(conn, ctx.user_id, auth_changes.USER_CHANGED, now)
            await audit.record(
                conn, action="auth.password_changed", now=now, user_id=ctx.user_id, ip=ip
            )
        await self._changed(user)

    async def set_ip_allowlist(
        self, ctx: AuthContext, entries: list[str], *, ip: str | None
    ) -> list[str]:
        cidrs = ipallow.normalize(entries)
        if cidrs and not ipallow.allowed(ip, cidrs):
            raise InvalidInput(
                f"현재 접속 IP({ip})가 목록에 없어 스스로 차단됩니다 (this list would lock you out)",
                "ip_allowlist.locks_you_out",
            )
        async with self._db.tx(Actor.user(ctx.user_id)) as conn:
            user = await users_repo.update_user(conn, ctx.user_id, ip_allowlist=cidrs)
            await audit.record(
                conn,
                action="security.ip_allowlist",
                now=self._clock.now(),
                user_id=ctx.user_id,
                ip=ip,
                detail={"entries": cidrs},
            )
        await self._changed(user)
        return cidrs

    async def totp_begin(self, ctx: AuthContext, *, ip: str | None) -> dict[str, str]:
        if ctx.user.totp_enabled:
            raise Conflict(
                "OTP가 이미 켜져 있습니다 (TOTP already enabled)", "totp.already_enabled"
            )
        secret = totp.new_secret()
        async with self._db.tx(Actor.user(ctx.user_id)) as conn:
            await keystate.use_current(self._vault, conn, self._clock.now())
            enc = self._vault.encrypt(secret.encode(), totp_aad(ctx.user_id))
            user = await users_repo.update_user(conn, ctx.user_id, totp_secret_enc=enc)
            await audit.record(
                conn, action="totp.enrol_started", now=self._clock.now(), user_id=ctx.user_id, ip=ip
            )
        await self._changed(user)
        uri = totp.provisioning_uri(secret, ctx.user.username)
        return {"secret": secret, "otpauth_uri": uri, "qr_svg": totp.qr_svg_data_uri(uri)}

    async def totp_confirm(self, ctx: AuthContext, code: str, *, ip: str | None) -> list[str]:
        user = await self.user(ctx.user_id)
        if user.totp_enabled:
            raise Conflict(
                "OTP가 이미 켜져 있습니다 (TOTP already enabled)", "totp.already_enabled"
            )
        secret = self._totp_secret(user)
        if secret is None:
            raise Conflict("먼저 OTP 등록을 시작하세요 (start enrolment first)", "totp.not_started")
        step = totp.verify(secret, code, self._clock.time())
        if step is None:
            raise InvalidInput("OTP 코드가 올바르지 않습니다 (invalid code)", "totp.invalid_code")
        self._totp_steps[user.id] = step
        codes = totp.new_recovery_codes()
        now = self._clock.now()
        async with self._db.tx(Actor.user(ctx.user_id)) as conn:
            user = await users_repo.update_user(conn, ctx.user_id, totp_enabled=True)
            await sessions.replace_recovery_codes(
                conn, ctx.user_id, [totp.hash_recovery_code(c) for c in codes], now
            )
            await audit.record(conn, action="totp.enabled", now=now, user_id=ctx.user_id, ip=ip)
        await self._changed(user)
        return codes

    async def totp_disable(
        self, ctx: AuthContext, password: str, code: str, *, ip: str | None
    ) -> None:
        user = await self.user(ctx.user_id)
        if not user.totp_enabled:
            raise Conflict("OTP가 꺼져 있습니다 (TOTP is not enabled)", "totp.not_enabled")
        await self._check_current_password(user, password, ip, "totp.disable_failed")
        if not await self._check_second_factor(user, code):
            raise InvalidInput("OTP 코드가 올바르지 않습니다 (invalid code)", "totp.invalid_code")
        now = self._clock.now()
        async with self._db.tx(Actor.user(ctx.user_id)) as conn:
            user = await users_repo.update_user(
                conn, ctx.user_id, totp_enabled=False, totp_secret_enc=None
            )
            await sessions.replace_recovery_codes(conn, ctx.user_id, [], now)
            await audit.record(conn, action="totp.disabled", now=now, user_id=ctx.user_id, ip=ip)
        await self._changed(user)

    async def recovery_codes_left(self, user_id: int) -> int:
        async with self._db.tx(Actor.user(user_id)) as conn:
            return await sessions.count_recovery_codes(conn, user_id)

    # --- audit

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
