"""Password hashing with argon2id. Hashing is slow on purpose, so it runs in a thread."""

from __future__ import annotations

import asyncio

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

# argon2-cffi's defaults are RFC 9106's "low memory" profile (argon2id, 64 MiB, t=3).
_hasher = PasswordHasher()

MIN_LENGTH = 8
MAX_LENGTH = 256

# A valid hash of a random password, verified when the user does not exist so that the
# response time does not tell whether a username is taken.
_DUMMY_HASH = _hasher.hash("hoga-dummy-password-for-timing")


def check_policy(password: str) -> str | None:
    """Why a password is unacceptable, or None."""
    if len(password) < MIN_LENGTH:
        return f"비밀번호는 {MIN_LENGTH}자 이상이어야 합니다 (at least {MIN_LENGTH} characters)"
    if len(password) > MAX_LENGTH:
        return f"비밀번호는 {MAX_LENGTH}자 이하여야 합니다"
    if password.strip() != password or not password.strip():
        return "비밀번호 앞뒤에 공백을 둘 수 없습니다"
    return None


def hash_password_sync(password: str) -> str:
    return _hasher.hash(password)


async def hash_password(password: str) -> str:
    return await asyncio.to_thread(_hasher.hash, password)


def _verify(hashed: str | None, password: str) -> bool:
    try:
        return _hasher.verify(hashed or _DUMMY_HASH, password) and hashed is not None
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


async def verify_password(hashed: str | None, password: str) -> bool:
    """Constant-work check; ``hashed=None`` (no such user) still costs one verification."""
    return await asyncio.to_thread(_verify, hashed, password)
