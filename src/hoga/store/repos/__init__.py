"""Repositories. Every function that touches tenant rows takes the acting user's id."""

from typing import Any


def new_id(result: Any) -> int:
    """The primary key an INSERT just created."""
    key = result.inserted_primary_key
    if key is None:
        raise RuntimeError("insert returned no primary key")
    return int(key[0])
