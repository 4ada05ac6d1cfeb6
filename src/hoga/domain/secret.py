"""A wrapper that keeps credentials out of reprs, logs and tracebacks."""

from __future__ import annotations

from collections.abc import Callable
from typing import ClassVar, Final

_MASK: Final = "****"


class Secret:
    """Holds a secret string; ``str``/``repr`` show a mask, ``reveal()`` gives the value.

    Only broker adapters call ``reveal()``, at the moment they put the value on the wire.
    """

    __slots__ = ("_value",)

    #: Called with every new secret value (the logging set-up registers a masker here).
    on_create: ClassVar[list[Callable[[str], None]]] = []

    def __init__(self, value: str) -> None:
        self._value = value
        for hook in Secret.on_create:
            hook(value)

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return f"Secret('{_MASK}')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)

    def __bool__(self) -> bool:
        return bool(self._value)

    def __reduce__(self) -> tuple[object, ...]:
        raise TypeError("Secret values are not picklable")


def mask(value: str, keep: int = 4) -> str:
    """``****1234``-style mask showing only the last ``keep`` characters (none if short)."""
    v = value.strip()
    if len(v) <= keep * 2:
        return _MASK
    return f"{_MASK}-{v[-keep:]}"
