"""Verified access tokens are remembered until they expire, and only as the exact token.

``TokenService.verify_access`` skips the HMAC check for a token it verified before; expiry is
still checked on every call, a token that differs in any byte (a forged payload under a copied
signature) is verified afresh and refused, and the memory is bounded.
"""

from __future__ import annotations

import base64
import json
from datetime import datetime

import jwt
import pytest

from hoga.domain.clock import KST, ManualClock
from hoga.domain.errors import Unauthorized
from hoga.security import tokens
from hoga.security.tokens import TokenService

SECRET = b"s" * 40


def _service() -> tuple[TokenService, ManualClock]:
    clock = ManualClock(datetime(2026, 11, 26, 10, 0, tzinfo=KST))
    return TokenService(SECRET, clock, access_ttl=900), clock


def _count_decodes(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    calls: list[str] = []
    real = jwt.decode

    def counting(token: str, *args: object, **kwargs: object) -> object:
        calls.append(token)
        return real(token, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(jwt, "decode", counting)
    return calls


def test_a_verified_token_is_not_decoded_again(monkeypatch: pytest.MonkeyPatch) -> None:
    svc, _ = _service()
    token, _ = svc.issue_access(7, "fam")
    calls = _count_decodes(monkeypatch)
    first = svc.verify_access(token)
    assert svc.verify_access(token) == first
    assert (first.user_id, first.session_id) == (7, "fam")
    assert calls == [token]


def test_expiry_is_checked_on_every_call() -> None:
    svc, clock = _service()
    token, ttl = svc.issue_access(7, "fam")
    svc.verify_access(token)
    clock.advance(ttl)
    with pytest.raises(Unauthorized) as e:
        svc.verify_access(token)
    assert e.value.code == "token.expired"
    with pytest.raises(Unauthorized) as e:  # and again, now that it was forgotten
        svc.verify_access(token)
    assert e.value.code == "token.expired"


def test_a_copied_signature_does_not_vouch_for_another_payload() -> None:
    svc, _ = _service()
    token, _ = svc.issue_access(7, "fam")
    svc.verify_access(token)
    header, payload, signature = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims["sub"] = "1"
    forged_payload = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    with pytest.raises(Unauthorized) as e:
        svc.verify_access(f"{header}.{forged_payload}.{signature}")
    assert e.value.code == "token.invalid"


def test_the_memory_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tokens, "VERIFIED_CACHE_SIZE", 3)
    svc, clock = _service()
    issued = []
    for i in range(3):
        issued.append(svc.issue_access(i + 1, f"f{i}")[0])
        svc.verify_access(issued[-1])
        clock.advance(100)
    clock.advance(650)  # the first token (issued 900 s ago) has expired, the others not
    fresh = svc.issue_access(9, "f9")[0]
    svc.verify_access(fresh)
    assert set(svc._verified) == {issued[1], issued[2], fresh}
    svc.verify_access(svc.issue_access(10, "f10")[0])  # full of valid tokens: starts over
    assert len(svc._verified) <= 3
