"""Self-service security of a signed-in user: password change, IP allowlist, TOTP.

Contract: changing the password or turning TOTP off asks for the current password, throttled
like sign-in (a stolen access token must not buy unlimited guesses); a new password ends every
other session; an allowlist that would lock out the address it is set from is refused; TOTP is
on only after a code proves enrolment, and then comes with one-time recovery codes.
"""

from __future__ import annotations

import asyncio

from hoga.domain.errors import Conflict, Forbidden, InvalidInput
from hoga.security import ipallow, keystate, passwords, totp
from hoga.security.auth_core import AuthContext, AuthCore, refuse_while_locked
from hoga.security.vault import totp_aad
from hoga.store.db import Actor
from hoga.store.repos import audit, auth_changes, sessions
from hoga.store.repos import users as users_repo
from hoga.store.repos.users import UserRecord


class SelfService(AuthCore):
    """A user's own security settings; see the module docstring."""

    async def _check_current_password(
        self, user: UserRecord, password: str, ip: str | None, action: str
    ) -> None:
        """Verify a signed-in user's password, throttled like sign-in: a stolen access token
        must not buy unlimited guesses (per (account, address) lock, per-account back-off)."""
        akey, gkey = f"pw:{user.id}|{ip or '?'}", f"pw:{user.id}"
        refuse_while_locked(self.throttle.locked_for(akey, gkey))
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
