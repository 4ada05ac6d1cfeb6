"""``hoga vault rotate`` beside a running server (issue 11): the server switches to the new key
before the old one is retired, nothing is encrypted under a retired key afterwards, and a
restart decrypts everything."""

from __future__ import annotations

import asyncio
import json
import signal
import sqlite3
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.conftest import Server, login, start_server
from tests.helpers import ADMIN_PASSWORD, free_port

# Several server starts on a loaded 2-core machine take longer than the default 120 s.
pytestmark = pytest.mark.timeout(360)


def _link(srv: Server, headers: dict[str, str], account_no: str) -> int:
    # A KIS mock account whose server address is a closed local port: linking and decrypting
    # need no broker, and a connection test fails fast with a broker error (not a vault one).
    body = {
        "broker": "kis",
        "env": "mock",
        "account_no": account_no,
        "app_key": "PSrotation" + "k" * 26,
        "app_secret": "rotation-secret-" + account_no.replace("-", "") * 4,
        "base_url": f"http://127.0.0.1:{free_port()}",
    }
    r = httpx.post(f"{srv.url}/api/broker-accounts", headers=headers, json=body, timeout=30)
    assert r.status_code == 201, r.text
    account_id: int = r.json()["id"]
    return account_id


def _envelopes(db: Path) -> dict[str, Any]:
    with sqlite3.connect(db) as conn:
        accounts = conn.execute(
            "select id, key_id, secrets_enc from broker_accounts where secrets_enc is not null"
        ).fetchall()
        totp = conn.execute(
            "select totp_secret_enc from users where totp_secret_enc is not null"
        ).fetchall()
        state = conn.execute("select value from system_state where key = 'vault.keys'").fetchone()
    return {
        "accounts": {row[0]: (row[1], row[2].split(".")[1]) for row in accounts},
        "totp": [row[0].split(".")[1] for row in totp],
        "state": json.loads(state[0]) if state else None,
    }


def _decrypts(srv: Server, headers: dict[str, str], account_id: int) -> None:
    r = httpx.post(f"{srv.url}/api/broker-accounts/{account_id}/test", headers=headers, timeout=60)
    assert r.status_code == 200, r.text
    assert "vault" not in (r.json().get("code") or ""), r.text


async def test_rotate_beside_a_running_server_then_link_restart_and_decrypt_everything(
    tmp_path: Path,
) -> None:
    data = tmp_path / "var"
    srv = await asyncio.to_thread(
        start_server, data, "first.log", HOGA_ADMIN_PASSWORD=ADMIN_PASSWORD
    )
    try:
        headers = await asyncio.to_thread(login, srv.url)
        first = await asyncio.to_thread(_link, srv, headers, "50111111-01")
        before = _envelopes(data / "hoga.db")
        old_key = before["accounts"][first][0]

        res = await asyncio.to_thread(srv.cli, "vault", "rotate")
        assert f"retired {old_key}" in res.stdout, res.stdout + res.stderr
        keyfile = json.loads((data / "master.key").read_text())
        new_key = keyfile["current"]
        assert new_key != old_key and list(keyfile["keys"]) == [new_key]

        # The running server encrypts new secrets under the new key - a credential, and a
        # TOTP secret - never under the one just retired.
        second = await asyncio.to_thread(_link, srv, headers, "50222222-01")
        r = await asyncio.to_thread(
            httpx.post, f"{srv.url}/api/me/totp/enroll", headers=headers, timeout=30
        )
        assert r.status_code == 200, r.text
        after = _envelopes(data / "hoga.db")
        assert after["accounts"] == {first: (new_key, new_key), second: (new_key, new_key)}
        assert after["totp"] == [new_key]
        assert after["state"] == {"current": new_key, "retired": [old_key]}
        # And it still reads what the rotation re-encrypted while it was running.
        await asyncio.to_thread(_decrypts, srv, headers, first)
        assert srv.stop(signal.SIGINT) == 0
    finally:
        if srv.proc.poll() is None:
            srv.proc.kill()

    again = await asyncio.to_thread(start_server, data, "again.log")
    try:
        headers = await asyncio.to_thread(login, again.url)
        for account_id in (first, second):
            await asyncio.to_thread(_decrypts, again, headers, account_id)
        assert "Traceback" not in again.output()
    finally:
        again.stop()
