"""The environment of a ``hoga serve`` child process on loopback, shared by the end-to-end
tests (``tests/e2e``) and the benchmarks and standing suites (``benchmarks/server.py``)."""

from __future__ import annotations

import os
from pathlib import Path


def serve_env(data_dir: Path | str, port: int, **hoga: str) -> dict[str, str]:
    """The caller's environment without its own ``HOGA_*`` settings (so a developer's shell
    cannot change what is measured or tested), plus the data directory, the port, and what a
    loopback run needs; ``hoga`` adds or overrides whole variable names (``HOGA_LOG_LEVEL=...``).
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith("HOGA_")}
    env.update(
        HOGA_DATA_DIR=str(data_dir),
        HOGA_PORT=str(port),
        PYTHONUNBUFFERED="1",
        # Accounts point at loopback fakes (custom broker URLs are off by default).
        HOGA_ALLOW_CUSTOM_BROKER_URLS="true",
        HOGA_BROKER_URL_HOSTS="127.0.0.1,localhost",
        # PostgreSQL runs log in as the superuser (production uses role logins).
        HOGA_DATABASE_ALLOW_SUPERUSER="true",
    )
    env.update(hoga)
    return env
