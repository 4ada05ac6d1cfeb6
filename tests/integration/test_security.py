"""Sign-in, tokens, TOTP, lockout, IP allowlists, API budget, CORS, the user cap, the vault."""

from __future__ import annotations

import base64
import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import jwt
import pyotp
import pytest

from hoga.domain.clock import ManualClock
from hoga.domain.errors import Conflict, ServiceUnavailable
from hoga.execution.accounts import AccountService
from hoga.execution.vault_rotation import rotate_vault_keys
from hoga.security import keystate
from hoga.security.proxies import parse_networks
from hoga.security.vault import KeyRing, Vault, token_aad, totp_aad
from hoga.store import tables as t
from hoga.store.db import SYSTEM
from tests.helpers import PASSWORD, running


def _b64(d: dict[str, object]) -> str:
    return base64.urlsafe_b64encode(json.dumps(d).encode()).decode().rstrip("=")


async def test_tokens_expired_tampered_and_alg_none_are_refused(
    tmp_path: Path, sqlite_url: str, clock: ManualClock
) -> None:
    async with running(tmp_path, sqlite_url, clock=clock) as h:
        await h.user("amy")
        r = await h.http.post("/api/auth/login", json={"username": "amy", "password": PASSWORD})
        tokens = r.json()
        assert tokens["token_type"] == "bearer" and tokens["expires_in"] == 900
        good = {"Authorization": f"Bearer {tokens['access_token']}"}
        assert (await h.http.get("/api/me", headers=good)).status_code == 200

        header, payload, sig = tokens["access_token"].split(".")
        claims = json.loads(base64.urlsafe_b64decode(payload + "=="))
        forged = f"{header}.{_b64({**claims, 'sub': '1'})}.{sig}"
        none_alg = f"{_b64({'alg': 'none', 'typ': 'JWT'})}.{_b64({**claims, 'sub': '1'})}."
        other_key = jwt.encode({**claims, "sub": "1"}, "x" * 64, algorithm="HS256")
        for bad in (forged, none_alg, other_key, "garbage", tokens["refresh_token"]):
            r = await h.http.get("/api/me", headers={"Authorization": f"Bearer {bad}"})
            assert r.status_code == 401, bad
            assert r.json()["error"]["code"] == "token.invalid"
        assert (await h.http.get("/api/me")).json()["error"]["code"] == "auth.missing_token"

        clock.advance(901)
        r = await h.http.get("/api/me", headers=good)
        assert r.status_code == 401
        assert r.json()["error"]["code"] == "token.expired"


async def test_refresh_rotates_and_reuse_revokes_the_family(tmp_path: Path, db_url: str) -> None:
    async with running(tmp_path, db_url) as h:
        await h.user("ben")
        first = (
            await h.http.post("/api/auth/login", json={"username": "ben", "password": PASSWORD})
        ).json()
        r = await h.http.post("/api/auth/refresh", json={"refresh_token": first["refresh_token"]})
        assert r.status_code == 200
        second = r.json()
        assert second["refresh_token"] != first["refresh_token"]
        # The rotated-out token comes back: the whole session dies, including the new tokens.
        r = await h.http.post("/api/auth/refresh", json={"refresh_token": first["refresh_token"]})
        assert r.status_code == 401
        assert r.json()["error"]["code"] == "token.reused"
        r = await h.http.post("/api/auth/refresh", json={"refresh_token": second["refresh_token"]})
        assert r.status_code == 401
        r = await h.http.get(
            "/api/me", headers={"Authorization": f"Bearer {second['access_token']}"}
        )
        assert r.json()["error"]["code"] == "token.revoked"
        actions = [e.action for e in await h.hoga.auth.all_audit_entries()]
        assert "auth.refresh_reuse" in actions


async def test_logout_ends_the_session(tmp_path: Path, sqlite_url: str) -> None:
    async with running(tmp_path, sqlite_url) as h:
        headers = await h.user("cat")
        assert (await h.http.post("/api/auth/logout", headers=headers)).status_code == 200
        assert (await h.http.get("/api/me", headers=headers)).status_code == 401


async def test_totp_enrol_confirm_and_login(
    tmp_path: Path, sqlite_url: str, clock: ManualClock
) -> None:
    async with running(tmp_path, sqlite_url, clock=clock) as h:
        headers = await h.user("dan")
        r = await h.http.post("/api/me/totp/enroll", headers=headers)
        enrol = r.json()
        assert enrol["otpauth_uri"].startswith("otpauth://totp/hoga:dan")
        assert enrol["qr_svg"].startswith("data:image/svg+xml;base64,")
        totp = pyotp.TOTP(enrol["secret"])
        r = await h.http.post("/api/me/totp/confirm", headers=headers, json={"code": "000000"})
        assert r.status_code == 422 and r.json()["error"]["code"] == "totp.invalid_code"
        r = await h.http.post(
            "/api/me/totp/confirm", headers=headers, json={"code": totp.at(clock.time())}
        )
        codes = r.json()["recovery_codes"]
        assert len(codes) == 10

        r = await h.http.post("/api/auth/login", json={"username": "dan", "password": PASSWORD})
        assert r.status_code == 401 and r.json()["error"]["code"] == "auth.otp_required"
        r = await h.http.post(
            "/api/auth/login", json={"username": "dan", "password": PASSWORD, "otp": "123456"}
        )
        assert r.json()["error"]["code"] == "auth.otp_invalid"
        clock.advance(30)
        code = totp.at(clock.time())
        r = await h.http.post(
            "/api/auth/login", json={"username": "dan", "password": PASSWORD, "otp": code}
        )
        assert r.status_code == 200
        # The same code cannot be replayed.
        r = await h.http.post(
            "/api/auth/login", json={"username": "dan", "password": PASSWORD, "otp": code}
        )
        assert r.status_code == 401
        # A recovery code works once.
        r = await h.http.post(
            "/api/auth/login", json={"username": "dan", "password": PASSWORD, "otp": codes[0]}
        )
        assert r.status_code == 200
        r = await h.http.post(
            "/api/auth/login", json={"username": "dan", "password": PASSWORD, "otp": codes[0]}
        )
        assert r.status_code == 401
        # The secret is stored encrypted.
        async with h.hoga.db.tx(SYSTEM) as conn:
            stored = (await conn.execute(t.users.select().where(t.users.c.username == "dan"))).one()
        assert enrol["secret"] not in (stored.totp_secret_enc or "")


async def test_lockout_after_repeated_failures_and_no_user_enumeration(
    tmp_path: Path, sqlite_url: str, clock: ManualClock
) -> None:
    async with running(tmp_path, sqlite_url, clock=clock, login_max_failures=3) as h:
        h.hoga.throttle.base_delay = 0.0
        await h.user("eva")
        wrong = await h.http.post(
            "/api/auth/login", json={"username": "eva", "password": "nope-nope-nope"}
        )
        ghost = await h.http.post(
            "/api/auth/login", json={"username": "nobody", "password": "nope-nope-nope"}
        )
        assert wrong.status_code == ghost.status_code == 401
        assert wrong.json() == ghost.json()
        for _ in range(2):
            await h.http.post(
                "/api/auth/login", json={"username": "eva", "password": "nope-nope-nope"}
            )
        r = await h.http.post("/api/auth/login", json={"username": "eva", "password": PASSWORD})
        assert r.status_code == 429
        assert r.json()["error"]["code"] == "auth.locked"
        assert int(r.headers["Retry-After"]) > 0
        clock.advance(901)
        r = await h.http.post("/api/auth/login", json={"username": "eva", "password": PASSWORD})
        assert r.status_code == 200
        actions = [e.action for e in await h.hoga.auth.all_audit_entries()]
        assert actions.count("auth.login_failed") >= 3


async def test_ip_allowlist_is_enforced_and_validated(tmp_path: Path, sqlite_url: str) -> None:
    async with running(tmp_path, sqlite_url) as h:
        headers = await h.user("fin")
        r = await h.http.put(
            "/api/me/ip-allowlist", headers=headers, json={"entries": ["300.1.1.1/8"]}
        )
        assert r.status_code == 422 and r.json()["error"]["code"] == "ip_allowlist.invalid"
        r = await h.http.put(
            "/api/me/ip-allowlist", headers=headers, json={"entries": ["203.0.113.0/24"]}
        )
        assert r.json()["error"]["code"] == "ip_allowlist.locks_you_out"
        # The in-process client comes from 127.0.0.1.
        r = await h.http.put(
            "/api/me/ip-allowlist",
            headers=headers,
            json={"entries": ["127.0.0.1/32", "10.0.0.0/8"]},
        )
        assert r.status_code == 200
        assert (await h.http.get("/api/me", headers=headers)).status_code == 200
        # No trusted proxies configured: a forged X-Forwarded-For changes nothing.
        r = await h.http.get("/api/me", headers={**headers, "X-Forwarded-For": "198.51.100.7"})
        assert r.status_code == 200
        # Behind a named proxy, the address it saw counts.
        h.hoga.api.state.trusted_proxies = parse_networks(["127.0.0.1/32"])
        r = await h.http.get("/api/me", headers={**headers, "X-Forwarded-For": "198.51.100.7"})
        assert r.status_code == 403 and r.json()["error"]["code"] == "auth.ip_not_allowed"


async def test_api_budget_gives_429_with_retry_after(tmp_path: Path, sqlite_url: str) -> None:
    async with running(tmp_path, sqlite_url) as h:
        headers = await h.user("gil")
        await h.hoga.auth.admin_update(
            (await h.hoga.auth.find_user("gil")).id, actor_id=None, ip=None, api_calls_per_minute=5
        )
        codes = [(await h.http.get("/api/me", headers=headers)).status_code for _ in range(6)]
        assert codes[:5] == [200] * 5
        r = await h.http.get("/api/me", headers=headers)
        assert r.status_code == 429 and r.json()["error"]["code"] == "rate_limited"
        assert int(r.headers["Retry-After"]) >= 1


@pytest.mark.parametrize("origins", [[], ["https://dash.example"]])
async def test_cors_only_for_configured_origins(
    tmp_path: Path, sqlite_url: str, origins: list[str]
) -> None:
    async with running(tmp_path, sqlite_url, cors_origins=origins) as h:
        r = await h.http.options(
            "/api/auth/login",
            headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"},
        )
        assert "access-control-allow-origin" not in r.headers
        r = await h.http.options(
            "/api/auth/login",
            headers={"Origin": "https://dash.example", "Access-Control-Request-Method": "POST"},
        )
        assert (r.headers.get("access-control-allow-origin") == "https://dash.example") is bool(
            origins
        )


async def test_user_cap_is_a_clear_error(tmp_path: Path, sqlite_url: str) -> None:
    async with running(tmp_path, sqlite_url, max_users=3) as h:
        admin = await h.admin()
        for name in ("usr1", "usr2"):
            r = await h.http.post(
                "/api/admin/users", headers=admin, json={"username": name, "password": PASSWORD}
            )
            assert r.status_code == 201
        r = await h.http.post(
            "/api/admin/users", headers=admin, json={"username": "usr3", "password": PASSWORD}
        )
        assert r.status_code == 429
        assert r.json()["error"]["code"] == "user.cap_reached"
        assert "3" in r.json()["error"]["message"]
        users = (await h.http.get("/api/admin/users", headers=admin)).json()["users"]
        assert [u["username"] for u in users] == ["admin", "usr1", "usr2"]


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"username": "x", "password": PASSWORD}, "validation_error"),
        ({"username": "ok_name", "password": "short"}, "user.weak_password"),
        ({"username": "ok_name", "password": PASSWORD, "tier": "gold"}, "tier.not_found"),
        ({"username": "a" * 100, "password": PASSWORD}, "validation_error"),
        ({"username": "bad name!", "password": PASSWORD}, "user.bad_username"),
        ({"username": "ok_name", "password": PASSWORD, "is_admin": "yes"}, "validation_error"),
    ],
)
async def test_admin_user_creation_bad_input(
    tmp_path: Path, sqlite_url: str, body: dict[str, object], code: str
) -> None:
    async with running(tmp_path, sqlite_url) as h:
        admin = await h.admin()
        r = await h.http.post("/api/admin/users", headers=admin, json=body)
        assert 400 <= r.status_code < 500
        assert r.json()["error"]["code"] == code
        assert len((await h.http.get("/api/admin/users", headers=admin)).json()["users"]) == 1


async def test_admin_changes_tiers_and_it_is_audited(tmp_path: Path, db_url: str) -> None:
    async with running(tmp_path, db_url) as h:
        admin = await h.admin()
        user_headers = await h.user("hal")
        uid = (await h.http.get("/api/me", headers=user_headers)).json()["id"]
        r = await h.http.patch(f"/api/admin/users/{uid}", headers=admin, json={"tier": "premium"})
        assert r.status_code == 200 and r.json()["tier"] == "premium"
        assert (await h.http.get("/api/me", headers=user_headers)).json()["limits"][
            "daily_trades"
        ] == 100
        r = await h.http.patch("/api/admin/tiers/free", headers=admin, json={"daily_trades": 12})
        assert r.json()["daily_trades"] == 12
        r = await h.http.patch(f"/api/admin/users/{uid}", headers=admin, json={"is_active": False})
        assert (await h.http.get("/api/me", headers=user_headers)).status_code == 401
        entries = (await h.http.get("/api/admin/audit", headers=admin)).json()["entries"]
        actions = {e["action"] for e in entries}
        assert {
            "user.tier",
            "tier.update",
            "user.is_active",
            "user.create",
            "auth.login",
        } <= actions
        tier_entry = next(e for e in entries if e["action"] == "user.tier")
        assert tier_entry["detail"] == {"from": "free", "to": "premium"}
        assert tier_entry["actor_id"] != tier_entry["user_id"]


async def test_password_change_ends_other_sessions(tmp_path: Path, sqlite_url: str) -> None:
    async with running(tmp_path, sqlite_url) as h:
        first = await h.user("ivy")
        second = await h.login("ivy")
        r = await h.http.post(
            "/api/me/password",
            headers=first,
            json={"current_password": "wrong-one-1", "new_password": "new-password-9"},
        )
        assert r.status_code == 403
        r = await h.http.post(
            "/api/me/password",
            headers=first,
            json={"current_password": PASSWORD, "new_password": "new-password-9"},
        )
        assert r.status_code == 200
        assert (await h.http.get("/api/me", headers=first)).status_code == 200
        assert (await h.http.get("/api/me", headers=second)).status_code == 401
        assert (
            await h.http.post(
                "/api/auth/login", json={"username": "ivy", "password": "new-password-9"}
            )
        ).status_code == 200


def _cli_side(h: Any, vault: Vault) -> AccountService:
    """What ``hoga vault rotate`` builds: its own vault and account service on the same data."""
    return AccountService(
        h.hoga.db, vault, h.hoga.clock, {}, paper_cash=0, commission_rate=Decimal("0.00015")
    )


_KIWOOM = {
    "broker": "kiwoom",
    "env": "mock",
    "account_no": "1234567890",
    "app_key": "k" * 20,
    "app_secret": "s" * 40,
}


async def test_vault_rotation_beside_the_server_switches_it_before_retiring(
    tmp_path: Path, db_url: str
) -> None:
    async with running(tmp_path, db_url) as h:
        headers = await h.user("joe")
        joe = (await h.hoga.auth.find_user("joe")).id
        r = await h.http.post("/api/broker-accounts", headers=headers, json=_KIWOOM)
        acct_id = r.json()["id"]
        await h.hoga.token_store.save(acct_id, "access", "the-token", h.hoga.clock.time() + 3600)
        r = await h.http.post("/api/me/totp/enroll", headers=headers)
        assert r.status_code == 200, r.text
        old_key = h.hoga.vault.current_key_id
        # The rotation runs in another process with its own copy of the key file.
        cli_vault = Vault(KeyRing.load_or_create(tmp_path / "var" / "master.key"))
        done = await rotate_vault_keys(
            h.hoga.db, cli_vault, _cli_side(h, cli_vault), h.hoga.clock, server_running=True
        )
        # The account's credentials, its broker token and joe's TOTP secret.
        assert done.reencrypted == 3 and done.retired == [old_key]
        assert done.new_key != old_key
        async with h.hoga.db.tx(SYSTEM) as conn:
            token = (await conn.execute(t.broker_tokens.select())).one()
            user = (await conn.execute(t.users.select().where(t.users.c.id == joe))).one()
        assert Vault.key_id_of(token.token_enc) == done.new_key == token.key_id
        assert cli_vault.decrypt(token.token_enc, token_aad(joe, acct_id, "access")) == (
            b"the-token"
        )
        assert Vault.key_id_of(user.totp_secret_enc) == done.new_key
        assert cli_vault.decrypt(user.totp_secret_enc, totp_aad(joe))
        # The server, which never saw the new key, reads the re-encrypted secret...
        h.hoga.accounts._refs.clear()
        ref = h.hoga.accounts.ref(await h.hoga.accounts.get(joe, acct_id))
        assert ref.app_secret is not None and ref.app_secret.reveal() == "s" * 40
        assert repr(ref.app_secret) == "Secret('****')"
        # ...and encrypts the next one under the new key, not the retired one it started with.
        r = await h.http.post(
            "/api/broker-accounts", headers=headers, json={**_KIWOOM, "account_no": "1234567891"}
        )
        assert r.status_code == 201, r.text
        async with h.hoga.db.tx(SYSTEM) as conn:
            rows = (await conn.execute(t.broker_accounts.select())).all()
        assert {Vault.key_id_of(row.secrets_enc) for row in rows if row.secrets_enc} == {
            done.new_key
        }
        assert {row.key_id for row in rows if row.secrets_enc} == {done.new_key}


async def test_rotation_refuses_a_key_the_running_server_cannot_load(
    tmp_path: Path, sqlite_url: str
) -> None:
    server_key = base64.b64encode(b"1" * 32).decode()
    new_key = base64.b64encode(b"2" * 32).decode()
    async with running(tmp_path, sqlite_url, master_key=f"old:{server_key}") as h:
        headers = await h.user("joe")
        await h.http.post("/api/broker-accounts", headers=headers, json=_KIWOOM)
        # The operator put the new key first in HOGA_MASTER_KEY for the CLI only.
        cli_vault = Vault(KeyRing.from_env(f"new:{new_key},old:{server_key}"))
        with pytest.raises(Conflict) as e:
            await rotate_vault_keys(
                h.hoga.db, cli_vault, _cli_side(h, cli_vault), h.hoga.clock, server_running=True
            )
        assert e.value.code == "vault.server_lacks_key"
        assert "HOGA_MASTER_KEY" in e.value.message
        # Nothing changed: the server still encrypts and decrypts with its key.
        r = await h.http.post(
            "/api/broker-accounts", headers=headers, json={**_KIWOOM, "account_no": "1234567891"}
        )
        assert r.status_code == 201, r.text
        async with h.hoga.db.tx(SYSTEM) as conn:
            rows = (await conn.execute(t.broker_accounts.select())).all()
        assert {Vault.key_id_of(row.secrets_enc) for row in rows if row.secrets_enc} == {"old"}


async def test_a_process_without_the_current_key_refuses_to_encrypt(
    tmp_path: Path, sqlite_url: str
) -> None:
    async with running(tmp_path, sqlite_url) as h:
        headers = await h.user("joe")
        # The database names a key this server has nowhere (not in memory, not in its file).
        async with h.hoga.db.tx(SYSTEM) as conn:
            await keystate.promote(conn, "k99", h.hoga.clock.now())
        r = await h.http.post("/api/broker-accounts", headers=headers, json=_KIWOOM)
        assert r.status_code == 503, r.text
        assert r.json()["error"]["code"] == "vault.key_unavailable"
        async with h.hoga.db.tx(SYSTEM) as conn:
            rows = (await conn.execute(t.broker_accounts.select())).all()
        # Nothing half-written: no account row without its secret.
        assert all(row.broker == "paper" for row in rows)


async def test_ciphertext_moved_to_another_user_does_not_open(
    tmp_path: Path, sqlite_url: str
) -> None:
    async with running(tmp_path, sqlite_url) as h:
        a = await h.user("kim")
        b = await h.user("lee")
        body = {
            "broker": "kis",
            "env": "mock",
            "account_no": "50123456-01",
            "app_key": "A" * 36,
            "app_secret": "B" * 60,
        }
        acct_a = (await h.http.post("/api/broker-accounts", headers=a, json=body)).json()
        acct_b = (
            await h.http.post(
                "/api/broker-accounts", headers=b, json={**body, "account_no": "50999999-01"}
            )
        ).json()
        async with h.hoga.db.tx(SYSTEM) as conn:
            env_a = (
                await conn.execute(
                    t.broker_accounts.select().where(t.broker_accounts.c.id == acct_a["id"])
                )
            ).one()
            await conn.execute(
                t.broker_accounts.update()
                .where(t.broker_accounts.c.id == acct_b["id"])
                .values(secrets_enc=env_a.secrets_enc)
            )
        lee = await h.hoga.auth.find_user("lee")
        h.hoga.accounts._refs.clear()
        record = await h.hoga.accounts.get(lee.id, acct_b["id"])
        with pytest.raises(ServiceUnavailable, match=r"vault\.decrypt_failed|열 수 없습니다"):
            h.hoga.accounts.ref(record)
