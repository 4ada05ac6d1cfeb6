"""``/metrics``: the series read from a running server at scrape time.

``AppCollector`` reads the parts ``HogaApp`` built - the queue, the dispatcher's windows, the
hub, the event bus, the strategy runner, broker health - when Prometheus scrapes, so the order
path pays nothing for them. Orders by state come from the database: ``refresh()`` (async, run
by the endpoint before rendering) reads today's counts, and ``collect()`` (sync, as
prometheus_client wants) only reads what was gathered.

Exposed two ways (docs/operations.md, "Metrics, logs and alerts"): ``GET /metrics`` on the API
with an admin bearer token, and - when ``HOGA_METRICS_ADDRESS`` is set - a separate listener
without authentication for a Prometheus on loopback or a private network.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import Counter as Tally
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import func, select

from hoga.domain import krx
from hoga.store import tables as t
from hoga.store.db import SYSTEM

if TYPE_CHECKING:
    from hoga.app import HogaApp

log = logging.getLogger(__name__)

ORDER_STATES = (
    "DENIED",
    "QUEUED",
    "SUBMITTING",
    "ACCEPTED",
    "PARTIALLY_FILLED",
    "CANCEL_PENDING",
    "UNKNOWN",
    "FILLED",
    "CANCELLED",
    "REJECTED",
    "EXPIRED",
)
PRIORITIES = ("urgent", "vip", "normal")


class AppCollector(Collector):
    """See the module docstring."""

    def __init__(self, app: HogaApp) -> None:
        self.app = app
        self._orders: dict[str, int] = {}
        self._lock = asyncio.Lock()

    async def refresh(self) -> None:
        """Read what only the database knows (today's orders by state); a failure leaves the
        last figures (the scrape still answers, ``hoga_up`` says why not)."""
        async with self._lock:
            today = krx.trading_date(self.app.clock.now())
            try:
                async with self.app.db.tx(SYSTEM) as conn:
                    rows = (
                        await conn.execute(
                            select(t.orders.c.status, func.count())
                            .where(t.orders.c.trading_day == today)
                            .group_by(t.orders.c.status)
                        )
                    ).all()
            except Exception as e:
                log.warning("metrics: reading orders failed (%s)", type(e).__name__)
                return
            self._orders = {str(status): int(n) for status, n in rows}

    def collect(self) -> Iterator[Any]:
        app = self.app
        up = GaugeMetricFamily("hoga_up", "1 while the server is started", labels=[])
        up.add_metric([], 1.0 if app.started_at is not None else 0.0)
        yield up
        paused = GaugeMetricFamily("hoga_paused", "1 while the server is paused")
        paused.add_metric([], 1.0 if app.control.paused else 0.0)
        yield paused

        orders = GaugeMetricFamily(
            "hoga_orders", "Today's orders by state (KRX trading day)", labels=["state"]
        )
        for state in ORDER_STATES:
            orders.add_metric([state], float(self._orders.get(state, 0)))
        yield orders

        yield from self._queue()
        yield from self._limits()
        yield from self._feed()
        yield from self._clients()
        yield from self._strategies()
        yield from self._brokers()
        notifier = getattr(app, "notifier", None)
        if notifier is not None:
            q = GaugeMetricFamily("hoga_notification_queue", "Notifications waiting for delivery")
            q.add_metric([], float(notifier.pending()))
            yield q

    def _queue(self) -> Iterator[Any]:
        app = self.app
        now = app.clock.monotonic()
        depth: Tally[tuple[str, str, str]] = Tally()
        oldest: dict[str, float] = {}
        for item in app.queue.items():
            prio = item.priority.label
            depth[(item.gateway, prio, item.kind.value)] += 1
            oldest[prio] = max(oldest.get(prio, 0.0), now - item.enqueued_at)
        g = GaugeMetricFamily(
            "hoga_queue_depth",
            "Requests waiting in the order queue",
            labels=["gateway", "priority", "kind"],
        )
        for (gw, prio, kind), n in sorted(depth.items()):
            g.add_metric([gw, prio, kind], float(n))
        yield g
        w = GaugeMetricFamily(
            "hoga_queue_oldest_wait_seconds",
            "How long the oldest queued request of each priority has waited",
            labels=["priority"],
        )
        for prio in PRIORITIES:
            w.add_metric([prio], round(oldest.get(prio, 0.0), 3))
        yield w
        d = app.dispatcher.health()
        inflight = GaugeMetricFamily("hoga_dispatch_in_flight", "Broker commands awaiting answers")
        inflight.add_metric([], float(d["in_flight"]))
        yield inflight
        held = GaugeMetricFamily("hoga_dispatch_held_accounts", "Accounts whose sends are held")
        held.add_metric([], float(d["held_accounts"]))
        yield held

    def _limits(self) -> Iterator[Any]:
        disp = self.app.dispatcher
        try:
            now = asyncio.get_running_loop().time()
        except RuntimeError:
            return
        g = GaugeMetricFamily(
            "hoga_rate_limit_headroom",
            "Requests still allowed in the current window, per account key and the global cap",
            labels=["key"],
        )
        g.add_metric(["global"], float(disp.global_limit.limit - disp.global_limit.in_window(now)))
        for account_id, (_lim, window) in sorted(disp._limits.items()):
            g.add_metric([f"account:{account_id}"], float(window.limit - window.in_window(now)))
        yield g

    def _feed(self) -> Iterator[Any]:
        hub = self.app.hub
        h = hub.health()
        s = GaugeMetricFamily(
            "hoga_feed_sessions", "Open upstream market-data sessions", labels=["feed"]
        )
        s.add_metric([h["feed"]], float(len(h["sessions"])))
        yield s
        r = CounterMetricFamily("hoga_feed_reconnects", "Feed sessions reopened", labels=["feed"])
        r.add_metric([h["feed"]], float(h["reconnects"]))
        yield r
        ticks = CounterMetricFamily(
            "hoga_feed_ticks", "Ticks received from the feed", labels=["feed"]
        )
        ticks.add_metric([h["feed"]], float(hub.ticks))
        yield ticks
        w = GaugeMetricFamily("hoga_feed_symbols_wanted", "Symbols someone watches")
        w.add_metric([], float(h["symbols_wanted"]))
        yield w

    def _clients(self) -> Iterator[Any]:
        app = self.app
        g = GaugeMetricFamily("hoga_websocket_clients", "Open WebSocket clients", labels=["stream"])
        market = getattr(app.api.state, "ws_connections", None)
        g.add_metric(["market-data"], float(sum(market.count.values())) if market else 0.0)
        events = sum(len(subs) for uid, subs in app.bus._subs.items() if uid is not None)
        g.add_metric(["events"], float(events))
        yield g

    def _strategies(self) -> Iterator[Any]:
        status = self.app.live_strategies.status()
        c = CounterMetricFamily("hoga_strategy_errors", "Strategies stopped by an error")
        c.add_metric([], float(status.get("errors_since_start", 0)))
        yield c
        g = GaugeMetricFamily("hoga_strategies_running", "Strategy workers running")
        g.add_metric([], float(status.get("running", 0)))
        yield g

    def _brokers(self) -> Iterator[Any]:
        down: Tally[str] = Tally()
        for acct in self.app.health.accounts():
            if acct.status == "down":
                down[acct.broker] += 1
        g = GaugeMetricFamily(
            "hoga_broker_accounts_down", "Accounts whose broker is down", labels=["broker"]
        )
        for name in sorted(self.app.brokers):
            g.add_metric([name], float(down.get(name, 0)))
        yield g


async def render(app: HogaApp) -> tuple[bytes, str]:
    """The exposition text of ``app``'s registry (after refreshing database figures)."""
    collector: AppCollector = app.metrics_collector
    await collector.refresh()
    return generate_latest(app.metrics.registry), CONTENT_TYPE_LATEST


class MetricsListener:
    """The unauthenticated ``/metrics`` listener on ``HOGA_METRICS_ADDRESS`` (uvicorn on the
    server's own loop: the collector reads event-loop state, so no exporter thread)."""

    def __init__(self, app: HogaApp, address: str) -> None:
        self.app = app
        host, _, port = address.rpartition(":")
        self.host = host.strip("[]")
        self.port = int(port)
        self._server: Any = None
        self._task: asyncio.Task[None] | None = None
        self.bound_port: int | None = None

    async def start(self) -> None:
        import uvicorn
        from starlette.applications import Starlette
        from starlette.requests import Request
        from starlette.responses import Response
        from starlette.routing import Route

        from hoga.net import bind_listener

        async def metrics(_request: Request) -> Response:
            body, ctype = await render(self.app)
            return Response(body, media_type=ctype)

        api = Starlette(routes=[Route("/metrics", metrics)])
        try:
            sock = bind_listener(self.host, self.port)
        except OSError as e:
            from hoga.config import ConfigError

            raise ConfigError(
                f"HOGA_METRICS_ADDRESS {self.host}:{self.port}: cannot listen ({e.strerror})"
            ) from None
        self.bound_port = sock.getsockname()[1]
        self._server = uvicorn.Server(
            uvicorn.Config(api, lifespan="off", access_log=False, log_config=None)
        )
        self._server.install_signal_handlers = lambda: None
        self._task = asyncio.get_running_loop().create_task(
            self._server.serve(sockets=[sock]), name="metrics-listener"
        )
        while not self._server.started:
            await asyncio.sleep(0.01)
            if self._task.done():
                self._task.result()
        log.info("metrics on http://%s:%s/metrics (no auth)", self.host, self.bound_port)

    async def stop(self) -> None:
        if self._server is not None and self._task is not None:
            self._server.should_exit = True
            with contextlib.suppress(Exception):
                await self._task
        self._task = None
