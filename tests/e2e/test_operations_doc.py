"""docs/operations.md, "From nothing to TLS on a VPS", is an executable guide.

Its ``sh {test}`` blocks run in order, as one shell script, against the local PostgreSQL: roles
from deploy/postgres/roles.sql, the config file, ``hoga db upgrade``, the first admin, the
service started and health-checked, an upgrade with restart, a vault rotation beside the
running server. The parts that belong to a real machine are substituted, each listed in
``SUBSTITUTIONS`` (paths into a scratch directory, ``sudo -u`` dropped, no user account,
``systemctl`` starting and stopping ``hoga serve`` itself, the wheel installed without
downloading its dependencies). ``sh {system}`` blocks (packages, proxy, firewall) are not run
here; every file they name must exist, and the Caddyfile is validated when caddy is installed.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from tests.e2e.test_wheel import _build_wheel
from tests.helpers import free_port

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "operations.md"
SECTION = "## From nothing to TLS on a VPS"
BLOCK = re.compile(r"^```sh \{(test|system)\}\n(.*?)^```", re.S | re.M)


def guide() -> str:
    text = DOC.read_text(encoding="utf-8")
    start = text.index(SECTION)
    end = text.index("\n## ", start + len(SECTION))
    return text[start:end]


def blocks(kind: str) -> list[str]:
    return [body for k, body in BLOCK.findall(guide()) if k == kind]


def substitutions(scratch: Path, db: str, wheel: Path, port: int) -> list[tuple[str, str]]:
    # (Values name /opt/hoga etc. unmoved: the path substitutions at the end move them.)
    pip = f"{sys.executable} -m pip --python /opt/hoga/bin/python"
    return [
        # A database and roles of this test's own (roles are cluster-wide).
        ("export DB=hoga", f"export DB={db}"),
        ("sudo -u postgres psql", "psql -h 127.0.0.1 -U postgres"),
        ("sudo -u hoga ", ""),
        # No system user or ownership changes on a shared test machine.
        ("useradd ", ": useradd "),
        ("install -d -o hoga -g hoga ", "install -d "),
        ("chown root:hoga", ": chown root:hoga"),
        # The venv gets the wheel alone; its dependencies are this test run's (no download).
        (
            "python3 -m venv /opt/hoga",
            f"{sys.executable} -m venv --without-pip /opt/hoga && link_deps",
        ),
        ("/opt/hoga/bin/pip install --quiet", f"{pip} install --quiet --no-deps --no-index"),
        ("hoga-0.1.0-py3-none-any.whl", str(wheel)),
        ("HOGA_PORT=8000", f"HOGA_PORT={port}"),
        ("systemctl daemon-reload", ":"),
        ("systemctl enable --now hoga", "start_hoga"),
        ("systemctl restart hoga", "stop_hoga; start_hoga"),
        # Every absolute path into the scratch directory.
        ("/etc/systemd/system/", f"{scratch}/etc/systemd/system/"),
        ("/usr/local/bin/hoga-admin", f"{scratch}/bin/hoga-admin"),
        ("/etc/hoga", f"{scratch}/etc/hoga"),
        ("/var/lib/hoga", f"{scratch}/var/lib/hoga"),
        ("/opt/hoga", f"{scratch}/opt/hoga"),
    ]


PRELUDE = """
set -euo pipefail
link_deps() {{
  site=$("{scratch}/opt/hoga/bin/python" -c "import sysconfig; print(sysconfig.get_paths()['purelib'])")
  echo "{deps}" > "$site/deps.pth"
}}
start_hoga() {{
  ( set -a; . "{scratch}/etc/hoga/hoga.env"; set +a
    exec "{scratch}/opt/hoga/bin/hoga" serve ) >> "{scratch}/serve.log" 2>&1 &
  echo $! > "{scratch}/serve.pid"
  for _ in $(seq 1 600); do
    if "{scratch}/bin/hoga-admin" healthcheck --timeout 2 >/dev/null 2>&1; then return 0; fi
    kill -0 "$(cat "{scratch}/serve.pid")" || {{ cat "{scratch}/serve.log"; return 1; }}
    sleep 0.5
  done
  cat "{scratch}/serve.log"; return 1
}}
stop_hoga() {{
  pid=$(cat "{scratch}/serve.pid")
  kill -TERM "$pid"
  for _ in $(seq 1 120); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.5; done
  echo "hoga serve did not stop within 60 s"; return 1
}}
"""


def script(scratch: Path, db: str, wheel: Path, port: int) -> str:
    out = [PRELUDE.format(scratch=scratch, deps=sysconfig.get_paths()["purelib"])]
    subs = substitutions(scratch, db, wheel, port)
    text = guide()
    for old, _ in subs:
        assert old in text, f"the guide no longer says {old!r}: update SUBSTITUTIONS"
    for i, body in enumerate(blocks("test")):
        for old, new in subs:
            body = body.replace(old, new)
        out.append(f'echo "--- block {i + 1}"\n{body}')
    return "\n".join(out)


def _drop(db: str) -> None:
    psql = ["psql", "-h", "127.0.0.1", "-U", "postgres", "-d", "postgres", "-qc"]
    subprocess.run([*psql, f'drop database if exists "{db}" with (force)'], check=False)
    for role in ("owner", "app", "system"):
        subprocess.run([*psql, f'drop role if exists "{db}_{role}"'], check=False)


@pytest.mark.e2e
@pytest.mark.postgres
@pytest.mark.timeout(900)
def test_the_vps_guide_runs_from_nothing_to_a_served_upgraded_rotated_server(
    tmp_path: Path, pg_available: None
) -> None:
    assert shutil.which("psql") and shutil.which("openssl"), "needs psql and openssl"
    wheel = _build_wheel(tmp_path / "dist")
    scratch = tmp_path / "vps"
    for d in ("etc/systemd/system", "bin", "var/lib", "opt"):
        (scratch / d).mkdir(parents=True)
    db = f"hoga_doc_{secrets.token_hex(4)}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("HOGA_")}
    env["PATH"] = f"{scratch / 'bin'}:{env['PATH']}"
    try:
        res = subprocess.run(
            ["bash", "-c", script(scratch, db, wheel, free_port())],
            cwd=ROOT, env=env, capture_output=True, text=True, timeout=840,
        )  # fmt: skip
        log = scratch / "serve.log"
        served = log.read_text() if log.exists() else ""
        assert res.returncode == 0, f"{res.stdout}\n{res.stderr}\n--- serve.log\n{served}"
        out = res.stdout
        assert "applied 0001" in out  # hoga db upgrade on the fresh database
        assert "database is up to date" in out  # the upgrade step
        assert re.search(r"\badmin\b.*\byes\b", out), out  # user list: admin, an administrator
        assert out.count("ok: http://127.0.0.1:") == 2  # healthy after start and after restart
        assert "hoga stopped" in served  # the restart stopped it cleanly (SIGTERM)
        owner = subprocess.run(
            ["psql", "-h", "127.0.0.1", "-U", "postgres", "-d", "postgres", "-Atc",
             f"select pg_get_userbyid(datdba) from pg_database where datname = '{db}'"],  # noqa: S608
            capture_output=True, text=True, check=True,
        ).stdout.strip()  # fmt: skip
        assert owner == f"{db}_owner"
    finally:
        pid_file = scratch / "serve.pid"
        if pid_file.exists():
            with contextlib.suppress(ProcessLookupError, ValueError):
                os.kill(int(pid_file.read_text()), signal.SIGKILL)
        _drop(db)


def test_every_block_of_the_guide_is_run_or_checked() -> None:
    text = guide()
    fences = re.findall(r"^```(\S*)(?: \{(\w+)\})?$", text, re.M)
    opening = fences[::2]
    for lang, tag in opening:
        if lang == "sh":
            assert tag in ("test", "system"), f"an sh block without {{test}} or {{system}}: {tag}"
    assert len(blocks("test")) >= 7 and len(blocks("system")) >= 4


def test_system_blocks_name_only_files_that_exist() -> None:
    for body in blocks("system"):
        for name in re.findall(r"\bdeploy/[\w./-]+", body):
            assert (
                (ROOT / name).exists()
                or name.startswith("deploy/.env")
                or name.endswith("hoga.env")
            ), name
    caddy = shutil.which("caddy")
    if caddy:
        res = subprocess.run(
            [caddy, "validate", "--adapter", "caddyfile", "--config", str(ROOT / "deploy/Caddyfile")],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert res.returncode == 0, res.stderr
