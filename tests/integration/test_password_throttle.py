"""Guessing the current password with a stolen token is throttled and locked like sign-in, and
no lock lets a stranger keep the owner out for long (issue 12)."""

from __future__ import annotations

from pathlib import Path

from hoga.domain.clock import ManualClock
from hoga.security.proxies import parse_networks
from tests.helpers import PASSWORD, Harness, running

NEW = "brand-new-horse-7"


def _from(headers: dict[str, str], address: str) -> dict[str, str]:
    # The in-process client is 127.0.0.1, named a trusted proxy below: X-Forwarded-For counts.
    return {**headers, "X-Forwarded-For": address}


async def _change(h: Harness, headers: dict[str, str], current: str, address: str) -> int:
    r = await h.http.post(
        "/api/me/password",
        headers=_from(headers, address),
        json={"current_password": current, "new_password": NEW},
    )
    if r.status_code == 429:
        assert r.json()["error"]["code"] == "auth.locked"
        assert int(r.headers["Retry-After"]) >= 1
    return r.status_code


async def test_password_change_guesses_lock_per_address_with_an_account_backoff(
    tmp_path: Path, sqlite_url: str, clock: ManualClock
) -> None:
    async with running(
        tmp_path, sqlite_url, clock=clock, login_max_failures=3, access_token_ttl=86_400
    ) as h:
        h.hoga.throttle.base_delay = 0.0
        h.hoga.api.state.trusted_proxies = parse_networks(["127.0.0.1/32"])
        amy = await h.user("amy")
        for _ in range(3):
            assert await _change(h, amy, "wrong-guess-000", "198.51.100.1") == 403
        # That address is locked - even with the right password.
        assert await _change(h, amy, PASSWORD, "198.51.100.1") == 429
        actions = [e.action for e in await h.hoga.auth.all_audit_entries()]
        assert actions.count("auth.password_change_failed") == 3

        # More guesses from other addresses: the account backs off (briefly) once the total
        # passes 2x the per-address limit.
        for n in range(3):
            assert await _change(h, amy, "wrong-guess-000", f"198.51.100.{10 + n}") == 403
        assert await _change(h, amy, PASSWORD, "203.0.113.50") == 429
        # The back-off is short: the owner gets through within a minute.
        clock.advance(61)
        assert await _change(h, amy, PASSWORD, "203.0.113.50") == 200


async def test_a_stranger_cannot_lock_the_owner_out_of_sign_in(
    tmp_path: Path, sqlite_url: str, clock: ManualClock
) -> None:
    async with running(tmp_path, sqlite_url, clock=clock, login_max_failures=3) as h:
        h.hoga.throttle.base_delay = 0.0
        h.hoga.api.state.trusted_proxies = parse_networks(["127.0.0.1/32"])
        await h.hoga.auth.create_user("ben", PASSWORD, "free", actor_id=None, ip=None)

        async def login(password: str, address: str) -> int:
            r = await h.http.post(
                "/api/auth/login",
                json={"username": "ben", "password": password},
                headers={"X-Forwarded-For": address},
            )
            return r.status_code

        for _ in range(3):
            assert await login("wrong-guess-000", "198.51.100.1") == 401
        assert await login(PASSWORD, "198.51.100.1") == 429  # the stranger's address
        assert await login(PASSWORD, "203.0.113.9") == 200  # the owner's
