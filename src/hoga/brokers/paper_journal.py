"""The paper broker's journal: its book as an append-only file of JSON lines, so a restart
finds every account, order and fill again (``PaperBroker`` replays it at start).

The file is private to the server's account (0700 directory, 0600 file). Each record is written
with one ``write`` and flushed (and fsynced unless told otherwise) before the broker answers,
so a crash loses nothing acknowledged; a torn last line after a crash is skipped on replay.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

log = logging.getLogger(__name__)


class PaperJournal:
    """One paper book's journal file at ``path``."""

    def __init__(self, path: Path, *, fsync: bool = True) -> None:
        self.path = path
        self.fsync = fsync
        self._fh: IO[str] | None = None

    def open(self, apply: Callable[[dict[str, Any]], None]) -> None:
        """Replay the file through ``apply``, then open it for appending."""
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        self._replay(apply)
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        if os.fstat(fd).st_mode & 0o077:
            os.fchmod(fd, 0o600)
        self._fh = os.fdopen(fd, "a", encoding="utf-8")

    def _replay(self, apply: Callable[[dict[str, Any]], None]) -> None:
        if not self.path.exists():
            return
        with self.path.open(encoding="utf-8") as fh:
            for n, line in enumerate(fh, 1):
                if not line.strip():
                    continue
                try:
                    apply(json.loads(line))
                except (ValueError, KeyError) as e:
                    # A torn last line after a crash is expected; anything else is not.
                    log.warning("paper journal line %d unreadable (%s); ignored", n, e)

    def write(self, record: dict[str, Any]) -> None:
        if self._fh is None:
            return
        self._fh.write(json.dumps(record, ensure_ascii=False, separators=(",", ":")) + "\n")
        self._fh.flush()
        if self.fsync:
            os.fsync(self._fh.fileno())

    def close(self) -> None:
        if self._fh is not None:
            self._fh.flush()
            os.fsync(self._fh.fileno())
            self._fh.close()
            self._fh = None
