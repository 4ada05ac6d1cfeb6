"""Files at rest are the owner's alone: directories hoga creates are 0700, its files 0600.

The SQLite database (and the ``-wal``/``-shm`` files SQLite creates with the database file's
mode), the paper journal and the key files hold balances, orders and credentials; on a shared
machine another local account must not read them. Existing directories are never chmod-ed
(``HOGA_DATA_DIR`` might be a shared directory): a readable data dir is logged as a warning.
"""

from __future__ import annotations

import contextlib
import logging
import os
from pathlib import Path

log = logging.getLogger(__name__)


def private_dir(path: Path) -> None:
    """Create ``path`` (and missing parents) as 0700; warn if an existing one is open to others."""
    if not path.exists():
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
        with contextlib.suppress(OSError):
            os.chmod(path, 0o700)  # mkdir's mode is filtered by the umask
        return
    mode = path.stat().st_mode & 0o777
    if mode & 0o077:
        log.warning(
            "data directory %s is accessible to other accounts (mode %o); chmod 700 it", path, mode
        )


def private_file(path: Path) -> None:
    """Create ``path`` empty with mode 0600 if it is missing; tighten it if it is looser."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    os.close(fd)
    if path.stat().st_mode & 0o077:
        os.chmod(path, 0o600)


def tighten(path: Path) -> None:
    """Make an existing file of hoga's 0600 (no-op when it does not exist)."""
    with contextlib.suppress(FileNotFoundError):
        if path.stat().st_mode & 0o077:
            os.chmod(path, 0o600)
