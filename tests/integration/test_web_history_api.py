"""The dashboard's own endpoints (web branch): the watchlist, trade history with filters,
paging and CSV export, daily profit, error messages in the caller's language, the TOTP QR
image, and static files compressed and cached (SQLite and PostgreSQL where data is stored)."""

from __future__ import annotations

import base64
import csv
import io
from pathlib import Path

from hoga.security import totp
from tests.helpers import running

LIB = (
    Path(__file__).resolve().parents[2]
    / "src/hoga/web/static/vendor/lightweight-charts-5.3.0/lightweight-charts.js"
)


async def test_watchlist_is_per_user_validated_and_replaced_whole(
    tmp_path: Path, db_url: str
) -> None:
    async with running(tmp_path, db_url) as h:
        alice = await h.user("alice", "basic")
        bob = await h.user("bob", "basic")
        r = await h.http.get("/api/me/watchlist", headers=alice)
        assert r.status_code == 200 and r.json() == {"symbols": []}

        r = await h.http.put(
            "/api/me/watchlist", json={"symbols": ["000660", "005930", "000660"]}, headers=alice
        )
        assert r.status_code == 200, r.text
        assert r.json() == {"symbols": ["000660", "005930"]}  # order kept, duplicate dropped
        r = await h.http.get("/api/me/watchlist", headers=alice)
        assert r.json() == {"symbols": ["000660", "005930"]}
        assert (await h.http.get("/api/me/watchlist", headers=bob)).json() == {"symbols": []}

        # Refusals change nothing.
        for body, code in (
            ({"symbols": ["5930;x"]}, "watchlist.bad_symbol"),
            ({"symbols": ["999999"]}, "watchlist.unknown_symbol"),
            ({"symbols": ["005930"] * 101}, "watchlist.too_many"),
        ):
            r = await h.http.put("/api/me/watchlist", json=body, headers=alice)
            assert r.status_code == 422, r.text
            assert r.json()["error"]["code"] == code
        r = await h.http.put("/api/me/watchlist", json={"symbols": "005930"}, headers=alice)
        assert r.status_code == 422
        assert (await h.http.get("/api/me/watchlist", headers=alice)).json()["symbols"] == [
            "000660",
            "005930",
        ]
        r = await h.http.put("/api/me/watchlist", json={"symbols": []}, headers=alice)
        assert r.status_code == 200 and r.json() == {"symbols": []}
        assert (await h.http.get("/api/me/watchlist")).status_code == 401


async def test_history_filters_pages_and_exports_csv(tmp_path: Path, db_url: str) -> None:
    async with running(tmp_path, db_url) as h:
        alice = await h.user("alice", "basic")
        bob = await h.user("bob", "basic")
        h.pump(300)
        ids = []
        for symbol, qty in (("005930", 2), ("000660", 1), ("005930", 3)):
            r = await h.http.post(
                "/api/orders",
                json={"symbol": symbol, "side": "buy", "type": "market", "qty": qty},
                headers=alice,
            )
            assert r.status_code == 202, r.text
            ids.append(r.json()["id"])
        for oid in ids:
            await h.wait_status(alice, oid, "FILLED")
        today = h.hoga.clock.now().date().isoformat()

        r = await h.http.get("/api/history/orders", params={"page_size": 2}, headers=alice)
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["total"] == 3 and body["page"] == 1 and body["page_size"] == 2
        assert [o["id"] for o in body["items"]] == [ids[2], ids[1]]  # newest first
        r = await h.http.get(
            "/api/history/orders", params={"page_size": 2, "page": 2}, headers=alice
        )
        assert [o["id"] for o in r.json()["items"]] == [ids[0]]
        r = await h.http.get(
            "/api/history/orders",
            params={"symbol": "005930", "from": today, "to": today, "state": "FILLED"},
            headers=alice,
        )
        assert {o["id"] for o in r.json()["items"]} == {ids[0], ids[2]}
        r = await h.http.get("/api/history/orders", params={"state": "open"}, headers=alice)
        assert r.json()["total"] == 0
        r = await h.http.get("/api/history/orders", params={"to": "2000-01-01"}, headers=alice)
        assert r.json() == {"items": [], "total": 0, "page": 1, "page_size": 50}

        r = await h.http.get("/api/history/fills", params={"symbol": "005930"}, headers=alice)
        fills = r.json()
        assert sum(f["qty"] for f in fills["items"]) == 5 and fills["total"] >= 1
        # Another user sees nothing whatever the filter.
        for path in ("/api/history/orders", "/api/history/fills"):
            assert (await h.http.get(path, headers=bob)).json()["total"] == 0

        # CSV: by path or by Accept; UTF-8 with a BOM; headers in the caller's language.
        r = await h.http.get("/api/history/orders.csv", headers=alice)
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/csv")
        assert "attachment" in r.headers["content-disposition"]
        assert r.content.startswith(b"\xef\xbb\xbf")
        rows = list(csv.reader(io.StringIO(r.content.decode("utf-8-sig"))))
        assert rows[0][:4] == ["주문번호", "거래일", "주문시각", "종목코드"]
        assert len(rows) == 4 and {row[9] for row in rows[1:]} == {"체결"}
        assert {row[4] for row in rows[1:]} == {"삼성전자", "SK하이닉스"}
        r = await h.http.get(
            "/api/history/fills",
            params={"symbol": "000660"},
            headers={**alice, "Accept": "text/csv", "Accept-Language": "en"},
        )
        rows = list(csv.reader(io.StringIO(r.content.decode("utf-8-sig"))))
        assert rows[0][:3] == ["fill", "time", "order"]
        assert sum(int(row[6]) for row in rows[1:]) == 1 and {row[5] for row in rows[1:]} == {"buy"}
        r = await h.http.get("/api/history/fills.csv", headers=bob)
        assert r.content.decode("utf-8-sig").count("\r\n") == 1  # the header row only

        # Bad filters: 422 with a code.
        for params, code in (
            ({"from": "2026-12-05", "to": "2026-12-01"}, "history.bad_range"),
            ({"symbol": "x;y"}, "history.bad_symbol"),
            ({"state": "NOPE"}, "history.bad_state"),
            ({"page": 0}, "validation_error"),
            ({"page_size": 501}, "validation_error"),
            ({"from": "yesterday"}, "validation_error"),
        ):
            r = await h.http.get("/api/history/orders", params=params, headers=alice)
            assert r.status_code == 422, (params, r.text)
            assert r.json()["error"]["code"] == code
        r = await h.http.get("/api/history/fills", params={"state": "FILLED"}, headers=alice)
        assert r.json()["error"]["code"] == "history.bad_state"


async def test_daily_profit_agrees_with_the_books(tmp_path: Path, db_url: str) -> None:
    async with running(tmp_path, db_url) as h:
        alice = await h.user("alice", "basic")
        h.pump(300)
        for side, qty in (("buy", 10), ("sell", 4)):
            r = await h.http.post(
                "/api/orders",
                json={"symbol": "005930", "side": side, "type": "market", "qty": qty},
                headers=alice,
            )
            assert r.status_code == 202, r.text
            await h.wait_status(alice, r.json()["id"], "FILLED")
        pf = (await h.http.get("/api/portfolio", headers=alice)).json()
        r = await h.http.get("/api/portfolio/daily", headers=alice)
        assert r.status_code == 200, r.text
        (today,) = r.json()["days"]
        assert today["date"] == h.hoga.clock.now().date().isoformat()
        fills = (await h.http.get("/api/fills", headers=alice)).json()["fills"]
        assert today["commission"] == sum(f["commission"] for f in fills) > 0
        assert today["tax"] == sum(f["tax"] for f in fills) > 0
        assert today["realized"] == pf["positions"][0]["realized_pnl"]
        assert today["realized"] == pf["today"]["realized_pnl"]
        # Equity is cash plus the positions marked to the latest price (prices move between
        # the two reads only if the market is pumped, which it is not here).
        assert today["equity"] == pf["equity"]
        assert today["unrealized"] == pf["unrealized_pnl"] and today["marked"] is True
        assert today["trades"] == len(fills)

        r = await h.http.get(
            "/api/portfolio/daily", params={"from": "2026-01-02", "to": "2026-01-01"}, headers=alice
        )
        assert r.status_code == 422 and r.json()["error"]["code"] == "history.bad_range"
        r = await h.http.get(
            "/api/portfolio/daily", params={"from": "2020-01-01", "to": "2026-01-01"}, headers=alice
        )
        assert r.status_code == 422 and r.json()["error"]["code"] == "history.bad_range"
        # The ends of the calendar: the 90-day default window (or a day past the end) would
        # overflow the date arithmetic - a 500 ``make fuzz`` found.
        for params in ({"to": "0001-01-01"}, {"to": "9999-12-31"}, {"from": "0001-01-01"}):
            r = await h.http.get("/api/portfolio/daily", params=params, headers=alice)
            assert r.status_code == 422, (params, r.text)
            assert r.json()["error"]["code"] == "history.bad_range"


async def test_errors_answer_in_the_callers_language(tmp_path: Path, sqlite_url: str) -> None:
    async with running(tmp_path, sqlite_url) as h:
        r = await h.http.post(
            "/api/auth/login", json={"username": "nobody", "password": "wrong-password-1"}
        )
        ko = r.json()["error"]
        r = await h.http.post(
            "/api/auth/login",
            json={"username": "nobody", "password": "wrong-password-1"},
            headers={"Accept-Language": "en-US,en;q=0.9"},
        )
        en = r.json()["error"]
        assert ko["code"] == en["code"]  # codes are stable
        assert "(" not in ko["message"] and not any(
            c.isascii() and c.isalpha() for c in ko["message"]
        )
        assert not any("\uac00" <= c <= "\ud7a3" for c in en["message"])

        r = await h.http.get("/api/me/watchlist", headers={"Accept-Language": "en"})
        assert r.status_code == 401 and r.json()["error"]["message"].isascii()
        r = await h.http.get("/api/nowhere", headers={"Accept-Language": "ko"})
        assert r.json()["error"]["message"] == "찾을 수 없습니다"


def test_totp_qr_is_an_svg_image_with_its_namespace() -> None:
    uri = totp.provisioning_uri(totp.new_secret(), "alice")
    data = totp.qr_svg_data_uri(uri)
    assert data.startswith("data:image/svg+xml;base64,")
    svg = base64.b64decode(data.split(",", 1)[1]).decode()
    assert svg.startswith("<svg") and 'xmlns="http://www.w3.org/2000/svg"' in svg
    assert 'width="' in svg and 'height="' in svg  # a natural size for <img>


async def test_static_files_are_compressed_and_cached(tmp_path: Path, sqlite_url: str) -> None:
    async with running(tmp_path, sqlite_url) as h:
        lib = "/static/vendor/lightweight-charts-5.3.0/lightweight-charts.js"
        r = await h.http.get(lib, headers={"Accept-Encoding": "gzip"})
        assert r.status_code == 200
        assert r.headers["content-encoding"] == "gzip"
        assert "javascript" in r.headers["content-type"]
        assert "immutable" in r.headers["cache-control"]
        assert r.headers["vary"] == "Accept-Encoding"
        assert r.content == LIB.read_bytes()  # httpx decoded it
        etag = r.headers["etag"]
        r = await h.http.get(lib, headers={"Accept-Encoding": "gzip", "If-None-Match": etag})
        assert r.status_code == 304 and r.content == b""

        r = await h.http.get("/static/js/main.js", headers={"Accept-Encoding": "gzip"})
        assert r.headers["content-encoding"] == "gzip" and r.headers["cache-control"] == "no-cache"
        assert r.headers["etag"]
        # Without gzip the file goes as it is.
        r = await h.http.get("/static/js/main.js", headers={"Accept-Encoding": "identity"})
        assert "content-encoding" not in r.headers and r.headers["cache-control"] == "no-cache"
        # The old plotly route is gone.
        assert (await h.http.get("/vendor/plotly.min.js")).status_code == 404
