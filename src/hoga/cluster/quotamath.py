"""The arithmetic of a cap shared among servers, apart from any I/O (``cluster/quota.py``).

A shared cap is one record: how many of the cap's slots each server holds, and until when
(wall-clock seconds) the holding stands unless renewed. The rules that keep the servers
together under the cap, whatever order their compare-and-set writes land in:

* a server only *adds* to its own holding out of the room the others leave (``grant``), and
  starts using the addition only after its write succeeded;
* a server lowers what it uses first and writes the lower holding afterwards
  (``release_to``), never below what it used in the current window, so the slots it gives
  back are slots it will not use before they are someone else's;
* a holding past its ``until`` counts for nothing (``live``): its server stopped renewing it,
  and stopped using it (it fences itself earlier, see ``quota.py``).

So the sum of live holdings never exceeds the cap (``tests/unit/test_quotamath.py``).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Holding:
    """``n`` slots of the cap, held until ``until`` (wall-clock seconds) unless renewed."""

    n: int
    until: float


Record = dict[str, Holding]


def live(record: Record, now: float) -> Record:
    """The holdings still standing at wall time ``now`` (expired ones belong to nobody)."""
    return {k: h for k, h in record.items() if h.until >= now}


def room(record: Record, me: str, cap: int, now: float) -> int:
    """The most ``me`` may hold: the cap less what the other live servers hold."""
    others = sum(h.n for k, h in live(record, now).items() if k != me)
    return max(0, cap - others)


def grant(record: Record, me: str, cap: int, now: float, *, chunk: int, ceiling: int) -> int:
    """``me``'s new holding when it asks for more: up to ``chunk`` more, never past the room
    the others leave nor ``ceiling`` (its fair share while others want slots too), and never
    less than it holds (a grant only grows; shrinking is ``release_to``'s job)."""
    held = live(record, now).get(me)
    mine = held.n if held is not None else 0
    target = min(room(record, me, cap, now), mine + max(1, chunk), ceiling)
    return max(mine, target)


def fair_share(cap: int, holders: int) -> int:
    """Each server's share when ``holders`` servers want slots (at least one each, so a
    server with demand is never starved by rounding; the record still caps the sum)."""
    return max(1, cap // max(1, holders))


def keep_when_asked(allowed: int, used: int, fair: int, step: int) -> int:
    """What a server allows itself once another wants slots. A heavy user (``used`` at or
    past ``fair``) steps down by ``step`` towards its fair share - each further ask another
    step, so a peer that needs little takes little; a light one keeps what it used plus an
    eighth of a fair share of room and gives the rest back at once. Never more than it
    allowed itself before."""
    if used >= fair:
        return min(allowed, max(fair, allowed - max(1, step)))
    return min(allowed, used + max(1, math.ceil(fair / 8)))


def release_to(held: int, allowed: int, used: int) -> int:
    """What a server may write as its holding once it allows itself ``allowed`` and used
    ``used`` in the current window: never below ``used`` (those slots are spent), never
    above ``held`` (a release only shrinks)."""
    return min(held, max(allowed, used, 0))


def encode(record: Record) -> bytes:
    return json.dumps({k: [h.n, round(h.until, 3)] for k, h in record.items()}).encode()


def decode(data: bytes | None) -> Record:
    """A record from its stored form; an empty or foreign value reads as nobody holding."""
    if not data:
        return {}
    try:
        raw = json.loads(data)
        return {str(k): Holding(int(v[0]), float(v[1])) for k, v in raw.items()}
    except (ValueError, TypeError, IndexError, AttributeError):
        return {}
