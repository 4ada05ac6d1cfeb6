"""``hoga serve`` as an operator meets it: first start, restart, shutdown, and mistakes."""

from __future__ import annotations

import re
import signal
import socket
import subprocess
from pathlib import Path

import httpx
import pytest

from tests.e2e.conftest import HOGA, server_env, start_server
from tests.helpers import free_port


def test_first_start_prints_admin_password_once_and_restart_reuses_the_database(
    tmp_path: Path,
) -> None:
    data = tmp_path / "var"
    srv = start_server(data, "first.log")
    # Strangers learn only that it is up (issue 12); signed in, what runs here.
    assert httpx.get(f"{srv.url}/health").json() == {"status": "ok"}
    match = re.search(r"created admin account 'admin' with password\s+(\S+)", srv.output())
    assert match, srv.output()
    password = match.group(1)
    token = httpx.post(
        f"{srv.url}/api/auth/login", json={"username": "admin", "password": password}
    ).json()["access_token"]
    health = httpx.get(f"{srv.url}/health", headers={"Authorization": f"Bearer {token}"}).json()
    assert health["status"] == "ok"
    assert health["database"] == "sqlite"
    assert health["simulated"] is True
    assert health["versions"]["hoga"]
    assert srv.stop(signal.SIGINT) == 0
    out = srv.output()
    assert "Traceback" not in out
    # The key file is private to its owner.
    assert (data / "master.key").stat().st_mode & 0o777 == 0o600

    again = start_server(data, "second.log")
    r = httpx.post(f"{again.url}/api/auth/login", json={"username": "admin", "password": password})
    assert r.status_code == 200, r.text
    assert again.stop(signal.SIGTERM) == 0
    second = again.output()
    assert "created admin account" not in second
    assert password not in second


def test_help_lists_every_command() -> None:
    out = subprocess.run([*HOGA, "--help"], capture_output=True, text=True, check=True).stdout
    for command in ("serve", "user", "vault", "db", "fake-broker"):
        assert command in out


def _serve_fails(tmp_path: Path, **extra: str) -> subprocess.CompletedProcess[str]:
    env = server_env(tmp_path / "var", free_port(), **extra)
    return subprocess.run([*HOGA, "serve"], env=env, capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        ({"HOGA_PROT": "8000"}, "unknown setting HOGA_PROT (did you mean HOGA_PORT?)"),
        ({"HOGA_MARKET_MODE": "sometimes"}, "HOGA_MARKET_MODE"),
        (
            {"HOGA_DATABASE_URL": "postgresql+asyncpg://nobody@127.0.0.1:1/none"},
            # The one-server lock is taken before anything is migrated.
            "cannot open database",
        ),
        ({"HOGA_DATABASE_URL": "not a url"}, "not a database URL"),
    ],
)
def test_bad_settings_give_one_line_and_a_nonzero_exit(
    tmp_path: Path, extra: dict[str, str], expected: str
) -> None:
    res = _serve_fails(tmp_path, **extra)
    assert res.returncode != 0
    assert expected in res.stderr
    assert "Traceback" not in res.stderr + res.stdout
    errors = [line for line in res.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1


def test_port_in_use_is_a_clear_error(tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        env = server_env(tmp_path / "var", port)
        res = subprocess.run([*HOGA, "serve"], env=env, capture_output=True, text=True, timeout=60)
    assert res.returncode != 0
    assert f"port {port} on 127.0.0.1 is already in use" in res.stderr
    assert "Traceback" not in res.stderr


def test_corrupt_key_file_is_a_clear_error(tmp_path: Path) -> None:
    data = tmp_path / "var"
    data.mkdir()
    (data / "master.key").write_text("not json")
    res = _serve_fails(tmp_path)
    assert res.returncode != 0
    assert "key file" in res.stderr and "corrupt" in res.stderr
    assert "Traceback" not in res.stderr
    # --debug shows the traceback for whoever needs it.
    env = server_env(data, free_port())
    dbg = subprocess.run(
        [*HOGA, "--debug", "serve"], env=env, capture_output=True, text=True, timeout=60
    )
    assert "Traceback" in dbg.stderr
