"""Issue 12 hardening: no calls to hosts the operator did not name, the dashboard page only at
``/`` with its headers, ``/health`` says nothing to strangers, files at rest are private."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hoga.security.brokerurls import BrokerUrlPolicy
from tests.helpers import running

ACCOUNT = {
    "broker": "kis",
    "env": "mock",
    "account_no": "50123456-01",
    "app_key": "PSabcdefgh12345678",
    "app_secret": "secret-secret-secret",
}


async def _link(h: Any, headers: dict[str, str], **urls: str) -> Any:
    return await h.http.post("/api/broker-accounts", json={**ACCOUNT, **urls}, headers=headers)


async def test_custom_broker_urls_are_off_by_default(tmp_path: Path, sqlite_url: str) -> None:
    async with running(
        tmp_path, sqlite_url, allow_custom_broker_urls=False, broker_url_hosts=[]
    ) as h:
        amy = await h.user("amy")
        for field in ("base_url", "ws_url"):
            r = await _link(h, amy, **{field: "http://127.0.0.1:22"})
            assert r.status_code == 422, r.text
            err = r.json()["error"]
            assert err["code"] == "account.custom_url_forbidden" and err["field"] == field
        # Without custom URLs the real hosts are used: linking works.
        assert (await _link(h, amy)).status_code == 201


async def test_custom_broker_urls_only_for_listed_hosts(tmp_path: Path, sqlite_url: str) -> None:
    async with running(
        tmp_path, sqlite_url, allow_custom_broker_urls=True, broker_url_hosts=["127.0.0.1:9443"]
    ) as h:
        amy = await h.user("amy")
        for url in (
            "http://10.0.0.1:9443",  # another host
            "http://127.0.0.1:22",  # another port: no port scanning through /test
            "http://127.0.0.1",  # default port 80
            "http://evil@127.0.0.1:9443",  # userinfo
            "gopher://127.0.0.1:9443",
            "http://127.0.0.1:9443@10.0.0.1/",
        ):
            r = await _link(h, amy, base_url=url)
            assert r.status_code == 422, url
            assert r.json()["error"]["code"] in (
                "account.url_host_not_allowed",
                "account.bad_url",
            ), (url, r.text)
        r = await _link(h, amy, base_url="http://127.0.0.1:9443", ws_url="ws://127.0.0.1:9443")
        assert r.status_code == 201, r.text
        # The operator withdraws the permission: the stored URL is no longer called.
        h.hoga.accounts.url_policy = BrokerUrlPolicy(False, ())
        h.hoga.accounts._refs.clear()
        user_id = (await h.hoga.auth.find_user("amy")).id
        acct = await h.hoga.accounts.get(user_id, r.json()["id"])
        ref = h.hoga.accounts.ref(acct)
        assert ref.base_url is None and ref.ws_url is None


def test_policy_matches_hosts_and_ports() -> None:
    p = BrokerUrlPolicy(True, ("localhost", "[::1]:8443"))
    assert p.permits("https://LOCALHOST/x") and p.permits("ws://localhost:1234")
    assert p.permits("https://[::1]:8443/") and not p.permits("https://[::1]:8444/")
    assert not p.permits("http://localhost.evil.example/")


async def test_dashboard_page_only_at_root_and_health_says_little(
    tmp_path: Path, sqlite_url: str
) -> None:
    async with running(tmp_path, sqlite_url) as h:
        for path in ("/static/index.html", "/static/INDEX.HTML", "/static/"):
            r = await h.http.get(path)
            assert r.status_code == 404, path
            assert "content-security-policy" not in r.headers
        r = await h.http.get("/static/js/main.js")
        assert r.status_code == 200 and r.headers["x-content-type-options"] == "nosniff"
        r = await h.http.get("/")
        assert "default-src 'self'" in r.headers["content-security-policy"]

        assert (await h.http.get("/health")).json() == {"status": "ok"}
        bad = {"Authorization": "Bearer nonsense"}
        assert (await h.http.get("/health", headers=bad)).json() == {"status": "ok"}
        amy = await h.user("amy")
        full = (await h.http.get("/health", headers=amy)).json()
        assert full["status"] == "ok" and full["versions"]["hoga"]


async def test_files_at_rest_are_private(tmp_path: Path) -> None:
    db_file = tmp_path / "var" / "hoga.db"
    async with running(tmp_path, f"sqlite+aiosqlite:///{db_file}") as h:
        amy = await h.user("amy")
        r = await h.post_order(amy, qty=1)
        assert r.status_code in (201, 202), r.text
        await h.trade_until(
            lambda: _exists(tmp_path / "var" / "paper" / "journal.jsonl"), "a journal"
        )
        data = tmp_path / "var"
        assert data.stat().st_mode & 0o777 == 0o700
        assert (data / "paper").stat().st_mode & 0o777 == 0o700
        for f in ("hoga.db", "hoga.db-wal", "hoga.db-shm", "paper/journal.jsonl"):
            path = data / f
            assert path.exists(), f
            assert path.stat().st_mode & 0o777 == 0o600, (f, oct(path.stat().st_mode))


def _size(path: Path) -> int:
    return path.stat().st_size if path.exists() else 0


async def _exists(path: Path) -> bool:
    return _size(path) > 0
