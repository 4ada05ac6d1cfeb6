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
from collections.abc import Callable, Mapping
from dataclasses import asdict
from datetime import date
from enum import Enum
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Generic, Protocol, TypeVar

from hoga.domain.portfolio import Position

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

log = logging.getLogger(__name__)
KeyT = TypeVar("KeyT")
OrderT = TypeVar("OrderT")


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


class Booked(Protocol):
    """An account's book as the journal keeps it."""

    cash: int
    positions: dict[str, Position]


class Changes(Generic[KeyT, OrderT]):
    """What an exchange operation changed: the orders (by number) and the accounts' books (by
    account number) it touched, written as snapshots when the operation ends (``commit``)."""

    def __init__(self) -> None:
        self.orders: dict[KeyT, OrderT] = {}
        self.accounts: dict[str, Booked] = {}

    def touch(self, key: KeyT, order: OrderT, account: tuple[str, Booked] | None = None) -> None:
        self.orders[key] = order
        if account is not None:
            self.accounts[account[0]] = account[1]

    def commit(
        self,
        journal: Journal | None,
        record: Callable[[OrderT], dict[str, Any]],
        seq: dict[str, Any],
    ) -> None:
        """Write the touched orders (as ``record`` gives them), books and the ``seq`` record,
        and forget them (nothing is written without a journal)."""
        orders, accounts = self.orders, self.accounts
        if not orders and not accounts:
            return
        self.orders, self.accounts = {}, {}
        if journal is None:
            return
        for order in orders.values():
            journal.write({"t": "order", **record(order)})
        for number, book in accounts.items():
            positions = {s: [p.qty, p.cost, p.realized_pnl] for s, p in book.positions.items()}
            journal.write(
                {"t": "account", "account": number, "cash": book.cash, "positions": positions}
            )
        journal.write({"t": "seq", **seq})


def order_record(order: DataclassInstance) -> dict[str, Any]:
    """An order dataclass's fields as JSON values (dates as ISO text, enums as their values)."""
    out = asdict(order)
    for name, value in out.items():
        if isinstance(value, date):
            out[name] = value.isoformat()
        elif isinstance(value, Enum):
            out[name] = value.value
    return out


def restore_book(record: dict[str, Any], books: Mapping[str, Booked]) -> None:
    """Apply an ``account`` record to the book it names (a book this start lacks is skipped)."""
    book = books.get(str(record.get("account")))
    if book is not None:
        book.cash = int(record["cash"])
        book.positions = {
            s: Position(int(v[0]), int(v[1]), int(v[2]))
            for s, v in dict(record.get("positions") or {}).items()
        }
