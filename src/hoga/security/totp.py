"""TOTP second factor (RFC 6238 via pyotp) and one-time recovery codes."""

from __future__ import annotations

import base64
import hashlib
import hmac
import io
import secrets

import pyotp
import segno

ISSUER = "hoga"
RECOVERY_CODES = 10


def new_secret() -> str:
    return pyotp.random_base32()


def provisioning_uri(secret: str, username: str) -> str:
    return pyotp.TOTP(secret).provisioning_uri(name=username, issuer_name=ISSUER)


def qr_svg_data_uri(uri: str) -> str:
    """The otpauth URI as an SVG QR code in a data: URI (rendered locally, no network).

    The SVG must declare its namespace: as an ``<img>`` source an SVG without
    ``xmlns="http://www.w3.org/2000/svg"`` is not an image to the browser (naturalWidth 0), and
    segno's ``svg_inline`` leaves it out because it is meant for embedding in HTML.
    """
    buf = io.BytesIO()
    segno.make(uri, error="m").save(buf, kind="svg", scale=4, xmldecl=False, svgns=True)
    return "data:image/svg+xml;base64," + base64.b64encode(buf.getvalue()).decode()


def verify(secret: str, code: str, at: float, last_step: int | None = None) -> int | None:
    """The accepted time step for ``code`` (±1 step of drift), or None.

    A step at or before ``last_step`` is refused so a code cannot be replayed.
    """
    c = code.strip().replace(" ", "")
    if not (c.isdigit() and len(c) == 6):
        return None
    totp = pyotp.TOTP(secret)
    step = int(at // totp.interval)
    for s in (step - 1, step, step + 1):
        if last_step is not None and s <= last_step:
            continue
        if hmac.compare_digest(totp.generate_otp(s), c):
            return s
    return None


def new_recovery_codes() -> list[str]:
    return [f"{secrets.token_hex(3)}-{secrets.token_hex(3)}" for _ in range(RECOVERY_CODES)]


def hash_recovery_code(code: str) -> str:
    return hashlib.sha256(code.strip().lower().encode()).hexdigest()
