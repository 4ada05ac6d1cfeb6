"""Login throttling: failures slow a key down, then lock it for a while.

Sign-in and password checks lock per (account, address): a stranger guessing from their own
address locks only themselves out, never the owner. Across addresses a slower per-account
**back-off** bounds the total rate of guesses (``backoff_after`` failures within the window,
then a lock of ``backoff_base`` seconds doubling per further failure up to ``backoff_max``):
the owner is at worst slowed for a minute, never kept out for the full lock. Keys are the
username as typed (whether or not it exists, so a lock does not reveal that) and the client
address. State lives in memory: hoga is one process, and a restart forgetting half-finished
lockouts is acceptable. In cluster mode every server applies every server's failures to its own
copy (``hoga.cluster.throttle``), behind the ``Throttle`` protocol ``AuthService`` uses.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Any, Protocol

from hoga.domain.clock import Clock


class Throttle(Protocol):
    """What sign-in asks of a throttle (``LoginThrottle``'s methods, documented there)."""

    @property
    def max_failures(self) -> int: ...

    def locked_for(self, *keys: str) -> float: ...

    def failure(
        self, *keys: str, limits: dict[str, int] | None = None, backoff: tuple[str, ...] = ()
    ) -> float: ...

    def success(self, *keys: str) -> None: ...


@dataclass
class _Entry:
    failures: deque[float] = field(default_factory=deque)
    locked_until: float = 0.0


class LoginThrottle:
    """Counts failures per key within ``window`` seconds; ``max_failures`` locks the key."""

    def __init__(
        self,
        clock: Clock,
        *,
        max_failures: int = 5,
        lock_seconds: float = 900.0,
        window: float = 900.0,
        base_delay: float = 0.25,
        max_delay: float = 3.0,
        backoff_after: int | None = None,
        backoff_base: float = 1.0,
        backoff_max: float = 60.0,
    ) -> None:
        self._clock = clock
        self.max_failures = max_failures
        self.lock_seconds = lock_seconds
        self.window = window
        self.base_delay = base_delay
        self.max_delay = max_delay
        self.backoff_after = backoff_after or 2 * max_failures
        self.backoff_base = backoff_base
        self.backoff_max = backoff_max
        self._entries: dict[str, _Entry] = {}

    def _entry(self, key: str) -> _Entry:
        e = self._entries.get(key)
        if e is None:
            e = self._entries[key] = _Entry()
        now = self._clock.monotonic()
        while e.failures and e.failures[0] < now - self.window:
            e.failures.popleft()
        return e

    def locked_for(self, *keys: str) -> float:
        """Seconds until every given key is unlocked (0 when none is locked)."""
        now = self._clock.monotonic()
        return max((max(0.0, self._entry(k).locked_until - now) for k in keys), default=0.0)

    def failure(
        self, *keys: str, limits: dict[str, int] | None = None, backoff: tuple[str, ...] = ()
    ) -> float:
        """Record a failure; returns the delay to impose before answering.

        ``keys`` lock for ``lock_seconds`` at their limit; ``backoff`` keys (one per account)
        lock briefly and increasingly once they pass ``backoff_after`` failures."""
        now = self._clock.monotonic()
        for k in backoff:
            e = self._entry(k)
            e.failures.append(now)
            over = len(e.failures) - self.backoff_after
            if over >= 0:
                wait = min(self.backoff_max, self.backoff_base * 2 ** min(over, 32))
                e.locked_until = max(e.locked_until, now + wait)
        worst = 0
        for k in keys:
            e = self._entry(k)
            e.failures.append(now)
            limit = (limits or {}).get(k, self.max_failures)
            if len(e.failures) >= limit:
                e.locked_until = now + self.lock_seconds
                e.failures.clear()
            worst = max(worst, len(e.failures))
        if len(self._entries) > 10_000:
            self._prune(now)
        return min(self.max_delay, self.base_delay * (2 ** max(0, worst - 1))) if worst else 0.0

    def success(self, *keys: str) -> None:
        for k in keys:
            self._entries.pop(k, None)

    def _prune(self, now: float) -> None:
        for k in [k for k, e in self._entries.items() if not e.failures and e.locked_until < now]:
            del self._entries[k]

    def export(self) -> list[list[Any]]:
        """The live state as ``[key, [failure ages], seconds still locked]`` rows - ages, not
        times, so another process with another monotonic clock can ``merge`` them."""
        now = self._clock.monotonic()
        self._prune(now)
        return [
            [k, [round(now - t, 3) for t in e.failures], round(max(0.0, e.locked_until - now), 3)]
            for k, e in self._entries.items()
        ]

    def merge(self, rows: list[list[Any]]) -> None:
        """Take over another process's ``export`` for keys this one knows nothing of."""
        now = self._clock.monotonic()
        for key, ages, locked in rows:
            if str(key) in self._entries:
                continue
            e = self._entries[str(key)] = _Entry()
            e.failures.extend(sorted(now - float(a) for a in ages))
            e.locked_until = now + float(locked) if float(locked) > 0 else 0.0
