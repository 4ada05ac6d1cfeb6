"""Two users on a real ``hoga serve``: neither can reach the other's data, and a linked broker
secret never leaves the vault - not in the database file, the API or the server log."""

from __future__ import annotations

from pathlib import Path

import httpx

from tests.e2e.conftest import Server, login

APP_SECRET = "S3cr3t-app-secret-value-that-must-never-leak-0123456789abcdef"
APP_KEY = "PSabcdefghijklmnopqrstuvwxyz0123456789"


def test_users_are_isolated_and_secrets_stay_secret(server: Server) -> None:
    server.cli("user", "add", "alice", "--tier", "basic", "--password", "alice-password-1")
    server.cli("user", "add", "bob", "--tier", "basic", "--password", "bob-password-12")
    alice = login(server.url, "alice", "alice-password-1")
    bob = login(server.url, "bob", "bob-password-12")
    c = httpx.Client(base_url=server.url, timeout=10)
    seen: list[str] = []

    def call(method: str, path: str, headers: dict[str, str], **kw: object) -> httpx.Response:
        r = c.request(method, path, headers=headers, **kw)  # type: ignore[arg-type]
        seen.append(r.text)
        return r

    # Alice links a KIS account, places an order, and has audit entries.
    r = call(
        "POST",
        "/api/broker-accounts",
        alice,
        json={
            "broker": "kis",
            "env": "mock",
            "account_no": "50123456-01",
            "app_key": APP_KEY,
            "app_secret": APP_SECRET,
            "hts_id": "alicehts",
            "label": "alice kis",
        },
    )
    assert r.status_code == 201, r.text
    acct = r.json()
    assert acct["account_no"] == "****-5601"
    assert acct["app_secret"] == "****"
    assert APP_KEY not in r.text
    r = call(
        "POST",
        "/api/orders",
        alice,
        json={"symbol": "005930", "side": "buy", "type": "limit", "qty": 1, "price": 60000},
    )
    assert r.status_code == 202, r.text
    order_id = r.json()["id"]
    paper = next(
        a
        for a in call("GET", "/api/broker-accounts", alice).json()["accounts"]
        if a["broker"] == "paper"
    )

    # Bob sees none of it: lists are his own, objects are 404.
    assert [a["broker"] for a in call("GET", "/api/broker-accounts", bob).json()["accounts"]] == [
        "paper"
    ]
    assert call("GET", "/api/orders", bob).json()["orders"] == []
    assert call("GET", f"/api/orders/{order_id}", bob).status_code == 404
    assert call("DELETE", f"/api/orders/{order_id}", bob).status_code == 404
    assert call("GET", f"/api/broker-accounts/{acct['id']}", bob).status_code == 404
    assert call("POST", f"/api/broker-accounts/{acct['id']}/test", bob).status_code == 404
    assert call("DELETE", f"/api/broker-accounts/{acct['id']}", bob).status_code == 404
    r = call(
        "POST",
        "/api/orders",
        bob,
        json={
            "symbol": "005930",
            "side": "buy",
            "type": "market",
            "qty": 1,
            "account_id": paper["id"],
        },
    )
    assert r.status_code == 404
    assert r.json()["error"]["code"] == "account.not_found"
    bob_id = call("GET", "/api/me", bob).json()["id"]
    entries = call("GET", "/api/me/audit", bob).json()["entries"]
    assert entries
    assert all(e["user_id"] == bob_id and "alice" not in str(e) for e in entries)
    assert call("GET", "/api/admin/users", bob).status_code == 403
    assert call("GET", "/api/admin/audit", bob).status_code == 403
    p = call("GET", "/api/portfolio", bob).json()
    assert p["positions"] == [] and all(a["id"] != paper["id"] for a in p["accounts"])
    # Alice's own order is still there and untouched.
    assert call("GET", f"/api/orders/{order_id}", alice).json()["status"] != "CANCELLED"

    # The secret appears nowhere: responses, the database file, the server log.
    assert not any(APP_SECRET in text for text in seen)
    db_bytes = b"".join(p.read_bytes() for p in Path(server.data_dir).glob("hoga.db*"))
    assert APP_SECRET.encode() not in db_bytes
    assert APP_KEY.encode() not in db_bytes
    server.stop()
    log = server.output()
    assert APP_SECRET not in log
    assert "alice-password-1" not in log
