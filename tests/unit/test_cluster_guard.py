"""Cluster mode's guard refuses what cannot be shared; without cluster settings nothing changes."""

from __future__ import annotations

import base64
import subprocess
import sys
from pathlib import Path

import pytest

from hoga.app import HogaApp
from hoga.config import ConfigError
from hoga.execution.events import EventBus
from hoga.store.instance_lock import SingleServerGuard
from tests.helpers import make_settings

KEYS = {
    "master_key": base64.b64encode(b"k" * 32).decode(),
    "jwt_secret": "s" * 32,
}


def test_cluster_mode_refuses_sqlite(tmp_path: Path) -> None:
    settings = make_settings(
        tmp_path, f"sqlite+aiosqlite:///{tmp_path / 'h.db'}",
        cluster_nats_url="nats://127.0.0.1:4222", **KEYS,
    )  # fmt: skip
    with pytest.raises(ConfigError, match="needs PostgreSQL"):
        HogaApp(settings)


def test_cluster_mode_needs_the_shared_keys(tmp_path: Path) -> None:
    settings = make_settings(
        tmp_path, "postgresql+asyncpg://postgres@127.0.0.1:5432/x",
        cluster_nats_url="nats://127.0.0.1:4222",
    )  # fmt: skip
    with pytest.raises(ConfigError, match="HOGA_MASTER_KEY and HOGA_JWT_SECRET"):
        HogaApp(settings)


def test_without_cluster_settings_the_single_server_parts_stand(tmp_path: Path) -> None:
    app = HogaApp(make_settings(tmp_path, f"sqlite+aiosqlite:///{tmp_path / 'h.db'}"))
    assert app.cluster is None
    assert isinstance(app.guard, SingleServerGuard)
    assert type(app.bus) is EventBus
    assert app.queue.admit is None
    assert app.orders.remote_modify is None
    assert app.live_strategies.owns is None and app.reconciler.owns_account is None


def test_a_single_server_never_imports_nats(tmp_path: Path) -> None:
    code = (
        "import sys; from pathlib import Path; from hoga.app import HogaApp; "
        "from tests.helpers import make_settings; "
        f"p = Path({str(tmp_path)!r}); "
        "HogaApp(make_settings(p, f'sqlite+aiosqlite:///{p / \"h.db\"}')); "
        "assert 'nats' not in sys.modules, 'nats imported'"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
