"""The operator's commands, as the operations guide gives them: ``hoga backup --out DIR`` beside a
running ``hoga serve`` (JSON logs to a rotated file), ``hoga restore ARCHIVE`` into an empty data
dir, and the restored server starting paused with the data there."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import httpx
import pytest

from tests.e2e.conftest import HOGA, login, start_server
from tests.helpers import ADMIN_PASSWORD, eventually_sync

pytestmark = pytest.mark.timeout(420)


def test_backup_a_running_server_and_restore_it_paused(tmp_path: Path) -> None:
    log_file = tmp_path / "logs" / "hoga.log"
    srv = start_server(
        tmp_path / "var",
        "src.log",
        HOGA_ADMIN_PASSWORD=ADMIN_PASSWORD,
        HOGA_LOG_FORMAT="json",
        HOGA_LOG_FILE=str(log_file),
    )
    try:
        headers = login(srv.url)
        r = httpx.post(
            f"{srv.url}/api/orders",
            headers={**headers, "X-Request-ID": "order-req-1"},
            json={"symbol": "005930", "side": "buy", "type": "market", "qty": 2},
        )
        assert r.status_code == 202, r.text
        assert r.headers["x-request-id"] == "order-req-1"
        order_id = r.json()["id"]

        def filled() -> bool:
            o = httpx.get(f"{srv.url}/api/orders/{order_id}", headers=headers).json()
            return bool(o["status"] == "FILLED")

        eventually_sync(filled, 60.0, "the order to fill")
        res = srv.cli("backup", "--out", str(tmp_path / "backups"))
        assert "backup written:" in res.stdout
        (archive,) = (tmp_path / "backups").glob("hoga-backup-*.tar.gz")
        # Metrics need the admin token.
        assert httpx.get(f"{srv.url}/metrics").status_code == 401
        assert "hoga_orders" in httpx.get(f"{srv.url}/metrics", headers=headers).text
    finally:
        srv.stop()

    # Every log line is JSON with an ISO-8601 time and zone; the file holds what stderr did.
    lines = [json.loads(x) for x in log_file.read_text().splitlines() if x.strip()]
    assert lines and all({"ts", "level", "logger", "msg"} <= set(x) for x in lines)
    assert any("started" in x["msg"] for x in lines)

    # Into a data dir that is not empty: refused, nothing changed.
    bad = srv.cli("restore", str(archive), check=False)
    assert bad.returncode == 1 and "not empty" in bad.stderr

    # Into an empty one: restored, and the server starts paused with the order there.
    restored = tmp_path / "restored" / "var"
    env = {**srv.env, "HOGA_DATA_DIR": str(restored)}
    done = subprocess.run(
        [*HOGA, "restore", str(archive)], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert "PAUSED" in done.stdout
    copy = start_server(restored, "restored.log", HOGA_ADMIN_PASSWORD=ADMIN_PASSWORD)
    try:
        assert "PAUSED" in copy.output()
        headers = login(copy.url)
        o = httpx.get(f"{copy.url}/api/orders/{order_id}", headers=headers)
        assert o.status_code == 200 and o.json()["status"] == "FILLED"
        status = httpx.get(f"{copy.url}/api/admin/status", headers=headers)
        assert status.status_code == 200
    finally:
        copy.stop()
