"""``hoga fake-broker kiwoom``: the sandbox a user runs, started as a real process."""

from __future__ import annotations

import contextlib
import json
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.helpers import eventually_sync, free_port


@pytest.mark.timeout(300)
def test_the_command_serves_accounts_from_the_command_line_and_a_file(tmp_path: Path) -> None:
    accounts = tmp_path / "accounts.json"
    accounts.write_text(
        json.dumps(
            {
                "accounts": [
                    {
                        "account_no": "5012345601",
                        "app_key": "FILEKEY000000001",
                        "app_secret": "FILESECRET-hidden-1",
                        "cash": 5_000_000,
                    },
                    {
                        "account_no": "5055555501",
                        "app_key": "FILEKEY000000002",
                        "app_secret": "FILESECRET-hidden-2",
                        "env": "real",
                    },
                ]
            }
        )
    )
    port = free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "hoga",
            "fake-broker",
            "kiwoom",
            "--always-open",
            "--port",
            str(port),
            "--account",
            "5099999901",
            "--app-key",
            "CLIKEY0000000001",
            "--app-secret",
            "CLISECRET-hidden-0",
            "--accounts-file",
            str(accounts),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        with httpx.Client(base_url=base, timeout=2) as http:

            def token() -> httpx.Response | None:
                assert proc.poll() is None, proc.stdout.read() if proc.stdout else ""
                with contextlib.suppress(httpx.TransportError):
                    return http.post(
                        "/oauth2/token",
                        json={
                            "grant_type": "client_credentials",
                            "appkey": "FILEKEY000000001",
                            "secretkey": "FILESECRET-hidden-1",
                        },
                    )
                return None

            # The fake builds the KRX calendar before it listens.
            r = eventually_sync(token, 180, "the fake to come up")
            body = r.json()
            assert body["return_code"] == 0 and body["token"]
            token = body["token"]
            r = http.post(
                "/api/dostk/acnt",
                json={"qry_tp": "3"},
                headers={"api-id": "kt00001", "authorization": f"Bearer {token}"},
            )
            assert r.json()["entr"] == "000000005000000"
            # The file's real-domain key on this mock fake: 8030.
            r = http.post(
                "/oauth2/token",
                json={
                    "grant_type": "client_credentials",
                    "appkey": "FILEKEY000000002",
                    "secretkey": "FILESECRET-hidden-2",
                },
            )
            assert "8030" in r.json()["return_msg"]
    finally:
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=20)
    assert proc.returncode == 0, out
    assert f"REST http://127.0.0.1:{port}" in out
    assert "5012345601" in out and "5099999901" in out
    for secret in ("FILESECRET-hidden-1", "FILESECRET-hidden-2", "CLISECRET-hidden-0"):
        assert secret not in out
    assert "FILEKEY000000001" not in out  # app keys are masked in the banner
