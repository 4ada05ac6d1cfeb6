"""Sign-in and sessions: passwords and second factors, throttling, access and refresh
tokens, sign-out, and the check every request passes (``authenticate``).

Contract: a failed sign-in says nothing about which part was wrong and is throttled per
(account, address), per address and per account; a refresh token is single-use - a rotated
token that comes back ends its whole session; a request is refused when its user is disabled
(checked first), its session revoked, or its address outside the user's allowlist.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

from hoga.domain.errors import Forbidden, NotFound, Unauthorized
from hoga.security import ipallow, passwords
from hoga.security.auth_core import BAD_LOGIN, AuthContext, AuthCore, TokenPair, refuse_while_locked
from hoga.security.tokens import hash_token, new_family_id, new_refresh_token
from hoga.store.db import SYSTEM, Actor
from hoga.store.repos import audit, auth_changes, sessions
from hoga.store.repos import users as users_repo
from hoga.store.repos.users import UserRecord


class SignIn(AuthCore):
    """Sign-in, sessions and request authentication; see the module docstring."""

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
        refuse_while_locked(self.throttle.locked_for(ukey, ikey, gkey))
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
