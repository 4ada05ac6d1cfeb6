"""The dispatcher: drains the order queue into broker gateways inside every limit.

A gateway is one broker adapter. For REST brokers (unlimited sessions) the dispatcher picks,
among the accounts whose rate limits allow a request now, the one whose head request sorts
first, and sends it; several accounts proceed in parallel and each account keeps at most a few
requests in flight. A server-wide cap applies on top to every broker that counts toward it.

For session-limited gateways (``capacity == 1``, such as the legacy Kiwoom control) a
``SessionPolicy`` decides when to send, switch, prepare or activate sessions; see
``execution/scheduling.py`` (the policy) and ``execution/session_switch.py`` (the switch).

Limits are strict sliding windows (``execution/ratelimit.py``) with a small safety margin, so
no broker ever sees more than its published rate in any window.

Before sending, the dispatcher asks the send gate (``execution/gate.py``) whether the account
may send now; a held account's requests stay queued and ``held`` says why (paused server,
closed market for a real-money account, broker down). ``wake_all`` re-checks at once when a
hold clears.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from collections import defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from hoga.brokers.base import AccountRef, Broker, BrokerError, BrokerLimits
from hoga.domain.errors import StorageUnavailable
from hoga.execution import session_switch
from hoga.execution.gate import Hold
from hoga.execution.queue import Kind, OrderQueue, QueueItem
from hoga.execution.ratelimit import RateLimit, SlidingWindow, acquire_all, available_at
from hoga.execution.scheduling import Act, HogaSessionPolicy, SessionPolicy, SessionState

log = logging.getLogger(__name__)

Sender = Callable[[QueueItem], Awaitable[None]]
RefLookup = Callable[[int], Awaitable[AccountRef | None]]
HoldCheck = Callable[[AccountRef, Kind], Hold | None]


@dataclass
class _Gateway:
    name: str
    broker: Broker
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    task: asyncio.Task[None] | None = None
    session: SessionState | None = None
    policy: SessionPolicy | None = None
    sent: int = 0
    switches: int = 0
    aborted_switches: int = 0


class Dispatcher:
    """See the module docstring."""

    def __init__(
        self,
        queue: OrderQueue,
        send: Sender,
        ref_lookup: RefLookup,
        *,
        global_rate: float,
        margin: float = 0.02,
        max_inflight_per_account: int = 4,
        time_slice: float = 30.0,
        hold: HoldCheck | None = None,
    ) -> None:
        self.queue = queue
        self._send = send
        self._ref = ref_lookup
        self._hold = hold
        #: Accounts whose queued requests wait, and why (as of the dispatcher's last look).
        self.held: dict[int, Hold] = {}
        #: The server-wide cap. Cluster mode swaps in a share of the cluster's cap
        #: (``hoga.cluster.limits``) before ``start``.
        self.global_limit: RateLimit = SlidingWindow.per_second(global_rate, margin)
        self.margin = margin
        self.max_inflight = max_inflight_per_account
        self.time_slice = time_slice
        self._gateways: dict[str, _Gateway] = {}
        self._limits: dict[int, tuple[BrokerLimits, SlidingWindow]] = {}
        self._refs: dict[int, AccountRef] = {}
        self._inflight: dict[int, int] = defaultdict(int)
        #: (order id, kind) of requests taken from the queue and not yet finished. From the
        #: pop until the sender marks it in flight a request is in neither place; the queue
        #: resync asks here so it does not take such a request for lost.
        self.handed: set[tuple[int, Kind]] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._running = False
        queue.on_push(self.wake)

    # --- set-up

    def add_gateway(self, name: str, broker: Broker) -> None:
        self._gateways[name] = _Gateway(name=name, broker=broker)

    def wake(self, gateway: str) -> None:
        gw = self._gateways.get(gateway)
        if gw is not None:
            gw.wake.set()

    def wake_all(self) -> None:
        """Look at every gateway again now (a hold cleared)."""
        for gw in self._gateways.values():
            gw.wake.set()

    def _held(self, account_id: int, kind: Kind) -> Hold | None:
        """The gate's verdict for an account's next request (recorded in ``held``)."""
        ref = self._refs.get(account_id)
        hold = self._hold(ref, kind) if self._hold is not None and ref is not None else None
        if hold is None:
            self.held.pop(account_id, None)
        else:
            self.held[account_id] = hold
        return hold

    async def _account_limits(
        self, account_id: int, broker: Broker
    ) -> tuple[BrokerLimits, SlidingWindow] | None:
        cached = self._limits.get(account_id)
        if cached is None:
            ref = await self._ref(account_id)
            if ref is None:
                return None
            lim = broker.limits(ref)
            self._refs[account_id] = ref
            cached = self._limits[account_id] = (lim, self._window_for(lim))
        return cached

    def _window_for(self, lim: BrokerLimits) -> SlidingWindow:
        if lim.rate >= 1:
            return SlidingWindow(int(lim.rate), lim.window, self.margin)
        return SlidingWindow(1, lim.window / lim.rate, self.margin)

    def _limiters(self, lim: BrokerLimits, window: SlidingWindow) -> list[RateLimit]:
        return [window, self.global_limit] if lim.counts_toward_global else [window]

    async def start(self) -> None:
        self._running = True
        loop = asyncio.get_running_loop()
        for gw in self._gateways.values():
            gw.task = loop.create_task(self._run(gw), name=f"dispatch-{gw.name}")

    async def stop(self, grace: float = 5.0) -> None:
        self._running = False
        for gw in self._gateways.values():
            gw.wake.set()
            if gw.task is not None:
                gw.task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await gw.task
        if self._tasks:
            # Let in-flight requests finish (their outcome must be recorded), up to a bound.
            _, pending = await asyncio.wait(self._tasks, timeout=grace)
            for task in pending:
                task.cancel()

    # --- loops

    async def _run(self, gw: _Gateway) -> None:
        while self._running:
            try:
                lim = await self._gateway_limits(gw)
                if lim is not None and lim.capacity == 1:
                    await self._run_session(gw, lim)
                else:
                    await self._step_rest(gw)
            except asyncio.CancelledError:
                raise
            except StorageUnavailable as e:
                # Looking up an account's limits reads the database; wait for it to return.
                log.warning("dispatcher for %s: storage fault (%s); waiting", gw.name, e.code)
                await asyncio.sleep(1.0)
            except Exception:
                log.exception("dispatcher for %s failed; continuing", gw.name)
                await asyncio.sleep(0.5)

    async def _gateway_limits(self, gw: _Gateway) -> BrokerLimits | None:
        for account in self.queue.accounts(gw.name):
            got = await self._account_limits(account, gw.broker)
            if got is not None:
                return got[0]
        return None

    async def _wait(self, gw: _Gateway, until: float) -> None:
        loop = asyncio.get_running_loop()
        gw.wake.clear()
        timeout = None if math.isinf(until) else max(0.0, until - loop.time())
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(gw.wake.wait(), timeout)

    async def _step_rest(self, gw: _Gateway) -> None:
        loop = asyncio.get_running_loop()
        now = loop.time()
        best: tuple[QueueItem, list[RateLimit]] | None = None
        wake_at = math.inf
        for account in self.queue.accounts(gw.name):
            if self._inflight[account] >= self.max_inflight:
                continue
            got = await self._account_limits(account, gw.broker)
            if got is None:
                # The account is gone; its requests can never be sent.
                while (orphan := self.queue.pop(gw.name, account)) is not None:
                    log.warning("dropping queued %s for vanished account %s", orphan.kind, account)
                continue
            head = self.queue.peek(gw.name, account)
            if head is None:
                self.held.pop(account, None)
                continue
            hold = self._held(account, head.kind)
            if hold is not None:
                wake_at = min(wake_at, now + hold.recheck)
                continue
            limiters = self._limiters(*got)
            ready = available_at(limiters, now)
            if ready > now:
                wake_at = min(wake_at, ready)
                continue
            if best is None or head.key < best[0].key:
                best = (head, limiters)
        if best is None:
            await self._wait(gw, wake_at)
            return
        head, limiters = best
        item = self.queue.pop(gw.name, head.account_id)
        if item is None:
            return
        if not acquire_all(limiters, now):
            self.queue.requeue(item)
            return
        gw.sent += 1
        self._spawn(item)

    def _hand(self, item: QueueItem) -> None:
        self._inflight[item.account_id] += 1
        self.handed.add((item.order_id, item.kind))

    def _spawn(self, item: QueueItem) -> None:
        self._hand(item)
        task = asyncio.get_running_loop().create_task(self._send_one(item))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _send_one(self, item: QueueItem) -> None:
        try:
            await self._send(item)
        finally:
            self._inflight[item.account_id] -= 1
            self.handed.discard((item.order_id, item.kind))
            self.wake(item.gateway)

    async def _run_session(self, gw: _Gateway, lim: BrokerLimits) -> None:
        """Drive a capacity-1 gateway with the session policy until the loop is stopped."""
        loop = asyncio.get_running_loop()
        broker: Any = gw.broker
        if gw.policy is None:
            gw.policy = HogaSessionPolicy(
                self.queue,
                gw.name,
                time_slice=self.time_slice,
                preload=lim.can_preload,
                switch_cost=lim.switch_cost,
            )
            gw.session = SessionState()
        policy, s = gw.policy, gw.session
        assert s is not None
        # One control, one rate: the limit belongs to the session, whichever account it holds.
        window = self._window_for(lim)
        limiters: list[RateLimit] = (
            [window, self.global_limit] if lim.counts_toward_global else [window]
        )
        preparing: asyncio.Task[None] | None = None
        while self._running:
            now = loop.time()
            s.next_send_at = available_at(limiters, now)
            d = policy.decide(now, s)
            if d.act == Act.SEND:
                assert d.account is not None
                head = self.queue.peek(gw.name, d.account)
                await self._account_limits(d.account, gw.broker)
                hold = self._held(d.account, head.kind) if head is not None else None
                if hold is not None:
                    await self._wait(gw, now + hold.recheck)
                    continue
                item = policy.take(d.account)
                if item is None:
                    continue
                acquire_all(limiters, now)
                gw.sent += 1
                self._hand(item)
                await self._send_one(item)
            elif d.act == Act.SWITCH:
                assert d.account is not None
                ref = await self._ref(d.account)
                try:
                    switched = ref is None or await session_switch.switch(
                        broker, ref, self.queue, gw.name, gw.wake
                    )
                except BrokerError as e:
                    # The login failed (the gateway's own error): hold this account's requests
                    # back for a while so the others are served meanwhile, not starved by
                    # a login that keeps failing.
                    delay = getattr(e, "retry_after", None) or 5.0
                    log.warning("session switch to account %s failed (%s)", d.account, e.code)
                    while (item := self.queue.pop(gw.name, d.account)) is not None:
                        self.queue.defer(item, delay)
                    s.active = None
                    continue
                if not switched:
                    # Abandoned for an URGENT request elsewhere; the old session is gone too.
                    gw.aborted_switches += 1
                    s.active = None
                    continue
                gw.switches += 1
                s.active, s.active_since = d.account, loop.time()
            elif d.act == Act.PREPARE:
                assert d.account is not None
                if preparing is not None:
                    preparing.cancel()
                ref = await self._ref(d.account)
                s.standby, s.standby_ready_at = d.account, now + lim.switch_cost
                if ref is not None:
                    preparing = loop.create_task(session_switch.prepare(broker, ref, s, gw.wake))
            elif d.act == Act.ACTIVATE:
                assert d.account is not None
                ref = await self._ref(d.account)
                if ref is not None:
                    await broker.activate_session(ref)
                gw.switches += 1
                s.active, s.active_since = d.account, loop.time()
                s.standby = s.standby_ready_at = None
                preparing = None
            else:
                await self._wait(gw, d.until)

    # --- views

    def status(self) -> dict[str, Any]:
        now = asyncio.get_running_loop().time() if self._running else 0.0
        return {
            "global_rate_in_window": self.global_limit.in_window(now) if self._running else 0,
            "global_limit": {"limit": self.global_limit.limit, "window": self.global_limit.window},
            "gateways": {
                name: {
                    "queued": self.queue.size(name),
                    "sent": gw.sent,
                    "switches": gw.switches,
                    "aborted_switches": gw.aborted_switches,
                    "active_session": gw.session.active if gw.session else None,
                    "standby_session": gw.session.standby if gw.session else None,
                }
                for name, gw in self._gateways.items()
            },
            "in_flight": sum(self._inflight.values()),
            "held": {str(a): h.view() for a, h in sorted(self.held.items())},
        }

    def health(self) -> dict[str, Any]:
        """For readiness: down when not running or a gateway loop has died."""
        dead = [n for n, gw in self._gateways.items() if gw.task is None or gw.task.done()]
        status = "down" if not self._running or dead else "ok"
        return {
            "status": status,
            "dead_gateways": dead,
            "queued": self.queue.size(),
            "in_flight": sum(self._inflight.values()),
            "held_accounts": len(self.held),
        }

    def rates_for(self, account_id: int) -> tuple[float, bool] | None:
        """(requests per second, counts toward the global cap) for an account, if known."""
        got = self._limits.get(account_id)
        if got is None:
            return None
        lim, _ = got
        return lim.rate / lim.window if lim.window else lim.rate, lim.counts_toward_global

    def forget_account(self, account_id: int) -> None:
        self._limits.pop(account_id, None)
        self._refs.pop(account_id, None)
        self.held.pop(account_id, None)
