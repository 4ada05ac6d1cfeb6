"""Turning a table row into the record a repository answers with."""

from __future__ import annotations

import dataclasses
from typing import Any, TypeVar

_Record = TypeVar("_Record")


# Field names per record class, looked up once: rows are turned into records on every read.
_FIELDS: dict[type[Any], tuple[str, ...]] = {}


def _fields(cls: type[Any]) -> tuple[str, ...]:
    names = _FIELDS.get(cls)
    if names is None:
        names = _FIELDS[cls] = tuple(f.name for f in dataclasses.fields(cls))
    return names


def from_row(cls: type[_Record], row: Any, **converted: Any) -> _Record:
    """The dataclass ``cls`` built from the row's columns of the same names.

    ``converted`` gives the fields whose column needs converting first (an enum from its text,
    a JSON document copied into a dict); every other field of ``cls`` must be a column of the
    row, so a renamed column fails loudly instead of leaving a default.
    """
    return cls(**{n: converted[n] if n in converted else getattr(row, n) for n in _fields(cls)})
