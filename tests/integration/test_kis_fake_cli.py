"""``hoga fake-broker kis`` as a user runs it: a separate process serving over loopback."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.helpers import eventually_sync, free_port
from tests.kis_support import ACCOUNT, KEY, SECRET, issue_token


@pytest.mark.timeout(300)
def test_the_fake_broker_command_serves_kis(tmp_path: Path) -> None:
    extra = tmp_path / "accounts.toml"
    extra.write_text(
        '[[accounts]]\naccount_no = "51111111-01"\napp_key = "PSfileKEY000000000000000000000000000"\n'
        'app_secret = "filesecret0000000000"\ncash = 5000000\n\n'
        '[[accounts]]\naccount_no = "52222222-01"\napp_key = "PSrealKEY000000000000000000000000000"\n'
        'app_secret = "realsecret0000000000"\nenv = "real"\n',
        encoding="utf-8",
    )
    port = free_port()
    proc = subprocess.Popen(
        [
            sys.executable, "-m", "hoga", "fake-broker", "kis", "--always-open", "--port", str(port),
            "--account", ACCOUNT, "--app-key", KEY, "--app-secret", SECRET,
            "--accounts-file", str(extra),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:

        def token() -> httpx.Response | None:
            assert proc.poll() is None, proc.stdout.read().decode() if proc.stdout else ""
            with contextlib.suppress(httpx.TransportError):
                return issue_token(base, timeout=2)
            return None

        # The fake builds the KRX calendar before it listens.
        r = eventually_sync(token, 180, "the fake to listen")
        assert r.status_code == 200 and r.json()["token_type"] == "Bearer"
        token = r.json()["access_token"]
        bal = httpx.get(
            f"{base}/uapi/domestic-stock/v1/trading/inquire-balance",
            params={"CANO": "50123456", "ACNT_PRDT_CD": "01"},
            headers={
                "authorization": f"Bearer {token}",
                "appkey": KEY,
                "appsecret": SECRET,
                "tr_id": "VTTC8434R",
            },
            timeout=5,
        )
        assert bal.json()["rt_cd"] == "0"
        assert bal.json()["output2"][0]["dnca_tot_amt"] == "100000000"
        # The accounts file added a mock account, and a real one this mock host refuses.
        ok = issue_token(base, "PSfileKEY000000000000000000000000000", "filesecret0000000000")
        assert ok.status_code == 200
        refused = issue_token(base, "PSrealKEY000000000000000000000000000", "realsecret0000000000")
        assert refused.status_code == 403 and refused.json()["error_code"] == "EGW00103"
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
    out = proc.stdout.read().decode() if proc.stdout else ""
    assert "KIS fake (mock)" in out
    assert SECRET not in out
