"""``pip install .`` (not editable) gives a working server: the wheel carries everything hoga
needs at run time (templates, static files, migrations, bundled data), declares the heavy
libraries only as extras, and ``hoga serve`` from it answers ``/health`` with pyarrow, plotly and
matplotlib unimportable.

The wheel goes into a fresh virtual environment with ``--no-deps``; its dependencies come from
this test run's environment through a ``.pth`` file (fast, and no index is asked), while a
``sitecustomize`` there makes the optional libraries fail to import as if not installed.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import httpx
import pytest

from tests.helpers import ADMIN_PASSWORD, eventually_sync, free_port

ROOT = Path(__file__).resolve().parents[2]
OPTIONAL = ("pyarrow", "plotly", "matplotlib")

BLOCKER = f"""
import importlib.abc, sys

class _NotInstalled(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {OPTIONAL!r}:
            raise ModuleNotFoundError(f"No module named {{name!r}}", name=name)
        return None

sys.meta_path.insert(0, _NotInstalled())
"""


def _build_wheel(dest: Path) -> Path:
    res = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "-w", str(dest), str(ROOT)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert res.returncode == 0, res.stderr
    (wheel,) = dest.glob("hoga-*.whl")
    return wheel


def _venv(tmp: Path, wheel: Path) -> Path:
    venv = tmp / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    py = venv / "bin" / "python"
    res = subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(py), "install", "--quiet", "--no-deps",
         "--no-index", str(wheel)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert res.returncode == 0, res.stderr
    site = Path(
        subprocess.check_output(
            [str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            text=True,
        ).strip()
    )
    # Dependencies from this environment, after the venv's own site-packages (so the wheel's
    # hoga wins over any editable install here).
    (site / "deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    (site / "sitecustomize.py").write_text(BLOCKER)
    return venv


@pytest.mark.e2e
@pytest.mark.timeout(600)
def test_installed_wheel_serves_without_optional_libraries(tmp_path: Path) -> None:
    wheel = _build_wheel(tmp_path / "dist")
    with zipfile.ZipFile(wheel) as z:
        names = set(z.namelist())
        meta = z.read(next(n for n in names if n.endswith(".dist-info/METADATA"))).decode()
    for needed in (
        "hoga/web/static/index.html",
        "hoga/store/migrations/env.py",
        "hoga/store/migrations/versions/0001_initial_schema.py",
        "hoga/py.typed",
    ):
        assert needed in names, f"{needed} missing from the wheel"
    assert any(n.startswith("hoga/web/static/") for n in names)
    assert any(n.startswith("hoga/marketdata/data/") and n.endswith(".csv") for n in names)
    requires = [line for line in meta.splitlines() if line.startswith("Requires-Dist:")]
    for lib in OPTIONAL:
        unconditional = [r for r in requires if lib in r.lower() and "extra ==" not in r]
        assert not unconditional, f"{lib} is a hard dependency: {unconditional}"
    assert "Provides-Extra: parquet" in meta and "Provides-Extra: plotly" not in meta

    venv = _venv(tmp_path, wheel)
    hoga = str(venv / "bin" / "hoga")
    where = subprocess.run(
        [str(venv / "bin" / "python"), "-c", "import hoga; print(hoga.__file__)"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert where.stdout.startswith(str(venv)), where.stdout + where.stderr
    blocked = subprocess.run([str(venv / "bin" / "python"), "-c", "import pyarrow"], timeout=60)
    assert blocked.returncode != 0

    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("HOGA_")}
    env.update(
        HOGA_DATA_DIR=str(tmp_path / "var"),
        HOGA_PORT=str(port),
        HOGA_ADMIN_PASSWORD=ADMIN_PASSWORD,
        PYTHONUNBUFFERED="1",
    )
    log_path = tmp_path / "serve.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [hoga, "serve"], env=env, stdout=log, stderr=subprocess.STDOUT, cwd=tmp_path
        )
    url = f"http://127.0.0.1:{port}"
    try:

        def healthy() -> bool:
            assert proc.poll() is None, log_path.read_text()
            with contextlib.suppress(httpx.HTTPError):
                return httpx.get(f"{url}/health", timeout=2).status_code == 200
            return False

        eventually_sync(healthy, 240, lambda: log_path.read_text(), pause=0.2)
        # The dashboard page and its vendored chart library come from the wheel itself.
        assert httpx.get(f"{url}/", timeout=10).status_code == 200
        assert httpx.get(f"{url}/vendor/plotly.min.js", timeout=10).status_code == 404
        charts = [n for n in names if n.startswith("hoga/web/static/vendor/") and n.endswith(".js")]
        assert charts, "the vendored chart library is missing from the wheel"
        assert (
            httpx.get(
                f"{url}/static/{charts[0][len('hoga/web/static/') :]}", timeout=10
            ).status_code
            == 200
        )
        ok = subprocess.run([hoga, "healthcheck"], env=env, capture_output=True, text=True)
        assert ok.returncode == 0, ok.stderr
        assert ok.stdout.startswith("ok: ")
    finally:
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(60)
    assert code == 0, log_path.read_text()
    # Nothing listens any more: the health check says so in one line and exits 1.
    down = subprocess.run(
        [hoga, "healthcheck", "--timeout", "2"], env=env, capture_output=True, text=True
    )
    assert down.returncode == 1
    assert down.stderr.startswith("error: ") and len(down.stderr.strip().splitlines()) == 1
