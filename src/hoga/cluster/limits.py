"""The limits a server keeps, made to hold across the servers of a cluster (docs/scaling.md,
"Limits across instances").

=========================  ==================================================================
limit                      in cluster mode
=========================  ==================================================================
global order cap           ``SharedQuota`` "orders": each server holds part of the cap in a
                           NATS key-value record and checks sends against it in memory
per-user API budget        ``SharedQuota`` "api-<user>" per user, the same way
login throttle             ``ReplicatedThrottle``: every server applies every failure
token revocation           the database (``auth_changes``) is the record, polled every 0.25 s;
                           a nudge on ``hoga.control.auth`` makes peers read it at once
kill switch (pause)        the database (``server.paused``) is the record, polled every 2 s;
                           a nudge on ``hoga.control.pause`` makes peers read it at once
=========================  ==================================================================

``start_cluster_limits(app)`` swaps the cluster versions in behind the seams (the
dispatcher's ``global_limit``, the API's ``api_budget``, ``AuthService.throttle``) and hooks
the nudges up; a server without ``HOGA_CLUSTER_NATS_URL`` never calls it and keeps its
in-memory limits.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from hoga.api.deps import ApiBudget, budget_exceeded
from hoga.cluster.bus import ClusterBus
from hoga.cluster.quota import QuotaLedger
from hoga.cluster.throttle import ReplicatedThrottle
from hoga.security.throttle import LoginThrottle

if TYPE_CHECKING:
    from hoga.app import HogaApp

log = logging.getLogger(__name__)

API_WINDOW = 60.0


class SharedApiBudget:
    """The per-user API budget (``api.deps.Budget``) counted across the cluster: one shared
    quota per user. A server's first call for a user, and a call that finds its share spent,
    cost one key-value round trip; the others none.

    While this server cannot reach NATS it counts alone (an ``ApiBudget`` of its own): the
    budget is an abuse guard, and refusing every request during an outage would turn a NATS
    fault into an API outage. The cluster then allows up to one budget per server."""

    def __init__(self, ledger: QuotaLedger) -> None:
        self._ledger = ledger
        self._alone = ApiBudget()

    async def check(self, user_id: int, per_minute: int, now: float) -> None:
        per_minute = max(1, per_minute)
        if not self._ledger.bus.connected:
            await self._alone.check(user_id, per_minute, now)
            return
        quota = self._ledger.quota(f"api-{user_id}", per_minute, API_WINDOW)
        try:
            wait = await quota.acquire(now)
        except Exception as e:  # NATS went away during the call
            log.warning("API budget counted locally: %s", type(e).__name__)
            await self._alone.check(user_id, per_minute, now)
            return
        if wait > 0:
            raise budget_exceeded(per_minute, wait)


class ControlSignals:
    """Nudges between servers for state whose record is the database.

    ``nudge(name)`` publishes on ``hoga.control.<name>``; ``on(name, callback)`` runs the
    callback when another server nudges. A lost nudge costs only time: every listener also
    re-reads the database on its own schedule."""

    def __init__(self, bus: ClusterBus) -> None:
        self._bus = bus
        self._tasks: set[asyncio.Task[None]] = set()

    async def on(self, name: str, callback: Callable[[], Awaitable[None]]) -> None:
        me = self._bus.instance_id.encode()

        async def heard(_subject: str, data: bytes) -> None:
            if data != me:  # our own change is applied where it was made
                await callback()

        await self._bus.subscribe(self._bus.subject("control", name), heard)

    def nudge(self, name: str) -> None:
        task = asyncio.get_running_loop().create_task(self._send(name))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _send(self, name: str) -> None:
        try:
            await self._bus.publish(
                self._bus.subject("control", name), self._bus.instance_id.encode()
            )
        except Exception as e:
            log.warning("cluster nudge %s not sent (%s); peers poll", name, type(e).__name__)


class ClusterLimits:
    """What ``start_cluster_limits`` made, for ``stop`` and the status pages."""

    def __init__(self, bus: ClusterBus, ledger: QuotaLedger, signals: ControlSignals) -> None:
        self.bus = bus
        self.ledger = ledger
        self.signals = signals

    async def stop(self) -> None:
        """Hand the quota shares back (the bus is the cluster node's: it closes it)."""
        with contextlib.suppress(Exception):
            await self.ledger.stop()


async def start_cluster_limits(app: HogaApp) -> ClusterLimits:
    """Put the cluster's limits behind the server's seams. Call before the dispatcher and
    the API start. Uses the process's one NATS connection, the cluster node's
    (``app.cluster.bus``, connected by its guard)."""
    s = app.settings
    if app.cluster is None:
        raise RuntimeError("cluster limits need cluster mode (HOGA_CLUSTER_NATS_URL)")
    bus = app.cluster.bus
    ledger = QuotaLedger(bus, app.clock, ttl=s.cluster_lease_ttl)
    await ledger.start()
    # The global order cap: the same cap and window (with its margin) as the single server's.
    local = app.dispatcher.global_limit
    app.dispatcher.global_limit = ledger.quota("orders", local.limit, local.window)
    ledger.on_grant.append(app.dispatcher.wake_all)
    app.api.state.api_budget = SharedApiBudget(ledger)
    if isinstance(app.auth.throttle, LoginThrottle):
        throttle = ReplicatedThrottle(app.auth.throttle, bus)
        await throttle.start()
        app.auth.throttle = throttle
    signals = ControlSignals(bus)
    app.control.on_change_written.append(lambda: signals.nudge("pause"))
    await signals.on("pause", app.control.poll)
    app.auth.on_change_written.append(lambda: signals.nudge("auth"))

    async def auth_changed() -> None:
        app.auth_watch.wake()

    await signals.on("auth", auth_changed)
    log.info("cluster limits: shared order cap %d per %.2fs", local.limit, local.window)
    return ClusterLimits(bus, ledger, signals)
