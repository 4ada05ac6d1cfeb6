"""The credential vault: AES-256-GCM envelopes bound to their owner by associated data.

An envelope is ``v1.<key_id>.<nonce>.<ciphertext>`` (base64url parts). The associated data
names what the secret belongs to (user, broker, environment, account row), so an envelope
copied into another user's row - or another account's - fails to decrypt instead of leaking.

Master keys come from ``HOGA_MASTER_KEY`` or from a key file created 0600 on first start.
The environment form is either one base64 key or ``id:base64`` pairs separated by commas, the
first being current. The key file is JSON ``{"current": id, "keys": {id: base64}}``. Every
envelope names its key id, so ``hoga vault rotate`` can add a key, re-encrypt every record under
it and retire the old one.

Which key encrypts new records is decided in the database (``security/keystate.py``), not by
this process's memory: a rotation run beside a live server switches the server to the new key
before the old one is retired, and a key the database no longer names is never used to
encrypt. The key material itself never enters the database.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import logging
import os
import secrets
import stat
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

log = logging.getLogger(__name__)

_VERSION = "v1"
_KEY_BYTES = 32
_NONCE_BYTES = 12


class VaultError(Exception):
    """A key is missing or corrupt, or an envelope does not open (tampered, moved, wrong key)."""


def _b64e(b: bytes) -> str:
    return base64.urlsafe_b64encode(b).decode().rstrip("=")


def _b64d(s: str) -> bytes:
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


def _decode_key(text: str, where: str) -> bytes:
    try:
        key = base64.b64decode(
            text.strip() + "=" * (-len(text.strip()) % 4), altchars=b"-_", validate=False
        )
    except (binascii.Error, ValueError):
        raise VaultError(f"{where}: not base64") from None
    if len(key) != _KEY_BYTES:
        raise VaultError(f"{where}: a master key must be {_KEY_BYTES} bytes, got {len(key)}")
    return key


def _derived_id(key: bytes) -> str:
    return "k" + hashlib.sha256(key).hexdigest()[:8]


@dataclass
class KeyRing:
    """Master keys by id, and which one encrypts new records."""

    current: str
    keys: dict[str, bytes]
    source: str
    path: Path | None = None

    @staticmethod
    def from_env(value: str) -> KeyRing:
        keys: dict[str, bytes] = {}
        current = ""
        for part in (p.strip() for p in value.split(",") if p.strip()):
            if ":" in part:
                kid, _, b64 = part.partition(":")
                kid = kid.strip()
            else:
                b64 = part
                kid = ""
            key = _decode_key(b64, "HOGA_MASTER_KEY")
            kid = kid or _derived_id(key)
            keys[kid] = key
            current = current or kid
        if not keys:
            raise VaultError("HOGA_MASTER_KEY is empty")
        return KeyRing(current=current, keys=keys, source="environment")

    @staticmethod
    def load_or_create(path: Path) -> KeyRing:
        """Read the key file, creating it (0600, one fresh key) if it does not exist."""
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            key = secrets.token_bytes(_KEY_BYTES)
            ring = KeyRing(current="k1", keys={"k1": key}, source="key file", path=path)
            ring._write(create=True)
            log.info("created vault key file %s (mode 0600)", path)
            return ring
        mode = stat.S_IMODE(path.stat().st_mode)
        if mode & 0o077:
            log.warning(
                "vault key file %s is readable by others (mode %o); chmod 600 it", path, mode
            )
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            current = data["current"]
            keys = {k: _decode_key(v, f"key file {path}, key {k}") for k, v in data["keys"].items()}
        except (ValueError, KeyError, TypeError, AttributeError) as e:
            raise VaultError(
                f"key file {path} is corrupt ({type(e).__name__}); restore it from a backup - "
                "without it stored broker credentials cannot be decrypted"
            ) from None
        if current not in keys:
            raise VaultError(f"key file {path} is corrupt: current key {current!r} is missing")
        return KeyRing(current=current, keys=keys, source="key file", path=path)

    def _write(self, *, create: bool = False) -> None:
        assert self.path is not None
        body = json.dumps(
            {"current": self.current, "keys": {k: _b64e(v) for k, v in self.keys.items()}}, indent=1
        )
        tmp = self.path.with_suffix(".tmp")
        flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC
        fd = os.open(tmp, flags, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(body)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o600)
        if create and self.path.exists():
            raise VaultError(f"key file {self.path} appeared while creating it")
        os.replace(tmp, self.path)

    def reload(self) -> bool:
        """Merge in keys the key file gained since it was read (another process - ``hoga vault
        rotate`` - added one). Keys already in memory stay; ``current`` is not taken from the
        file (the database decides which key encrypts). Returns whether anything was added."""
        if self.path is None or not self.path.exists():
            return False
        fresh = KeyRing.load_or_create(self.path)
        added = {k: v for k, v in fresh.keys.items() if k not in self.keys}
        self.keys.update(added)
        return bool(added)

    def add_key(self) -> str:
        """Add a fresh key and make it current (key file only). Returns its id."""
        if self.path is None:
            raise VaultError(
                "HOGA_MASTER_KEY is set: put the new key first (`newid:base64,oldid:base64`) "
                "and run `hoga vault rotate` again"
            )
        n = 1 + max((int(k[1:]) for k in self.keys if k[1:].isdigit()), default=0)
        kid = f"k{n}"
        self.keys[kid] = secrets.token_bytes(_KEY_BYTES)
        self.current = kid
        self._write()
        return kid

    def retire_others(self) -> list[str]:
        """Drop every key but the current one (after a rotation re-encrypted everything)."""
        if self.path is None:
            return []
        gone = [k for k in self.keys if k != self.current]
        for k in gone:
            del self.keys[k]
        self._write()
        return gone


class Vault:
    """Encrypts and decrypts small secrets under the key ring's current key."""

    def __init__(self, ring: KeyRing) -> None:
        self.ring = ring

    @property
    def current_key_id(self) -> str:
        return self.ring.current

    def use(self, kid: str) -> None:
        """Encrypt with key ``kid`` from now on (the database named it current), reading the
        key file again if this process does not have it yet. Raises VaultError when the key is
        nowhere to be found: nothing is then encrypted under a key the database does not
        expect."""
        if kid not in self.ring.keys:
            self.ring.reload()
        if kid not in self.ring.keys:
            where = (
                f"key file {self.ring.path}" if self.ring.path is not None else "HOGA_MASTER_KEY"
            )
            raise VaultError(
                f"the database encrypts with vault key {kid!r}, which {where} does not have: "
                "give this process that key (restart it with the key file or HOGA_MASTER_KEY "
                "that belongs to this database)"
            )
        self.ring.current = kid

    def encrypt(self, plaintext: bytes, aad: str) -> str:
        kid = self.ring.current
        nonce = secrets.token_bytes(_NONCE_BYTES)
        ct = AESGCM(self.ring.keys[kid]).encrypt(nonce, plaintext, aad.encode())
        return ".".join((_VERSION, kid, _b64e(nonce), _b64e(ct)))

    def decrypt(self, envelope: str, aad: str) -> bytes:
        try:
            version, kid, nonce_s, ct_s = envelope.split(".")
        except ValueError:
            raise VaultError("not a vault envelope") from None
        if version != _VERSION:
            raise VaultError(f"unsupported envelope version {version!r}")
        key = self.ring.keys.get(kid)
        if key is None and self.ring.reload():
            # Re-encrypted under a key another process (a rotation) added since we started.
            key = self.ring.keys.get(kid)
        if key is None:
            raise VaultError(f"envelope needs key {kid!r}, which this server does not have")
        try:
            return AESGCM(key).decrypt(_b64d(nonce_s), _b64d(ct_s), aad.encode())
        except (InvalidTag, ValueError, binascii.Error):
            raise VaultError(
                "envelope does not open: tampered, moved to another owner, or wrong key"
            ) from None

    def encrypt_json(self, data: dict[str, str], aad: str) -> str:
        return self.encrypt(json.dumps(data, sort_keys=True).encode(), aad)

    def decrypt_json(self, envelope: str, aad: str) -> dict[str, str]:
        value = json.loads(self.decrypt(envelope, aad))
        if not isinstance(value, dict):
            raise VaultError("envelope does not hold a JSON object")
        return value

    @staticmethod
    def key_id_of(envelope: str) -> str:
        parts = envelope.split(".")
        return parts[1] if len(parts) == 4 else ""

    def fingerprint(self, *parts: str) -> str:
        """A keyed, non-reversible fingerprint (to spot duplicates without storing plaintext)."""
        key = hashlib.sha256(b"hoga-fingerprint:" + self.ring.keys[self.ring.current]).digest()
        return hmac.new(key, "|".join(parts).encode(), hashlib.sha256).hexdigest()[:32]


def account_aad(user_id: int, account_id: int, broker: str, env: str) -> str:
    return f"hoga/v1/account/{account_id}/user/{user_id}/broker/{broker}/{env}"


def token_aad(user_id: int, account_id: int, kind: str) -> str:
    return f"hoga/v1/broker-token/{account_id}/user/{user_id}/{kind}"


def channel_aad(user_id: int, channel_id: int) -> str:
    """A notification channel's URL (``notification_channels.url_enc``)."""
    return f"hoga/v1/notify-channel/{channel_id}/user/{user_id}"


def totp_aad(user_id: int) -> str:
    return f"hoga/v1/totp/user/{user_id}"


def load_vault(master_key: str | None, key_file: Path) -> Vault:
    ring = KeyRing.from_env(master_key) if master_key else KeyRing.load_or_create(key_file)
    return Vault(ring)
