"""One server per database and data dir: a second ``hoga serve`` refuses to start and names the
first; the lock dies with the process that held it, kill -9 included (issue 11)."""

from __future__ import annotations

import asyncio
import signal
import subprocess
from pathlib import Path

import pytest

from tests.e2e.conftest import HOGA, Server, server_env, start_server
from tests.helpers import ADMIN_PASSWORD, free_port

# Several server starts on a loaded 2-core machine take longer than the default 120 s.
pytestmark = pytest.mark.timeout(360)


def _second(data_dir: Path, **extra: str) -> subprocess.CompletedProcess[str]:
    env = server_env(data_dir, free_port(), HOGA_ADMIN_PASSWORD=ADMIN_PASSWORD, **extra)
    return subprocess.run([*HOGA, "serve"], env=env, capture_output=True, text=True, timeout=40)


def _refused(res: subprocess.CompletedProcess[str], first: Server) -> str:
    assert res.returncode != 0, res.stdout + res.stderr
    errors = [line for line in res.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, res.stderr
    assert "Traceback" not in res.stderr + res.stdout
    line = errors[0]
    assert "another hoga server" in line
    # It says who holds it.
    assert f"pid {first.proc.pid}" in line, line
    return line


def _kill(srv: Server) -> None:
    srv.proc.send_signal(signal.SIGKILL)
    srv.proc.wait(10)


async def test_second_server_on_the_same_sqlite_data_dir_refuses_until_the_first_dies(
    tmp_path: Path,
) -> None:
    data = tmp_path / "var"
    first = await asyncio.to_thread(
        start_server, data, "first.log", HOGA_ADMIN_PASSWORD=ADMIN_PASSWORD
    )
    try:
        journal_before = (data / "paper").exists() and sorted((data / "paper").iterdir())
        line = _refused(await asyncio.to_thread(_second, data), first)
        assert "data directory" in line
        # The refused server touched nothing of the first one's.
        assert ((data / "paper").exists() and sorted((data / "paper").iterdir())) == (
            journal_before
        )
        # The same SQLite file reached from another data dir is refused too.
        other = tmp_path / "other"
        db_url = f"sqlite+aiosqlite:///{(data / 'hoga.db').resolve()}"
        line = _refused(await asyncio.to_thread(_second, other, HOGA_DATABASE_URL=db_url), first)
        assert "hoga.db" in line
    finally:
        _kill(first)
    # kill -9 leaves no lock behind.
    again = await asyncio.to_thread(start_server, data, "again.log")
    again.stop()


@pytest.mark.postgres
async def test_second_server_on_the_same_postgres_database_refuses_until_the_first_dies(
    tmp_path: Path, pg_url: str
) -> None:
    first = await asyncio.to_thread(
        start_server,
        tmp_path / "a",
        "first.log",
        HOGA_ADMIN_PASSWORD=ADMIN_PASSWORD,
        HOGA_DATABASE_URL=pg_url,
    )
    try:
        # Another data dir, same database: the advisory lock refuses it.
        line = _refused(
            await asyncio.to_thread(_second, tmp_path / "b", HOGA_DATABASE_URL=pg_url), first
        )
        assert "database" in line and "hoga_t_" in line
        # The same data dir is refused by its file lock whatever the database.
        _refused(await asyncio.to_thread(_second, tmp_path / "a", HOGA_DATABASE_URL=pg_url), first)
    finally:
        _kill(first)
    # PostgreSQL ends the dead process's session and with it the lock.
    again = await asyncio.to_thread(
        start_server, tmp_path / "b", "again.log", HOGA_DATABASE_URL=pg_url
    )
    again.stop()
