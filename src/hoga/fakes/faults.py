"""Seeded fault plans for the broker fakes: what goes wrong with an order request, and how often.

A real broker sometimes refuses a request before booking it, books it and then drops the
connection, books it and sends half an answer, or books it and never answers at all. The
adapters must tell these apart ("not sent" versus "outcome unknown"), and the chaos suite needs
them on demand, so both fakes take the same plan:

``--fault http500=0.05 --fault drop=every:7 --fault truncate=0.02 --fault hang=every:25``

* ``http500``  - HTTP 500 *before* anything is booked (the order never reached the book);
* ``drop``     - the order is booked, then the connection closes without an answer;
* ``truncate`` - the order is booked, the answer is cut short (unreadable JSON);
* ``hang``     - the order is booked and the answer never comes (the client times out).

A rate is a probability per order request (seeded: the same seed gives the same faults for the
same sequence of requests) or ``every:N`` - the N-th, 2N-th, ... request the rule sees. Only
order commands (place, modify, cancel) are affected; queries stay truthful so reconciliation can
settle what the faults left open.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Final

BEFORE: Final = frozenset({"http500"})
AFTER: Final = frozenset({"drop", "truncate", "hang"})
KINDS: Final = tuple(sorted(BEFORE | AFTER))


@dataclass
class FaultRule:
    """One kind of fault and how often it fires: a probability, or every N-th request."""

    kind: str
    probability: float = 0.0
    every: int = 0
    seen: int = 0

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown fault {self.kind!r}: one of {', '.join(KINDS)}")
        if self.every < 0 or not 0.0 <= self.probability <= 1.0:
            raise ValueError(f"fault {self.kind}: a rate is 0..1 or every:N with N >= 1")
        if bool(self.every) == bool(self.probability):
            raise ValueError(f"fault {self.kind}: give either a probability or every:N")

    def fires(self, rng: random.Random) -> bool:
        self.seen += 1
        if self.every:
            return self.seen % self.every == 0
        return rng.random() < self.probability

    def describe(self) -> str:
        return (
            f"{self.kind}=every:{self.every}" if self.every else f"{self.kind}={self.probability:g}"
        )


def parse_rule(spec: str) -> FaultRule:
    """``"drop=0.05"`` or ``"hang=every:10"`` -> a rule; ``ValueError`` with the reason."""
    kind, sep, rate = spec.strip().partition("=")
    if not sep or not kind or not rate:
        raise ValueError(
            f"fault {spec!r}: write KIND=RATE or KIND=every:N (KIND: {', '.join(KINDS)})"
        )
    kind, rate = kind.strip().lower(), rate.strip().lower()
    if rate.startswith("every:"):
        try:
            every = int(rate[6:])
        except ValueError:
            raise ValueError(f"fault {spec!r}: every:N needs a whole number") from None
        if every < 1:
            raise ValueError(f"fault {spec!r}: every:N needs N >= 1")
        return FaultRule(kind, every=every)
    try:
        probability = float(rate)
    except ValueError:
        raise ValueError(f"fault {spec!r}: the rate must be a number 0..1 or every:N") from None
    if not 0.0 < probability <= 1.0:
        raise ValueError(f"fault {spec!r}: a probability must be above 0 and at most 1")
    return FaultRule(kind, probability=probability)


@dataclass
class FaultPlan:
    """The faults a fake injects into order requests; see the module docstring.

    ``before()`` is asked once per order request before anything is booked, ``after()`` once
    per booked order before it is answered; each returns the fault to apply, or None. ``fired``
    counts what was injected (the chaos suite prints it).
    """

    rules: list[FaultRule] = field(default_factory=list)
    seed: int = 1
    fired: Counter[str] = field(default_factory=Counter)

    def __post_init__(self) -> None:
        self._rng = random.Random(self.seed)

    @classmethod
    def parse(cls, specs: Iterable[str], seed: int = 1) -> FaultPlan:
        rules = [parse_rule(s) for s in specs if s.strip()]
        kinds = [r.kind for r in rules]
        dup = sorted({k for k in kinds if kinds.count(k) > 1})
        if dup:
            raise ValueError(f"fault {dup[0]} given twice")
        return cls(rules, seed)

    def __bool__(self) -> bool:
        return bool(self.rules)

    def _pick(self, kinds: frozenset[str]) -> str | None:
        chosen: str | None = None
        for rule in self.rules:
            # Every rule of the stage draws, whether or not an earlier one fired, so one rule's
            # rate does not shift another's sequence.
            if rule.kind in kinds and rule.fires(self._rng) and chosen is None:
                chosen = rule.kind
        if chosen is not None:
            self.fired[chosen] += 1
        return chosen

    def before(self) -> str | None:
        """The fault for an order request before booking (``http500``) or None."""
        return self._pick(BEFORE)

    def after(self) -> str | None:
        """The fault for a booked order's answer (``drop``/``truncate``/``hang``) or None."""
        return self._pick(AFTER)

    def describe(self) -> str:
        return ", ".join(r.describe() for r in self.rules) or "none"

    def view(self) -> dict[str, object]:
        return {
            "rules": [r.describe() for r in self.rules],
            "seed": self.seed,
            "fired": dict(sorted(self.fired.items())),
        }
