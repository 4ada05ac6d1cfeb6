"""``hoga symbols sync`` as a process against the KIS fake's master files, and the admin
sync's refusals: an unreachable source is 503, a stub listing is refused and changes nothing."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

from hoga.domain.market import Listing
from hoga.fakes.kis import KisFakeAccount
from hoga.store.db import SYSTEM
from hoga.store.repos import instruments as repo
from tests.helpers import running
from tests.kis_support import ACCOUNT, HTS, KEY, SECRET, kis_fake


async def test_cli_sync_stores_the_master(tmp_path: Path, sqlite_url: str) -> None:
    accounts = [KisFakeAccount(ACCOUNT, KEY, SECRET, hts_id=HTS)]
    env = {k: v for k, v in os.environ.items() if not k.startswith("HOGA_")}
    env.update(HOGA_DATA_DIR=str(tmp_path / "var"), HOGA_DATABASE_URL=sqlite_url)
    hoga = [sys.executable, "-m", "hoga"]
    async with kis_fake("real", accounts) as fake:

        def run(*args: str) -> subprocess.CompletedProcess[str]:
            return subprocess.run(
                [*hoga, *args], env=env, capture_output=True, text=True, timeout=180
            )

        assert (await asyncio.to_thread(run, "db", "upgrade")).returncode == 0
        done = await asyncio.to_thread(
            run, "symbols", "sync", "--url", f"{fake.base_url}/common/master"
        )
        assert done.returncode == 0, done.stderr
        assert f"stored {len(fake.master)} symbols from kis" in done.stdout
        bad = await asyncio.to_thread(run, "symbols", "sync", "--url", f"{fake.base_url}/nope")
        assert bad.returncode != 0 and "HTTP 404" in bad.stderr + bad.stdout
    async with running(tmp_path, sqlite_url, symbols_sync_at="off") as h:
        async with h.hoga.db.tx(SYSTEM) as conn:
            count, synced_at, source = await repo.summary(conn)
        assert count == len(fake.master) and source == "kis" and synced_at is not None
        # The simulator feed keeps its demo universe even with a stored master.
        assert "095340" not in h.hoga.universe and len(h.hoga.universe) == 133


class _Stub:
    name = "stub"

    async def listings(self) -> list[Listing]:
        return [Listing("005930", "삼성전자", "KOSPI", "stock")]


async def test_admin_sync_refuses_a_stub_and_reports_an_unreachable_source(
    tmp_path: Path, sqlite_url: str
) -> None:
    async with running(
        tmp_path,
        sqlite_url,
        kis_master_url="http://127.0.0.1:9/master",
        symbols_sync_at="off",
        symbols_source="kis",  # named: the simulated market alone syncs nothing (409)
    ) as h:
        admin = await h.admin()
        r = await h.http.post("/api/admin/symbols/sync", headers=admin)
        assert r.status_code == 503, r.text
        assert r.json()["error"]["code"] == "symbols.source_unavailable"
        h.hoga.instrument_source = lambda: _Stub()  # type: ignore[method-assign]
        r = await h.http.post("/api/admin/symbols/sync", headers=admin)
        assert r.status_code == 502 and r.json()["error"]["code"] == "symbols.sync_refused"
        status = (await h.http.get("/api/admin/symbols", headers=admin)).json()
        assert status["stored"] == 0


async def test_the_simulated_market_syncs_nothing_unless_a_source_is_named(
    tmp_path: Path, sqlite_url: str
) -> None:
    """The fuzzer's 503: on the simulator, sync reached for KIS's real host. It trades its
    bundled symbols; a sync there is a 409 that says so, and nothing is fetched."""
    async with running(tmp_path, sqlite_url, symbols_sync_at="off") as h:
        admin = await h.admin()
        r = await h.http.post("/api/admin/symbols/sync", headers=admin)
        assert r.status_code == 409, r.text
        assert r.json()["error"]["code"] == "symbols.simulated"
