"""/metrics: admin-only on the API, open on HOGA_METRICS_ADDRESS; scraped and parsed as Prometheus
text; request ids in and out and on every log line of a request."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from hoga import logs
from tests.helpers import eventually, running

SERIES = {
    "hoga_up",
    "hoga_paused",
    "hoga_orders",
    "hoga_queue_depth",
    "hoga_queue_oldest_wait_seconds",
    "hoga_queue_wait_seconds",
    "hoga_dispatch_seconds",
    "hoga_dispatch_in_flight",
    "hoga_broker_requests",
    "hoga_broker_errors",
    "hoga_broker_accounts_down",
    "hoga_rate_limit_headroom",
    "hoga_feed_sessions",
    "hoga_feed_reconnects",
    "hoga_feed_ticks",
    "hoga_websocket_clients",
    "hoga_api_request_seconds",
    "hoga_strategy_errors",
    "hoga_notifications",
    "hoga_backups",
}


def _parse(text: str) -> dict[str, Any]:
    return {f.name: f for f in text_string_to_metric_families(text)}


def _value(families: dict[str, Any], name: str, sample: str, **labels: str) -> float:
    total = 0.0
    for s in families[name].samples:
        if s.name == sample and all(s.labels.get(k) == v for k, v in labels.items()):
            total += s.value
    return total


async def test_metrics_need_an_admin_and_expose_the_series(tmp_path: Path) -> None:
    async with running(tmp_path, f"sqlite+aiosqlite:///{tmp_path / 'hoga.db'}") as h:
        assert (await h.http.get("/metrics")).status_code == 401
        alice = await h.user("alice", "basic")
        assert (await h.http.get("/metrics", headers=alice)).status_code == 403
        admin = await h.admin()
        h.pump(300)
        r = await h.post_order(alice, qty=3)
        assert r.status_code == 202, r.text
        order_id = r.json()["id"]
        await h.wait_status(alice, order_id, "FILLED")
        # A refused order and a resting limit order below the market show by state too.
        r = await h.post_order(alice, type="limit", qty=1, price=50_000)
        assert r.status_code == 422, r.text
        r = await h.post_order(alice, type="limit", qty=1, price=60_000)
        assert r.status_code == 202, r.text
        await h.wait_status(alice, r.json()["id"], "ACCEPTED")

        # Someone watches a symbol: the hub opens a feed session and counts its ticks.
        sub = h.hoga.hub.subscribe(["005930"], lambda _tick: None, owner="test")

        async def session_open() -> bool:
            h.pump(20)
            return h.hoga.hub.ticks > 0

        await eventually(session_open, what="a feed session with ticks")
        r = await h.http.get("/metrics", headers=admin)
        sub.close()
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/plain")
        fams = _parse(r.text)
        missing = SERIES - set(fams)
        assert not missing, missing
        assert _value(fams, "hoga_up", "hoga_up") == 1
        assert _value(fams, "hoga_orders", "hoga_orders", state="FILLED") == 1
        assert _value(fams, "hoga_orders", "hoga_orders", state="ACCEPTED") == 1
        assert _value(fams, "hoga_orders", "hoga_orders", state="DENIED") == 1
        assert (
            _value(
                fams,
                "hoga_broker_requests",
                "hoga_broker_requests_total",
                broker="paper",
                call="place",
                outcome="ok",
            )
            == 2
        )
        assert (
            _value(fams, "hoga_dispatch_seconds", "hoga_dispatch_seconds_count", call="place") == 2
        )
        assert (
            _value(
                fams, "hoga_queue_wait_seconds", "hoga_queue_wait_seconds_count", priority="normal"
            )
            == 2
        )
        # API latency is labelled by route template, never by the raw path.
        routes = {s.labels["route"] for s in fams["hoga_api_request_seconds"].samples}
        assert "/api/orders/{order_id}" in routes
        assert not any(str(order_id) in route for route in routes)
        assert _value(fams, "hoga_feed_sessions", "hoga_feed_sessions") >= 1
        assert _value(fams, "hoga_feed_ticks", "hoga_feed_ticks_total") > 0
        assert (
            _value(fams, "hoga_rate_limit_headroom", "hoga_rate_limit_headroom", key="global") > 0
        )


async def test_separate_listener_serves_metrics_without_auth(tmp_path: Path) -> None:
    async with running(
        tmp_path, f"sqlite+aiosqlite:///{tmp_path / 'hoga.db'}", metrics_address="127.0.0.1:0"
    ) as h:
        listener = h.hoga.metrics_listener
        assert listener is not None and listener.bound_port
        async with httpx.AsyncClient() as client:
            r = await client.get(f"http://127.0.0.1:{listener.bound_port}/metrics")
        assert r.status_code == 200
        fams = _parse(r.text)
        assert _value(fams, "hoga_up", "hoga_up") == 1
        # The API's own /metrics still wants an admin.
        assert (await h.http.get("/metrics")).status_code == 401


@pytest.fixture
def json_logs() -> Iterator[io.StringIO]:
    root = logging.getLogger()
    level, handlers = root.level, list(root.handlers)
    out = io.StringIO()
    logs.configure("info", fmt="json", stream=out)
    yield out
    for h in list(root.handlers):
        if h not in handlers:
            root.removeHandler(h)
            h.close()
    root.setLevel(level)


async def test_request_id_in_and_out_and_on_every_line(
    tmp_path: Path, json_logs: io.StringIO
) -> None:
    async with running(tmp_path, f"sqlite+aiosqlite:///{tmp_path / 'hoga.db'}") as h:

        async def noisy() -> dict[str, str]:
            log = logging.getLogger("hoga.test.request")
            log.info("first line")
            log.warning("second line")
            return {"ok": "yes"}

        h.hoga.api.add_api_route("/api/test-noisy", noisy)
        r = await h.http.get("/api/test-noisy", headers={"X-Request-ID": "abc-123.x:y"})
        assert r.status_code == 200 and r.headers["x-request-id"] == "abc-123.x:y"
        lines = [json.loads(x) for x in json_logs.getvalue().splitlines() if "line" in x]
        assert [(x["msg"], x.get("request_id")) for x in lines[-2:]] == [
            ("first line", "abc-123.x:y"),
            ("second line", "abc-123.x:y"),
        ]
        # Unsafe or overlong ids are replaced, never echoed or logged.
        for bad in (b"x" * 65, "evil\u00e9id".encode("latin-1"), b"a b<script>", b""):
            r = await h.http.get("/api/test-noisy", headers={"X-Request-ID": bad})
            rid = r.headers["x-request-id"]
            assert rid.encode() != bad and len(rid) == 32
        r = await h.http.get("/health")
        assert len(r.headers["x-request-id"]) == 32
        assert "evil" not in json_logs.getvalue()


def test_grafana_dashboard_uses_only_exported_series() -> None:
    import re

    doc = json.loads((Path(__file__).parents[2] / "deploy" / "grafana-dashboard.json").read_text())
    exprs = [t["expr"] for p in doc["panels"] for t in p["targets"]]
    used = {m for e in exprs for m in re.findall(r"\bhoga_[a-z_]+", e)}
    exported = SERIES | {
        "hoga_strategies_running",
        "hoga_notification_queue",
        "hoga_feed_symbols_wanted",
    }
    suffixes = ("_total", "_bucket", "_count", "_sum")
    base = {next((u[: -len(s)] for s in suffixes if u.endswith(s)), u) for u in used}
    assert base <= exported, base - exported
    assert SERIES - {"hoga_dispatch_in_flight"} <= base, SERIES - base
