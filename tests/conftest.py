"""Shared fixtures: databases on SQLite and PostgreSQL, clocks.

PostgreSQL comes from HOGA_TEST_PG_URL (default: the local trust-auth server's ``test``
database). Each test that asks for it gets a fresh database of its own. Under CI=true a missing
PostgreSQL fails the run instead of skipping.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Iterator
from datetime import datetime
from pathlib import Path

import asyncpg
import pytest
from hypothesis import HealthCheck, settings

from hoga.domain.clock import KST, ManualClock
from hoga.store.db import Database
from tests.pg_support import PG_URL, create_database, drop_database, raw_dsn

IN_CI = os.environ.get("CI", "").lower() == "true"

# Property tests: the same examples on every run (a failure reproduces), and no per-example
# time limit - on a shared 2-core machine the first call of a test (imports, JIT-free warm-up)
# took 6.9 s once, and a deadline measures the machine, not the arithmetic.
settings.register_profile(
    "hoga",
    derandomize=True,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.load_profile("hoga")


async def _pg_alive() -> str | None:
    try:
        conn = await asyncpg.connect(raw_dsn(PG_URL), timeout=5)
    except (OSError, asyncpg.PostgresError) as e:
        return str(e)
    await conn.close()
    return None


@pytest.fixture(scope="session")
def pg_available() -> None:
    err = asyncio.run(_pg_alive())
    if err is None:
        return
    msg = f"PostgreSQL at {PG_URL} is not reachable: {err}"
    if IN_CI:
        pytest.fail(msg + " (CI=true: PostgreSQL tests must run)")
    pytest.skip(msg)


@pytest.fixture
async def pg_url(pg_available: None) -> AsyncIterator[str]:
    """A fresh, empty PostgreSQL database for one test; dropped afterwards."""
    name, url = await create_database("hoga_t_")
    yield url
    await drop_database(name)


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite+aiosqlite:///{tmp_path / 'hoga.db'}"


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The same test on SQLite and on PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'hoga.db'}"
    url: str = request.getfixturevalue("pg_url")
    return url


@pytest.fixture
async def db(db_url: str) -> AsyncIterator[Database]:
    """A migrated database (SQLite and PostgreSQL)."""
    database = Database(db_url)
    await database.migrate()
    await database.start()
    yield database
    await database.close()


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(datetime(2026, 11, 26, 10, 0, tzinfo=KST))


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        path = Path(str(item.fspath))
        if "e2e" in path.parts:
            item.add_marker(pytest.mark.e2e)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter, exitstatus: int) -> None:
    if not IN_CI:
        return
    skipped = [r for r in terminalreporter.stats.get("skipped", []) if "postgres" in r.keywords]
    if skipped:
        terminalreporter.write_line(
            f"CI=true but {len(skipped)} PostgreSQL test(s) were skipped", red=True
        )
        terminalreporter._session.exitstatus = 1


@pytest.fixture(scope="session")
def anyio_backend() -> Iterator[str]:
    return "asyncio"


@pytest.fixture(scope="session")
def nats_available() -> str:
    """The NATS (JetStream) URL for cluster tests; skipped if unreachable (failed under CI)."""
    from tests.cluster_support import NATS_URL, nats_alive

    err = asyncio.run(nats_alive())
    if err is None:
        return NATS_URL
    msg = f"NATS at {NATS_URL} is not reachable: {err}"
    if IN_CI:
        pytest.fail(msg + " (CI=true: cluster tests must run)")
    pytest.skip(msg)
