"""Prometheus metrics of one hoga server: the registry and the series code pushes into.

Most series are read from the running parts at scrape time (``ops/metrics.py``'s collector):
orders by state, queue depth, feed sessions, WebSocket clients... Only what happens and is
gone - a request's latency, a broker call's outcome, an order's wait in the queue - is pushed,
through the small hooks here. Each ``HogaApp`` has its own registry, so two servers in one test
process never mix their figures. Like ``logs.py`` this module imports nothing of hoga: any room
may record into it.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram

_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
_WAIT_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)


class Metrics:
    """The registry of one server and its pushed series (names are the exported ones)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.api_latency = Histogram(
            "hoga_api_request_seconds",
            "HTTP API latency by route template, method and status class",
            ["route", "method", "status"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.broker_requests = Counter(
            "hoga_broker_requests",
            "Broker calls by broker, call and outcome (ok, refused, busy, failed, auth)",
            ["broker", "call", "outcome"],
            registry=r,
        )
        self.broker_errors = Counter(
            "hoga_broker_errors",
            "Broker calls that did not succeed, by broker and error code",
            ["broker", "code"],
            registry=r,
        )
        self.dispatch_latency = Histogram(
            "hoga_dispatch_seconds",
            "Time a broker takes to answer an order command (place, modify, cancel)",
            ["broker", "call"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.queue_wait = Histogram(
            "hoga_queue_wait_seconds",
            "Time a request waited in the order queue before it was sent, by priority",
            ["priority", "kind"],
            buckets=_WAIT_BUCKETS,
            registry=r,
        )
        self.notifications = Counter(
            "hoga_notifications",
            "Notification deliveries by channel kind and result (sent, failed, dropped)",
            ["kind", "result"],
            registry=r,
        )
        self.backups = Counter(
            "hoga_backups",
            "Backups written by this server, by result (ok, failed)",
            ["result"],
            registry=r,
        )

    def broker_call(
        self, broker: str, call: str, outcome: str, code: str | None, seconds: float
    ) -> None:
        """A hook for ``BrokerHealth.on_call`` (see ``execution/health.py``)."""
        self.broker_requests.labels(broker, call, outcome).inc()
        if outcome != "ok":
            self.broker_errors.labels(broker, code or outcome).inc()
        if call in ("place", "modify", "cancel"):
            self.dispatch_latency.labels(broker, call).observe(seconds)
