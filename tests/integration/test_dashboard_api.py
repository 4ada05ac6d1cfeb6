"""What the dashboard needs from the server besides the public API: the caller's fills, the
page itself with its security headers, its static modules and the vendored chart library
(SQLite and PostgreSQL)."""

from __future__ import annotations

import re
from pathlib import Path

from hoga.store.db import Actor
from hoga.store.repos import strategies as strategies_repo
from tests.helpers import running

STATIC = Path(__file__).resolve().parents[2] / "src" / "hoga" / "web" / "static"


async def test_fills_are_the_callers_own(tmp_path: Path, db_url: str) -> None:
    async with running(tmp_path, db_url) as h:
        alice = await h.user("alice", "basic")
        bob = await h.user("bob", "basic")
        h.pump(300)
        r = await h.post_order(alice, qty=4)
        assert r.status_code == 202, r.text
        order = await h.wait_status(alice, r.json()["id"], "FILLED")

        r = await h.http.get("/api/fills", params={"symbol": "005930"}, headers=alice)
        assert r.status_code == 200, r.text
        fills = r.json()["fills"]
        assert sum(f["qty"] for f in fills) == 4
        assert {f["order_id"] for f in fills} == {order["id"]}
        assert {f["side"] for f in fills} == {"buy"}
        assert all(f["price"] > 0 and f["ts"] for f in fills)
        assert sorted(f["price"] for f in fills) == sorted(f["price"] for f in order["fills"])

        # Another symbol: none. Another user: none, whatever the filter.
        r = await h.http.get("/api/fills", params={"symbol": "000660"}, headers=alice)
        assert r.json()["fills"] == []
        for params in ({}, {"symbol": "005930"}, {"order_id": order["id"]}):
            r = await h.http.get("/api/fills", params=params, headers=bob)
            assert r.status_code == 200, r.text
            assert r.json()["fills"] == []

        # Bad input is refused with a code; no token, no fills.
        r = await h.http.get("/api/fills", params={"symbol": "x; drop"}, headers=alice)
        assert r.status_code == 422
        assert r.json()["error"]["code"] == "fills.bad_symbol"
        r = await h.http.get("/api/fills", params={"limit": 0}, headers=alice)
        assert r.status_code == 422
        assert r.json()["error"]["code"] == "validation_error"
        r = await h.http.get("/api/fills")
        assert r.status_code == 401


async def test_dashboard_page_assets_and_chart_library(tmp_path: Path, sqlite_url: str) -> None:
    async with running(tmp_path, sqlite_url) as h:
        r = await h.http.get("/")
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/html")
        csp = r.headers["content-security-policy"]
        assert "default-src 'self'" in csp and "script-src 'self'" in csp
        assert "frame-ancestors 'none'" in csp
        assert r.headers["x-content-type-options"] == "nosniff"
        assert 'lang="ko"' in r.text
        assert '<script type="module" src="/static/js/main.js">' in r.text

        # Every module the entry point can reach is served as JavaScript.
        seen: set[str] = set()
        todo = ["js/main.js"]
        while todo:
            rel = todo.pop()
            if rel in seen:
                continue
            seen.add(rel)
            r = await h.http.get(f"/static/{rel}")
            assert r.status_code == 200, rel
            assert "javascript" in r.headers["content-type"], rel
            base = rel.rsplit("/", 1)[0]
            for spec in re.findall(r'from "(\.{1,2}/[^"]+)"', r.text):
                parts = [*base.split("/"), *spec.split("/")]
                out: list[str] = []
                for p in parts:
                    if p == "..":
                        out.pop()
                    elif p != ".":
                        out.append(p)
                todo.append("/".join(out))
        assert {"js/pages/trade.js", "js/pages/admin.js", "js/schema-form.js"} <= seen

        # The chart library is vendored with its licence and loaded by the chart module.
        vendor = STATIC / "vendor" / "lightweight-charts-5.3.0"
        assert (vendor / "LICENSE").is_file() and (vendor / "NOTICE").is_file()
        r = await h.http.get("/static/js/charts.js")
        assert "lightweight-charts-5.3.0/lightweight-charts.js" in r.text
        r = await h.http.get("/static/vendor/lightweight-charts-5.3.0/lightweight-charts.js")
        assert r.status_code == 200 and "javascript" in r.headers["content-type"]
        assert "createChart" in r.text


def test_dashboard_fetches_nothing_from_elsewhere() -> None:
    """No asset names a remote host: the page must work with the internet cut."""
    # The vendored library names three addresses it never fetches: the SVG namespace, its
    # licence URL (in the banner comment) and the link of its attribution logo, which the
    # dashboard switches off (``attributionLogo: false``; the library is named in text).
    vendored = {
        "http://www.w3.org",
        "https://www.apache.org",
        "https://www.tradingview.com",
    }
    offenders = []
    for path in STATIC.rglob("*"):
        if path.suffix not in (".html", ".js", ".css"):
            continue
        text = path.read_text(encoding="utf-8")
        for m in re.finditer(r"(?:https?:|wss?:)?//[a-z0-9.-]+\.[a-z]{2,}", text, re.I):
            if "vendor" in path.parts and m.group(0) in vendored:
                continue
            offenders.append(f"{path.name}: {m.group(0)}")
    assert offenders == []


async def test_admin_sees_every_users_strategy_errors(tmp_path: Path, db_url: str) -> None:
    async with running(tmp_path, db_url) as h:
        admin = await h.admin()
        alice = await h.user("alice", "basic")
        r = await h.http.post(
            "/api/strategies",
            json={"name": "추세", "kind": "sma_cross", "symbols": ["005930"], "params": {}},
            headers=alice,
        )
        assert r.status_code == 201, r.text
        sid = r.json()["id"]
        r = await h.http.get("/api/admin/strategy-errors", headers=admin)
        assert r.status_code == 200 and r.json() == {"errors": []}

        # A strategy that failed: its error is on record (as the runner writes it).
        uid = (await h.hoga.auth.find_user("alice")).id
        async with h.hoga.db.tx(Actor.user(uid)) as conn:
            await strategies_repo.update_row(
                conn,
                uid,
                sid,
                h.hoga.clock.now(),
                status="error",
                last_error="ZeroDivisionError in on_bar",
                error_at=h.hoga.clock.now(),
            )
        r = await h.http.get("/api/admin/strategy-errors", headers=admin)
        assert r.status_code == 200, r.text
        (err,) = r.json()["errors"]
        assert err["strategy_id"] == sid and err["username"] == "alice"
        assert err["status"] == "error" and err["message"] == "ZeroDivisionError in on_bar"

        # Admins only.
        r = await h.http.get("/api/admin/strategy-errors", headers=alice)
        assert r.status_code == 403
        assert r.json()["error"]["code"] == "auth.admin_only"
