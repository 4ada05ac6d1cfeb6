"""A simulated session-limited gateway: the legacy Kiwoom OpenAPI+ control's constraints.

The control holds one logged-in account at a time; switching to another account costs seconds,
and a session accepts about five orders a second. This stand-in enforces exactly that on top of
a paper book: an order for an account that is not the active session, or one beyond the rate,
is refused and counted as a violation (the dispatcher must never cause one). Where the real
gateway could prepare the next session in a second process, ``prepare_session`` does the slow
part in the background and ``activate_session`` is then instant.

Used by tests and the scheduler benchmark; it is not a way to trade.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import date

from hoga.brokers.base import (
    AccountRef,
    Balance,
    BrokerLimits,
    BrokerRejected,
    EventSink,
    FillReport,
    ModifyAck,
    ModifyRequest,
    OrderStatusReport,
    PlaceAck,
    PlaceRequest,
    PositionReport,
)
from hoga.brokers.paper import PaperBroker
from hoga.domain.ratelimit import SlidingWindow


class SessionLimitedBroker:
    """See the module docstring. ``clock`` is the event loop's clock unless given."""

    name = "simsession"

    def __init__(
        self,
        book: PaperBroker,
        *,
        switch_cost: float = 3.0,
        rate: float = 5.0,
        can_preload: bool = True,
    ) -> None:
        self._book = book
        self.switch_cost = switch_cost
        self.rate = rate
        self.can_preload = can_preload
        self.active: int | None = None
        self.prepared: int | None = None
        self._window = SlidingWindow.per_second(rate)
        self.switches = 0
        self.violations: list[str] = []
        self.sent: Counter[int] = Counter()
        self.session_log: list[tuple[float, str, int]] = []

    def limits(self, account: AccountRef) -> BrokerLimits:
        return BrokerLimits(
            rate=self.rate, capacity=1, switch_cost=self.switch_cost, can_preload=self.can_preload
        )

    def set_event_sink(self, sink: EventSink) -> None:
        self._book.set_event_sink(sink)

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        return None

    async def attach(self, account: AccountRef) -> None:
        await self._book.attach(account)

    async def detach(self, account_id: int) -> None:
        return None

    def _now(self) -> float:
        return asyncio.get_running_loop().time()

    # --- sessions

    async def switch_session(self, account: AccountRef) -> None:
        """Log out and log in as ``account`` (blocking, ``switch_cost`` seconds)."""
        self.active = None
        await asyncio.sleep(self.switch_cost)
        self.active = account.account_id
        self.switches += 1
        self.session_log.append((self._now(), "switch", account.account_id))

    async def prepare_session(self, account: AccountRef) -> None:
        if not self.can_preload:
            raise BrokerRejected("this gateway cannot prepare sessions", "simsession.no_preload")
        self.prepared = None
        await asyncio.sleep(self.switch_cost)
        self.prepared = account.account_id
        self.session_log.append((self._now(), "prepared", account.account_id))

    async def activate_session(self, account: AccountRef) -> None:
        if self.prepared != account.account_id:
            # Not prepared (or preparation abandoned): fall back to a full switch.
            await self.switch_session(account)
            return
        self.active, self.prepared = account.account_id, None
        self.switches += 1
        self.session_log.append((self._now(), "activate", account.account_id))

    # --- commands

    def _check(self, account: AccountRef, what: str) -> None:
        if account.account_id != self.active:
            self.violations.append(
                f"{what} for account {account.account_id} while {self.active} is active"
            )
            raise BrokerRejected("session not logged in to this account", "simsession.not_active")
        if not self._window.try_acquire(self._now()):
            self.violations.append(f"{what} over {self.rate}/s for account {account.account_id}")
            raise BrokerRejected("rate limit exceeded (-308 주문 과부하)", "simsession.rate")

    async def place(self, account: AccountRef, request: PlaceRequest) -> PlaceAck:
        self._check(account, "order")
        self.sent[account.account_id] += 1
        return await self._book.place(account, request)

    async def modify(self, account: AccountRef, request: ModifyRequest) -> ModifyAck:
        self._check(account, "modify")
        return await self._book.modify(account, request)

    async def cancel(
        self, account: AccountRef, broker_order_id: str, symbol: str, qty: int
    ) -> None:
        self._check(account, "cancel")
        await self._book.cancel(account, broker_order_id, symbol, qty)

    # --- reports come from the book (the real gateway answers them from any session)

    async def order_reports(self, account: AccountRef, day: date) -> list[OrderStatusReport]:
        return await self._book.order_reports(account, day)

    async def fill_reports(self, account: AccountRef, day: date) -> list[FillReport]:
        return await self._book.fill_reports(account, day)

    async def position_reports(self, account: AccountRef) -> list[PositionReport]:
        return await self._book.position_reports(account)

    async def balance(self, account: AccountRef) -> Balance:
        return await self._book.balance(account)

    async def test_connection(self, account: AccountRef) -> str:
        return "simulated session gateway"
