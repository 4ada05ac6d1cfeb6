"""Access tokens (short-lived JWTs) and refresh tokens (opaque, stored hashed, rotating).

Access tokens are HS256 JWTs carrying the user id and the session (refresh-token family) id.
Only HS256 is accepted, so ``alg: none`` and algorithm-confusion tokens are refused. Refresh
tokens are random strings; the database keeps only their SHA-256, and each use replaces the
token with a new one of the same family. Presenting a used one again revokes the family.
"""

from __future__ import annotations

import hashlib
import logging
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

import jwt

from hoga.domain.clock import Clock
from hoga.domain.errors import Unauthorized

log = logging.getLogger(__name__)

ALGORITHM = "HS256"
ISSUER = "hoga"


class KeyFileError(Exception):
    """The token key file exists but cannot be used."""


def load_or_create_secret(path: Path, nbytes: int = 64) -> bytes:
    """A random secret kept in a 0600 file, created on first use."""
    if path.exists():
        data = path.read_bytes().strip()
        if len(data) < 32:
            raise KeyFileError(
                f"token key file {path} is corrupt (too short); delete it to make a new one"
            )
        return data
    path.parent.mkdir(parents=True, exist_ok=True)
    value = secrets.token_urlsafe(nbytes).encode()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(value)
    return value


@dataclass(frozen=True, slots=True)
class AccessClaims:
    user_id: int
    session_id: str
    expires_at: float


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def new_refresh_token() -> str:
    return secrets.token_urlsafe(32)


def new_family_id() -> str:
    return secrets.token_hex(16)


def _expired() -> Unauthorized:
    return Unauthorized("토큰이 만료되었습니다 (token expired)", "token.expired")


#: Verified access tokens remembered at most (a few per signed-in session and client).
VERIFIED_CACHE_SIZE = 4096


class TokenService:
    """Issues and verifies access tokens.

    ``verify_access`` remembers the claims of tokens it verified, keyed by the whole token
    string (never the signature alone: a cached signature must not vouch for another payload),
    until they expire: decoding and checking the HMAC again costs more than the rest of a small
    request. Only the signature check is skipped; expiry is checked on every call, and
    revocation, disabling and the allowlist are the caller's checks (``AuthService``), made on
    every request as before.
    """

    def __init__(self, secret: bytes, clock: Clock, access_ttl: int) -> None:
        if len(secret) < 32:
            raise ValueError("token secret too short")
        self._secret = secret
        self._clock = clock
        self.access_ttl = access_ttl
        self._verified: dict[str, AccessClaims] = {}

    def issue_access(self, user_id: int, session_id: str) -> tuple[str, int]:
        now = int(self._clock.time())
        claims = {
            "iss": ISSUER,
            "sub": str(user_id),
            "sid": session_id,
            "iat": now,
            "exp": now + self.access_ttl,
            "typ": "access",
            "jti": secrets.token_hex(8),
        }
        return jwt.encode(claims, self._secret, algorithm=ALGORITHM), self.access_ttl

    def verify_access(self, token: str) -> AccessClaims:
        claims = self._verified.get(token)
        if claims is None:
            claims = self._decode(token)
            if len(self._verified) >= VERIFIED_CACHE_SIZE:
                self._forget_expired()
            self._verified[token] = claims
        if claims.expires_at <= self._clock.time():
            self._verified.pop(token, None)
            raise _expired()
        return claims

    def _forget_expired(self) -> None:
        now = self._clock.time()
        self._verified = {k: c for k, c in self._verified.items() if c.expires_at > now}
        if len(self._verified) >= VERIFIED_CACHE_SIZE:
            # All still valid (many sessions): start over rather than grow without bound.
            self._verified.clear()

    def _decode(self, token: str) -> AccessClaims:
        """The claims of a token whose signature, issuer, type, expiry and subject hold."""
        try:
            # Check expiry against our clock (tests move it), not the library's wall clock.
            claims = jwt.decode(
                token,
                self._secret,
                algorithms=[ALGORITHM],
                issuer=ISSUER,
                options={"require": ["exp", "iat", "sub", "sid"], "verify_exp": False},
            )
        except jwt.InvalidTokenError as e:
            raise Unauthorized(
                "유효하지 않은 토큰입니다 (invalid token)", "token.invalid", reason=type(e).__name__
            ) from None
        if claims.get("typ") != "access":
            raise Unauthorized("유효하지 않은 토큰입니다 (invalid token)", "token.invalid")
        if float(claims["exp"]) <= self._clock.time():
            raise _expired()
        try:
            user_id = int(claims["sub"])
        except (TypeError, ValueError):
            raise Unauthorized(
                "유효하지 않은 토큰입니다 (invalid token)", "token.invalid"
            ) from None
        return AccessClaims(
            user_id=user_id, session_id=str(claims["sid"]), expires_at=float(claims["exp"])
        )
