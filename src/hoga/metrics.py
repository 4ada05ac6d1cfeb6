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
        self.api_latency = self._histogram(
            "hoga_api_request_seconds",
            "HTTP API latency by route template, method and status class",
            _LATENCY_BUCKETS,
            "route", "method", "status",
        )  # fmt: skip
        self.broker_requests = self._counter(
            "hoga_broker_requests",
            "Broker calls by broker, call and outcome (ok, refused, busy, failed, auth)",
            "broker", "call", "outcome",
        )  # fmt: skip
        self.broker_errors = self._counter(
            "hoga_broker_errors",
            "Broker calls that did not succeed, by broker and error code",
            "broker", "code",
        )  # fmt: skip
        self.dispatch_latency = self._histogram(
            "hoga_dispatch_seconds",
            "Time a broker takes to answer an order command (place, modify, cancel)",
            _LATENCY_BUCKETS,
            "broker", "call",
        )  # fmt: skip
        self.queue_wait = self._histogram(
            "hoga_queue_wait_seconds",
            "Time a request waited in the order queue before it was sent, by priority",
            _WAIT_BUCKETS,
            "priority", "kind",
        )  # fmt: skip
        self.notifications = self._counter(
            "hoga_notifications",
            "Notification deliveries by channel kind and result (sent, failed, dropped)",
            "kind", "result",
        )  # fmt: skip
        self.backups = self._counter(
            "hoga_backups", "Backups written by this server, by result (ok, failed)", "result"
        )

    def _counter(self, name: str, doc: str, *labels: str) -> Counter:
        return Counter(name, doc, list(labels), registry=self.registry)

    def _histogram(
        self, name: str, doc: str, buckets: tuple[float, ...], *labels: str
    ) -> Histogram:
        return Histogram(name, doc, list(labels), buckets=buckets, registry=self.registry)

    def broker_call(
        self, broker: str, call: str, outcome: str, code: str | None, seconds: float
    ) -> None:
        """A hook for ``BrokerHealth.on_call`` (see ``execution/health.py``)."""
        self.broker_requests.labels(broker, call, outcome).inc()
        if outcome != "ok":
            self.broker_errors.labels(broker, code or outcome).inc()
        if call in ("place", "modify", "cancel"):
            self.dispatch_latency.labels(broker, call).observe(seconds)
