"""One running strategy's in-memory parts, and the small rules the live driver's modules share.

A ``LiveRun`` is owned by the live driver (``live.py``) and worked by its worker
(``worker.py``): feed callbacks only append to its inbox (ticks conflated to the latest per
symbol) and wake the worker, so a slow strategy never slows the hub or anyone else.
"""

from __future__ import annotations

import asyncio
import json
from collections import deque
from datetime import date, datetime
from typing import Any

from hoga.domain.clock import KST
from hoga.domain.market import Tick
from hoga.domain.ratelimit import SlidingWindow
from hoga.marketdata.hub import Subscription as HubSubscription
from hoga.store.repos import strategies as repo
from hoga.strategies.base import Context, Strategy

_DAY = 86_400
_KST = 9 * 3600
#: The largest ``ctx.state`` a strategy may keep (serialised JSON).
MAX_STATE_BYTES = 64_000


class Failed(Exception):
    """A strategy hook (or its state) failed: the strategy stops alone, with this as its error."""

    def __init__(self, hook: str, exc: BaseException) -> None:
        super().__init__(hook)
        self.hook = hook
        self.exc = exc


class LiveRun:
    """A running strategy: its instance, context, inbox and worker."""

    def __init__(self, rec: repo.StrategyRecord, ctx: Context) -> None:
        self.rec = rec
        self.ctx = ctx
        self.strategy: Strategy[Any] | None = None
        self.inbox: deque[tuple[str, Any]] = deque()
        self.ticks: dict[str, Tick] = {}
        self.wake = asyncio.Event()
        self.task: asyncio.Task[None] | None = None
        self.sub: HubSubscription | None = None
        self.wants_ticks = False
        self.days: dict[str, int] = {}
        self.seen_fills: set[int] = set()
        self.cash_stale = True
        self.saved_state = ""
        self.saved_at = 0.0
        self.stop_mode: str | None = None
        self.log_window = SlidingWindow(20, 10.0)
        self.log_dropped = 0
        self.events = 0

    @property
    def id(self) -> int:
        return self.rec.id

    def push(self, kind: str, payload: Any) -> None:
        self.inbox.append((kind, payload))
        self.wake.set()

    def call(self, hook: str, *args: Any) -> None:
        """Call one of the strategy's hooks; what it raises becomes ``Failed``."""
        assert self.strategy is not None
        try:
            getattr(self.strategy, hook)(*args)
        except Exception as e:
            raise Failed(hook, e) from None


def day_key(ts: float) -> int:
    """The KRX (KST) day number of a POSIX time."""
    return int((ts + _KST) // _DAY)


def date_of(day: int) -> date:
    return datetime.fromtimestamp(day * _DAY - _KST + 1, KST).date()


def dump_state(state: dict[str, Any]) -> str:
    """``ctx.state`` as canonical JSON; a state that is not JSON-able fails the strategy."""
    try:
        return json.dumps(state, sort_keys=True, ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError) as e:
        raise Failed("state", ValueError(f"ctx.state must be JSON-able: {e}")) from None


def describe(hook: str, exc: BaseException) -> str:
    """The error a strategy is stopped with (stored and shown to its owner)."""
    text = str(exc).strip()
    where = f" in {hook}" if hook not in ("runner", "state") else ""
    return f"{type(exc).__name__}{where}: {text}"[:2000] if text else f"{type(exc).__name__}{where}"
