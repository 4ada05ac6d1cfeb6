"""The one-server guard in-process: file locks, the PostgreSQL advisory lock, and what happens
when the lock's connection is cut (see also tests/e2e/test_one_server.py)."""

from __future__ import annotations

from pathlib import Path

import asyncpg
import pytest

from hoga.store.instance_lock import ServerRunning, SingleServerGuard, running_server
from tests.helpers import eventually, running
from tests.pg_support import raw_dsn


async def _terminate_lock_sessions(pg_url: str) -> int:
    conn = await asyncpg.connect(raw_dsn(pg_url))
    try:
        return int(
            await conn.fetchval(
                "select count(pg_terminate_backend(pid)) from pg_stat_activity "
                "where datname = current_database() and application_name like 'hoga-server%'"
            )
        )
    finally:
        await conn.close()


async def test_data_dir_lock_is_exclusive_and_names_its_holder(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'var' / 'hoga.db'}"
    first = SingleServerGuard(tmp_path / "var", url)
    await first.acquire()
    try:
        assert await running_server(tmp_path / "var", url) is not None
        with pytest.raises(ServerRunning) as e:
            await SingleServerGuard(tmp_path / "var", url).acquire()
        assert e.value.code == "server.already_running"
        assert "pid" in e.value.message
    finally:
        await first.release()
    assert await running_server(tmp_path / "var", url) is None
    again = SingleServerGuard(tmp_path / "var", url)
    await again.acquire()
    await again.release()


@pytest.mark.postgres
async def test_a_cut_lock_connection_is_taken_again_or_reported_lost(
    tmp_path: Path, pg_url: str
) -> None:
    first = SingleServerGuard(tmp_path / "a", pg_url)
    second = SingleServerGuard(tmp_path / "b", pg_url)
    await first.acquire()
    try:
        with pytest.raises(ServerRunning):
            await second.acquire()
        holder = await running_server(tmp_path / "b", pg_url)
        assert holder is not None and holder.pid is not None
        # PostgreSQL restarted or the session was terminated: the lock went with it.
        assert await _terminate_lock_sessions(pg_url) == 1
        assert await first.check() is True
        assert first.lost is False
        with pytest.raises(ServerRunning):
            await second.acquire()
        # Cut again, and this time another server takes the lock before we notice.
        assert await _terminate_lock_sessions(pg_url) == 1
        await second.acquire()
        assert await first.check() is False
        assert first.lost is True
    finally:
        await second.release()
        await first.release()


@pytest.mark.postgres
async def test_a_server_that_loses_its_lock_holds_every_order_until_it_has_it_again(
    tmp_path: Path, pg_url: str
) -> None:
    async with running(tmp_path, pg_url) as h:
        sue = await h.user("sue", "basic")
        # The lock's session is cut, and another server takes the lock before this one notices.
        assert await _terminate_lock_sessions(pg_url) == 1
        other = SingleServerGuard(tmp_path / "other", pg_url)
        await other.acquire()
        try:

            async def lost() -> bool:
                return h.hoga.gate.lock_lost_since is not None

            await eventually(lost, within=30, what="the server to notice the lost lock")
            ready = await h.http.get("/ready")
            assert ready.status_code == 503
            assert ready.json()["parts"]["dispatcher"]["hold"] == "server.lock_lost"
            r = await h.post_order(sue, qty=1)
            assert r.status_code == 202, r.text
            order = await h.order(sue, r.json()["id"])
            assert order["status"] == "QUEUED"
            assert order["waiting"]["code"] == "server.lock_lost"
        finally:
            await other.release()

        async def regained() -> bool:
            return h.hoga.gate.lock_lost_since is None

        await eventually(regained, within=30, what="the server to take its lock again")
        await h.wait_status(sue, order["id"], "FILLED")
