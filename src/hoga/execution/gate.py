"""The send gate: whether the dispatcher may send an account's next request now, and if not,
why - the reason ``/api/queue-status`` and the order itself show while the order waits.

Checked per account, at the moment of sending (not only when the order was accepted), in this
order:

1. ``server.lock_lost`` - this server lost its one-server lock (see ``store/instance_lock``);
   another may be running, so nothing goes out until the lock is back.
2. ``server.paused`` - an admin paused the server (``hoga serve --paused``, ``hoga pause``,
   ``POST /api/admin/pause``, or a restore wrote the paused state).
3. ``market.closed`` - orders (not cancels) for an account whose market is closed. **Real-money
   accounts (KIS or Kiwoom, env ``real``) always follow the KRX calendar**, whatever
   ``HOGA_MARKET_MODE`` says: demo mode (always open) is for the simulated market and paper or
   mock accounts only. An account whose broker address is a loopback address (the local
   ``hoga fake-broker`` sandbox) reaches no exchange and counts as a sandbox, not real money.
4. ``broker.down`` - the account's broker stopped answering (``execution/health``). Refused
   credentials are not held: such orders go to the adapter, which refuses them unsent with
   the broker's code.

``TradingHours`` is also what the risk gate asks, per account, whether the market is open.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

from hoga.brokers.base import AccountRef
from hoga.domain import krx
from hoga.domain.clock import KST, Clock
from hoga.domain.orders import OrderIntent
from hoga.execution import risk
from hoga.execution.health import DOWN, UNREACHABLE, BrokerHealth
from hoga.execution.queue import Kind

REAL_BROKERS = frozenset({"kis", "kiwoom", "kiwoom_openapi"})


def _loopback(url: str) -> bool:
    host = (urlsplit(url).hostname or "").lower()
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a name: it may well be the broker's


def real_money(broker: str, env: str, base_url: str | None = None) -> bool:
    """An account whose orders reach a real exchange with real money: a KIS or Kiwoom account
    in the ``real`` environment, unless its server is on this machine (a sandbox)."""
    if broker not in REAL_BROKERS or env != "real":
        return False
    return base_url is None or not _loopback(base_url)


class TradingHours:
    """Whether the market is open for an account now (see the module docstring).

    On the calendar (real money always; every account with ``calendar=True``, i.e.
    ``HOGA_MARKET_MODE=calendar``) the market is open while any KRX or Nextrade session takes
    orders - auctions and off-hours sessions included; ``session_for`` then says which session
    takes a given order (the risk gate refuses types the session does not take). In demo mode
    the server's own answer governs and everything trades as the continuous session.
    """

    def __init__(
        self, clock: Clock, server_open: Callable[[], bool], *, calendar: bool = False
    ) -> None:
        self._clock = clock
        self._server_open = server_open
        self.calendar = calendar

    def calendar_open(self) -> bool:
        """KRX's regular continuous session (the same rule as ``HOGA_MARKET_MODE=calendar``)."""
        return krx.session_phase(self._clock.now()) == krx.Phase.CONTINUOUS

    def _on_calendar(self, broker: str, env: str, base_url: str | None) -> bool:
        return self.calendar or real_money(broker, env, base_url)

    def open_for(self, broker: str, env: str, base_url: str | None = None) -> bool:
        if self._on_calendar(broker, env, base_url):
            return bool(krx.sessions_at(self._clock.now(), "SOR"))
        return self._server_open()

    def session_for(
        self, broker: str, env: str, base_url: str | None, intent: OrderIntent
    ) -> str | None:
        """The session that takes ``intent`` now for such an account (None: none does)."""
        if self._on_calendar(broker, env, base_url):
            return risk.order_session(intent, self._clock.now(), calendar=True)
        if not self._server_open():
            return None
        return risk.order_session(intent, self._clock.now(), calendar=False)


@dataclass(frozen=True, slots=True)
class Hold:
    """Why an account's requests wait. ``recheck``: seconds until the dispatcher looks again
    (it is also woken when a hold clears: resume, a broker answering again)."""

    code: str
    message: str
    since: float | None = None
    recheck: float = 5.0

    def view(self) -> dict[str, Any]:
        since = (
            None
            if self.since is None
            else datetime.fromtimestamp(self.since, KST).isoformat(timespec="seconds")
        )
        return {"code": self.code, "message": self.message, "since": since}


@dataclass(frozen=True, slots=True)
class Pause:
    """The server is paused: by whom, why, since when (wall-clock seconds)."""

    reason: str
    by: str
    since: float


class SendGate:
    """Decides, per account, whether a request may go to the broker now."""

    def __init__(self, clock: Clock, hours: TradingHours, health: BrokerHealth) -> None:
        self._clock = clock
        self.hours = hours
        self.health = health
        self.pause: Pause | None = None
        self.lock_lost_since: float | None = None

    def server_hold(self) -> Hold | None:
        """A hold on every account (lost lock, pause), or None."""
        if self.lock_lost_since is not None:
            return Hold(
                "server.lock_lost",
                "서버 잠금을 잃었습니다: 다른 서버가 같은 데이터베이스를 쓰고 있을 수 있어 주문을 "
                "보내지 않습니다 (this server lost its one-server lock; orders wait)",
                self.lock_lost_since,
            )
        if self.pause is not None:
            return Hold(
                "server.paused",
                f"서버가 일시정지되었습니다 ({self.pause.reason}): 관리자가 재개하면 보냅니다 "
                "(server paused: orders wait until an admin resumes)",
                self.pause.since,
            )
        return None

    def hold_for(self, ref: AccountRef, kind: Kind = Kind.PLACE) -> Hold | None:
        hold = self.server_hold()
        if hold is not None:
            return hold
        if kind == Kind.PLACE and not self.hours.open_for(ref.broker, ref.env, ref.base_url):
            what = "실전 계좌 주문은 " if real_money(ref.broker, ref.env, ref.base_url) else ""
            return Hold(
                "market.closed",
                f"장 운영시간이 아닙니다: {what}장이 열리면 보냅니다 "
                "(KRX is closed: the order goes out when the market opens)",
                recheck=15.0,
            )
        h = self.health.account(ref.account_id, ref.broker)
        if h.status == DOWN and h.cause == UNREACHABLE:
            return Hold(
                "broker.down",
                f"{h.reason}: 응답하면 보냅니다 (broker down: the order goes out when it answers)",
                h.since,
                recheck=2.0,
            )
        return None
