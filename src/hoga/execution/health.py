"""Broker health, derived from what actually happens: the outcomes of real calls.

Every call hoga makes to a broker (orders, cancels, reports, balances, connection tests) goes
through ``MonitoredBroker``, which classifies its outcome and records it per account in
``BrokerHealth``:

* ``ok`` - an answer; ``refused`` - a business refusal (the broker is up and said no);
  ``busy`` - throttled, not processed (up, just busy);
* ``failed`` - timeout, dropped or refused connection, 5xx, unreadable answer, outcome
  unknown; ``auth`` - credentials refused.

An account is **down** after ``down_after`` consecutive failures, or at once on an auth failure;
**degraded** when a failure is recent (``window`` seconds) or its realtime session (execution
notices) is expected but not connected; **ok** otherwise. A broker is down when every account
in use is down, degraded when any is not ok.

While an account is down because its broker does not answer (``unreachable``), the dispatcher
holds its orders (they wait, saying why, instead of piling up as ``UNKNOWN``), and ``probe``
asks the broker something harmless (the balance) with backoff until it answers again. An
account down because its credentials were refused (``auth``) is neither held nor probed:
waiting would not fix the credentials - its orders are refused at once with the broker's code
(not sent), and repeated sign-ins with bad credentials can get a key locked.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from hoga.brokers.base import (
    AccountRef,
    Broker,
    BrokerAuthError,
    BrokerNotProcessed,
    BrokerRejected,
)
from hoga.domain.clock import KST, Clock

log = logging.getLogger(__name__)

OK, DEGRADED, DOWN = "ok", "degraded", "down"
_RANK = {OK: 0, DEGRADED: 1, DOWN: 2}

#: Error codes that mean "could not reach the broker" whatever exception class carries them
#: (Kiwoom reports a connection that never opened as a rejection: nothing was sent).
_UNREACHABLE_SUFFIXES = (".unreachable", ".no_answer", ".pool_timeout")


class Outcome(StrEnum):
    OK = "ok"
    REFUSED = "refused"
    BUSY = "busy"
    FAILED = "failed"
    AUTH = "auth"


def classify(exc: BaseException | None) -> tuple[Outcome, str | None]:
    """The outcome of one broker call that returned (``None``) or raised ``exc``."""
    if exc is None:
        return Outcome.OK, None
    code = str(getattr(exc, "code", "") or type(exc).__name__)
    if isinstance(exc, BrokerAuthError):
        return Outcome.AUTH, code
    if code.endswith(_UNREACHABLE_SUFFIXES):
        return Outcome.FAILED, code
    if isinstance(exc, BrokerRejected):
        return Outcome.REFUSED, code
    if isinstance(exc, BrokerNotProcessed):
        return Outcome.BUSY, code
    if isinstance(exc, asyncio.CancelledError):
        # asyncio.wait_for cancels a call that ran out of time.
        return Outcome.FAILED, "timeout"
    return Outcome.FAILED, code


@dataclass
class _Account:
    broker: str
    recent: deque[tuple[float, Outcome, str | None]] = field(
        default_factory=lambda: deque(maxlen=20)
    )
    failures: int = 0
    auth_failed: bool = False
    down_since: float | None = None
    last_ok: float | None = None
    probe_at: float = 0.0
    probe_backoff: float = 0.0


UNREACHABLE, AUTH = "unreachable", "auth"


@dataclass(frozen=True, slots=True)
class AccountHealth:
    """One account's health as the dispatcher, the API and readiness see it. ``cause`` of a
    down account: ``unreachable`` (the broker does not answer) or ``auth`` (credentials
    refused)."""

    account_id: int
    broker: str
    status: str
    reason: str | None = None
    code: str | None = None
    since: float | None = None
    realtime: bool | None = None
    cause: str | None = None

    def view(self) -> dict[str, Any]:
        return {
            "account_id": self.account_id,
            "broker": self.broker,
            "status": self.status,
            "cause": self.cause,
            "code": self.code,
            "reason": self.reason,
            "since": _iso(self.since),
            "realtime": self.realtime,
        }


def _iso(ts: float | None) -> str | None:
    return None if ts is None else datetime.fromtimestamp(ts, KST).isoformat(timespec="seconds")


RealtimeState = Callable[[str, int], bool | None]


class BrokerHealth:
    """Per-account health from recorded outcomes (see the module docstring)."""

    def __init__(
        self,
        clock: Clock,
        *,
        down_after: int = 3,
        window: float = 120.0,
        probe_start: float = 2.0,
        probe_max: float = 60.0,
    ) -> None:
        self._clock = clock
        self.down_after = down_after
        self.window = window
        self.probe_start = probe_start
        self.probe_max = probe_max
        self._accounts: dict[int, _Account] = {}
        #: Realtime session state per (broker, account): True up, False down, None not used.
        self.realtime: RealtimeState = lambda broker, account_id: None
        #: Called with an account id when it comes back up (the dispatcher wakes).
        self.on_recovered: list[Callable[[int], None]] = []
        #: Called with (broker, account id, code) when an account goes down (alerts).
        self.on_down: list[Callable[[str, int, str | None], None]] = []
        #: Called after every monitored broker call with (broker, call, outcome, code,
        #: seconds) - the metrics hook; must not raise or block.
        self.on_call: list[Callable[[str, str, str, str | None, float], None]] = []

    def record(self, broker: str, account_id: int, outcome: Outcome, code: str | None) -> None:
        now = self._clock.time()
        a = self._accounts.get(account_id)
        if a is None:
            a = self._accounts[account_id] = _Account(broker)
        a.recent.append((now, outcome, code))
        if outcome in (Outcome.FAILED, Outcome.AUTH):
            a.failures += 1
            a.auth_failed = outcome == Outcome.AUTH
            if a.down_since is None and (a.auth_failed or a.failures >= self.down_after):
                a.down_since = now
                a.probe_backoff = self.probe_start
                a.probe_at = self._clock.monotonic() + a.probe_backoff
                log.warning(
                    "broker %s account %s is down (%s after %d failures)",
                    broker,
                    account_id,
                    code,
                    a.failures,
                )
                for down in self.on_down:
                    down(broker, account_id, code)
            return
        a.failures = 0
        a.auth_failed = False
        a.last_ok = now
        if a.down_since is not None:
            a.down_since = None
            log.info("broker %s account %s answers again", broker, account_id)
            for fn in self.on_recovered:
                fn(account_id)

    def forget(self, account_id: int) -> None:
        self._accounts.pop(account_id, None)

    def is_down(self, account_id: int) -> bool:
        a = self._accounts.get(account_id)
        return a is not None and a.down_since is not None

    def is_unreachable(self, account_id: int) -> bool:
        """Down because the broker does not answer (not because of refused credentials)."""
        a = self._accounts.get(account_id)
        return a is not None and a.down_since is not None and not a.auth_failed

    def account(self, account_id: int, broker: str | None = None) -> AccountHealth:
        a = self._accounts.get(account_id)
        name = a.broker if a is not None else (broker or "?")
        rt = self.realtime(name, account_id)
        if a is None:
            status = DEGRADED if rt is False else OK
            reason = (
                "실시간 체결통보 연결 끊김 (execution notices disconnected)"
                if rt is False
                else None
            )
            return AccountHealth(account_id, name, status, reason, realtime=rt)
        last_failure = next((r for r in reversed(a.recent) if r[1] in _BAD), None)
        if a.down_since is not None:
            what = (
                "인증 실패 (credentials refused)" if a.auth_failed else "응답 없음 (not answering)"
            )
            code = last_failure[2] if last_failure else None
            return AccountHealth(
                account_id,
                name,
                DOWN,
                f"{name} {what}: {code}; {a.failures}회 연속 실패 ({a.failures} failures in a row)",
                code,
                a.down_since,
                rt,
                AUTH if a.auth_failed else UNREACHABLE,
            )
        now = self._clock.time()
        if last_failure is not None and now - last_failure[0] <= self.window:
            return AccountHealth(
                account_id,
                name,
                DEGRADED,
                f"최근 오류 (recent error): {last_failure[2]}",
                last_failure[2],
                last_failure[0],
                rt,
            )
        if rt is False:
            return AccountHealth(
                account_id,
                name,
                DEGRADED,
                "실시간 체결통보 연결 끊김 (execution notices disconnected)",
                "broker.realtime_down",
                None,
                rt,
            )
        return AccountHealth(account_id, name, OK, realtime=rt)

    def accounts(self) -> list[AccountHealth]:
        return [self.account(i) for i in sorted(self._accounts)]

    def brokers(self, names: Iterable[str]) -> dict[str, dict[str, Any]]:
        """Per broker: status and how many of its accounts are in each state."""
        out: dict[str, dict[str, Any]] = {}
        by_broker: dict[str, list[AccountHealth]] = {n: [] for n in names}
        for h in self.accounts():
            by_broker.setdefault(h.broker, []).append(h)
        for name, items in by_broker.items():
            counts = {OK: 0, DEGRADED: 0, DOWN: 0}
            for h in items:
                counts[h.status] += 1
            if not items:
                status = OK
            elif counts[DOWN] == len(items):
                status = DOWN
            elif counts[OK] == len(items):
                status = OK
            else:
                status = DEGRADED
            out[name] = {"status": status, "accounts": counts}
        return out

    # --- probing down accounts

    def due_probes(self) -> list[tuple[str, int]]:
        """Unreachable accounts whose next probe is due (and schedule the one after, with
        backoff). Accounts with refused credentials are not probed."""
        now = self._clock.monotonic()
        due = []
        for account_id, a in self._accounts.items():
            if a.down_since is not None and not a.auth_failed and now >= a.probe_at:
                a.probe_backoff = min(self.probe_max, max(self.probe_start, a.probe_backoff * 2))
                a.probe_at = now + a.probe_backoff
                due.append((a.broker, account_id))
        return due


_BAD = (Outcome.FAILED, Outcome.AUTH)


class MonitoredBroker:
    """A ``Broker`` that records the outcome of every call in ``BrokerHealth``.

    Everything else (attributes the app or tests use, session-switching methods) passes
    through to the wrapped adapter unchanged."""

    _CALLS = frozenset(
        {
            "place",
            "modify",
            "cancel",
            "order_reports",
            "fill_reports",
            "position_reports",
            "balance",
            "test_connection",
        }
    )

    def __init__(self, inner: Broker, health: BrokerHealth) -> None:
        self.inner = inner
        self.name = inner.name
        self._health = health

    def __getattr__(self, attr: str) -> Any:
        value = getattr(self.inner, attr)
        if attr not in self._CALLS:
            return value
        return self._monitored(value)

    def _monitored(self, fn: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
        call_name = getattr(fn, "__name__", "call")

        async def call(account: AccountRef, *args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                result = await fn(account, *args, **kwargs)
            except BaseException as e:
                outcome, code = classify(e)
                self._health.record(self.name, account.account_id, outcome, code)
                self._observe(call_name, outcome, code, started)
                raise
            self._health.record(self.name, account.account_id, Outcome.OK, None)
            self._observe(call_name, Outcome.OK, None, started)
            return result

        return call

    def _observe(self, call: str, outcome: Outcome, code: str | None, started: float) -> None:
        seconds = time.perf_counter() - started
        for fn in self._health.on_call:
            fn(self.name, call, outcome.value, code, seconds)


async def probe(
    health: BrokerHealth,
    brokers: dict[str, Any],
    ref_for: Callable[[int], Awaitable[AccountRef | None]],
    *,
    within: float = 10.0,
) -> int:
    """Ask every down account whose probe is due for its balance; returns how many were asked.

    The answer (or failure) is recorded by ``MonitoredBroker``; an answer brings the account
    back up and wakes its orders."""
    n = 0
    for name, account_id in health.due_probes():
        broker = brokers.get(name)
        ref = await ref_for(account_id)
        if broker is None or ref is None:
            health.forget(account_id)
            continue
        n += 1
        try:
            await asyncio.wait_for(broker.balance(ref), within)
        except Exception as e:
            log.debug("probe of account %s failed: %s", account_id, type(e).__name__)
    return n
