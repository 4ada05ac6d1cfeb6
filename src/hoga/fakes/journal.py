"""The broker fakes' journal: their books survive a restart, as a real broker's do.

Append-only JSON lines, one record per change, each written with a single ``write`` and flushed
before the fake answers the request that caused it - so a fake killed with ``kill -9`` loses
nothing it acknowledged, and a fake restarted on the same journal knows every order it booked,
every execution, every balance, and continues its order numbers instead of reusing them.

Records are snapshots (``{"t": "order", ...}``, ``{"t": "account", ...}``, ``{"t": "seq",
...}``); replaying the file keeps the last snapshot of each key. A last line torn by a crash
mid-write is cut off when the journal is opened; a damaged line anywhere else is an error (the
book cannot be trusted). Credentials are never written: accounts and keys come from the fake's
command line on every start; the journal holds only their books.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

log = logging.getLogger(__name__)


class JournalError(Exception):
    """The journal cannot be read back (a damaged record before the last line)."""


class Journal:
    """One fake's append-only journal at ``path``; see the module docstring."""

    def __init__(self, path: Path | str, *, fsync: bool = False) -> None:
        self.path = Path(path)
        self.fsync = fsync
        self._fh: IO[str] | None = None
        self.written = 0

    def load(self) -> list[dict[str, Any]]:
        """Every record in order; a torn last line is cut from the file, too."""
        if not self.path.exists():
            return []
        raw = self.path.read_bytes()
        records: list[dict[str, Any]] = []
        pos = 0
        while pos < len(raw):
            nl = raw.find(b"\n", pos)
            end = len(raw) if nl < 0 else nl
            line = raw[pos:end]
            rec = _decode(line) if line.strip() else None
            if line.strip() and rec is None:
                if raw[end:].strip():
                    raise JournalError(f"{self.path}: the record at byte {pos} is damaged")
                log.warning(
                    "fake journal %s: cutting a torn last record (%d bytes)", self.path, len(line)
                )
                with self.path.open("r+b") as fh:
                    fh.truncate(pos)
                break
            if rec is not None:
                records.append(rec)
            if nl < 0:
                # Readable but without its newline: the crash came between the two. Add it so
                # the next append starts a line of its own.
                with self.path.open("ab") as fh:
                    fh.write(b"\n")
                break
            pos = nl + 1
        return records

    def open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fh = self.path.open("a", encoding="utf-8")

    def write(self, record: dict[str, Any]) -> None:
        """Append one record and flush it (and fsync when asked) before returning."""
        if self._fh is None:
            self.open()
        assert self._fh is not None
        self._fh.write(json.dumps(record, ensure_ascii=False, separators=(",", ":")) + "\n")
        self._fh.flush()
        if self.fsync:
            os.fsync(self._fh.fileno())
        self.written += 1

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None


def _decode(line: bytes) -> dict[str, Any] | None:
    try:
        rec = json.loads(line)
    except ValueError:
        return None
    return rec if isinstance(rec, dict) else None


def restore_from(journal: Journal, restore: Callable[[list[dict[str, Any]]], int]) -> int:
    """Read ``journal`` into a fake's book with ``restore``; any record that does not fit the
    book (another version's fields, a missing value) is a ``JournalError`` naming the file."""
    records = journal.load()
    try:
        return restore(records)
    except (KeyError, TypeError, ValueError) as e:
        raise JournalError(
            f"{journal.path}: cannot restore the book ({type(e).__name__}: {e})"
        ) from None
