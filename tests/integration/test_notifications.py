"""Notifications through apprise to real local receivers: an HTTP webhook (uvicorn on
loopback) and an SMTP server (aiosmtpd on loopback). Channels API, vault storage, retries,
admin alerts, and the order path never waiting for a delivery."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.smtp import SMTP, Envelope, Session
from sqlalchemy import select
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from hoga.notify.messages import Message
from hoga.notify.service import Notifier
from hoga.store import tables as t
from hoga.store.db import SYSTEM
from tests.helpers import Harness, eventually, on_loopback, running, running_unanswered

SECRET_PATH = "hook-SECRET-9f8e7d6c5b4a"


class Webhook:
    """A loopback HTTP receiver: records JSON bodies; can fail the first N requests or hang."""

    def __init__(self) -> None:
        self.received: list[dict[str, Any]] = []
        self.fail_first = 0
        self.hang = False
        self.calls = 0
        self.port = 0

    async def handle(self, request: Request) -> Response:
        self.calls += 1
        if self.hang:
            await asyncio.sleep(3600)
        if self.calls <= self.fail_first:
            return Response("busy", status_code=500)
        self.received.append(json.loads(await request.body()))
        return JSONResponse({"ok": True})

    def url(self, path: str = SECRET_PATH) -> str:
        return f"json://127.0.0.1:{self.port}/{path}"


@contextlib.asynccontextmanager
async def webhook_receiver() -> AsyncIterator[Webhook]:
    hook = Webhook()
    app = Starlette(routes=[Route("/{path:path}", hook.handle, methods=["POST"])])
    async with on_loopback(app, force_exit=True) as hook.port:  # a hanging hook must not block
        yield hook


class Inbox:
    def __init__(self) -> None:
        self.mail: list[Envelope] = []

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        self.mail.append(envelope)
        return "250 OK"


@contextlib.asynccontextmanager
async def smtp_server() -> AsyncIterator[tuple[Inbox, int]]:
    inbox = Inbox()
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: SMTP(inbox, hostname="localhost"), "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield inbox, port
    finally:
        server.close()
        await server.wait_closed()


def _mailto(port: int) -> str:
    return f"mailto://127.0.0.1:{port}?mode=insecure&from=hoga@example.com&to=alice@example.com"


async def _add(h: Harness, headers: dict[str, str], **body: Any) -> dict[str, Any]:
    r = await h.http.post("/api/me/notifications", json=body, headers=headers)
    assert r.status_code == 201, r.text
    data: dict[str, Any] = r.json()
    return data


async def test_a_fill_reaches_the_webhook_and_the_smtp_inbox(tmp_path: Path, db_url: str) -> None:
    async with (
        webhook_receiver() as hook,
        smtp_server() as (inbox, smtp_port),
        running(tmp_path, db_url) as h,
    ):
        alice = await h.user("alice", "basic")
        web = await _add(h, alice, kind="webhook", label="hook", url=hook.url(), events=["fill"])
        await _add(h, alice, kind="email", label="mail", url=_mailto(smtp_port), events=["fill"])
        assert SECRET_PATH not in json.dumps(web) and web["target_masked"].startswith(
            "json://127.0.0.1:"
        )

        h.pump(300)
        r = await h.post_order(alice, qty=2)
        assert r.status_code == 202
        await h.wait_status(alice, r.json()["id"], "FILLED")

        async def delivered() -> bool:
            return bool(hook.received) and bool(inbox.mail)

        await eventually(delivered, within=5.0, what="the fill at the webhook and the inbox")
        assert "005930" in hook.received[0]["title"] and "005930" in hook.received[0]["message"]
        mail = inbox.mail[0]
        assert mail.rcpt_tos == ["alice@example.com"]
        assert b"005930" in (mail.content or b"")

        # The URL is a vault envelope in the database, never plain text.
        async with h.hoga.db.tx(SYSTEM) as conn:
            stored = (await conn.execute(select(t.notification_channels.c.url_enc))).scalars().all()
        assert len(stored) == 2 and all(
            SECRET_PATH not in s and str(smtp_port) not in s for s in stored
        )


async def test_channels_api_follows_the_contract(tmp_path: Path) -> None:
    async with (
        webhook_receiver() as hook,
        running(tmp_path, f"sqlite+aiosqlite:///{tmp_path / 'h.db'}") as h,
    ):
        alice = await h.user("alice")
        bob = await h.user("bob")
        r = await h.http.get("/api/me/notifications", headers=alice)
        assert r.status_code == 200
        body = r.json()
        assert body["channels"] == []
        # Spelled out, not read from USER_EVENTS: this is the contract the API keeps.
        assert body["available_events"] == [
            "fill",
            "rejection",
            "unknown_settled",
            "strategy_error",
            "kill_switch",
            "broker_down",
            "daily_summary",
        ]
        bad = [
            ({"kind": "pager", "label": "x", "url": hook.url(), "events": []}, 422),
            ({"kind": "telegram", "label": "x", "url": hook.url(), "events": []}, 422),
            ({"kind": "webhook", "label": "x", "url": "json://", "events": []}, 422),
            ({"kind": "webhook", "label": "x", "url": hook.url(), "events": ["admin_alert"]}, 422),
            ({"kind": "webhook", "label": "x", "url": hook.url(), "events": ["nope"]}, 422),
            ({"kind": "webhook", "label": "", "url": hook.url(), "events": []}, 422),
        ]
        for payload, status in bad:
            r = await h.http.post("/api/me/notifications", json=payload, headers=alice)
            assert r.status_code == status, (payload, r.text)
        r = await h.http.post(
            "/api/me/notifications",
            json={"kind": "telegram", "label": "x", "url": hook.url(), "events": []},
            headers=alice,
        )
        assert r.json()["error"]["code"] == "notify.invalid_url"
        # Both halves say which form the kind takes (the Korean one used to lose it).
        assert "tgram://" in r.json()["error"]["message"]
        assert "형식으로" in r.json()["error"]["message"]
        r = await h.http.post(
            "/api/me/notifications",
            json={"kind": "telegram", "label": "x", "url": hook.url(), "events": []},
            headers={**alice, "Accept-Language": "en"},
        )
        assert "tgram://" in r.json()["error"]["message"]
        assert "Not a valid telegram URL" in r.json()["error"]["message"]

        ch = await _add(
            h,
            alice,
            kind="webhook",
            label="hook",
            url=hook.url(),
            events=["fill", "fill", "rejection"],
        )
        assert set(ch) >= {"id", "kind", "label", "target_masked", "events", "enabled"}
        assert ch["events"] == ["fill", "rejection"] and ch["enabled"] is True
        tg = await _add(
            h,
            alice,
            kind="telegram",
            label="tg",
            url="tgram://123456789:AAE-secret-token_xyz/987654",
            events=["fill"],
        )
        assert tg["target_masked"] == "tgram://****"
        listing = (await h.http.get("/api/me/notifications", headers=alice)).json()
        assert [c["id"] for c in listing["channels"]] == [ch["id"], tg["id"]]
        assert "secret-token" not in json.dumps(listing) and SECRET_PATH not in json.dumps(listing)

        r = await h.http.patch(
            f"/api/me/notifications/{ch['id']}",
            json={"events": ["daily_summary"], "enabled": False},
            headers=alice,
        )
        assert (
            r.status_code == 200
            and r.json()["events"] == ["daily_summary"]
            and not r.json()["enabled"]
        )
        # Bob sees none of Alice's channels and cannot touch them.
        assert (await h.http.get("/api/me/notifications", headers=bob)).json()["channels"] == []
        for method, path in (
            ("PATCH", f"/api/me/notifications/{ch['id']}"),
            ("DELETE", f"/api/me/notifications/{ch['id']}"),
            ("POST", f"/api/me/notifications/{ch['id']}/test"),
        ):
            r = await h.http.request(
                method, path, headers=bob, json={"label": "x"} if method == "PATCH" else None
            )
            assert r.status_code == 404 and r.json()["error"]["code"] == "notify.not_found"

        # Send test goes to that channel even when it is disabled for events.
        r = await h.http.post(f"/api/me/notifications/{ch['id']}/test", headers=alice)
        assert r.status_code == 202

        async def arrived() -> bool:
            return bool(hook.received)

        await eventually(arrived, what="the test message")
        assert "test" in hook.received[0]["title"]
        r = await h.http.delete(f"/api/me/notifications/{tg['id']}", headers=alice)
        assert r.status_code == 204
        assert (
            len((await h.http.get("/api/me/notifications", headers=alice)).json()["channels"]) == 1
        )

        # An admin may subscribe to server-wide alerts, and gets them.
        admin = await h.admin()
        listing = (await h.http.get("/api/me/notifications", headers=admin)).json()
        assert "admin_alert" in listing["available_events"]
        await _add(
            h, admin, kind="webhook", label="ops", url=hook.url("ops"), events=["admin_alert"]
        )
        await h.hoga.admin_alert("backup_failed", "hoga: backup failed", "the disk is gone")

        async def alert() -> bool:
            return any("backup failed" in m["title"] for m in hook.received)

        await eventually(alert, what="the admin alert")


async def test_failed_deliveries_are_retried_then_recorded_without_secrets(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    async with (
        webhook_receiver() as hook,
        running(tmp_path, f"sqlite+aiosqlite:///{tmp_path / 'h.db'}") as h,
    ):
        h.hoga.notifier.retries = (0.01, 0.01, 0.01)
        alice = await h.user("alice")
        ch = await _add(h, alice, kind="webhook", label="hook", url=hook.url(), events=["fill"])
        hook.fail_first = 2  # two 500s, then it takes the message
        r = await h.http.post(f"/api/me/notifications/{ch['id']}/test", headers=alice)
        assert r.status_code == 202

        async def arrived() -> bool:
            return bool(hook.received)

        await eventually(arrived, what="the retried message")
        assert hook.calls == 3

        async def recorded() -> bool:
            listing = (await h.http.get("/api/me/notifications", headers=alice)).json()
            return listing["channels"][0]["last_sent_at"] is not None

        await eventually(recorded, what="last_sent_at")

        hook.fail_first, hook.calls = 100, 0
        await h.http.post(f"/api/me/notifications/{ch['id']}/test", headers=alice)

        async def failed() -> bool:
            listing = (await h.http.get("/api/me/notifications", headers=alice)).json()
            return listing["channels"][0]["last_error"] is not None

        await eventually(failed, what="the failure recorded")
        assert hook.calls == 4  # one try and three retries
        assert h.hoga.notifier.failed == 1
        assert SECRET_PATH not in caplog.text


async def test_a_hanging_receiver_never_delays_orders(tmp_path: Path) -> None:
    async with (
        webhook_receiver() as hook,
        running(tmp_path, f"sqlite+aiosqlite:///{tmp_path / 'h.db'}") as h,
    ):
        hook.hang = True
        alice = await h.user("alice", "basic")
        await _add(h, alice, kind="webhook", label="hook", url=hook.url(), events=["fill"])
        h.pump(300)

        async def buy() -> int:
            r = await h.post_order(alice, qty=1)
            assert r.status_code == 202
            oid: int = r.json()["id"]
            return oid

        await h.wait_status(alice, await buy(), "FILLED")

        async def hanging() -> bool:
            return hook.calls >= 1

        await eventually(hanging, what="a delivery hanging at the receiver")
        # While deliveries hang, orders keep flowing and filling.
        ids = [await buy() for _ in range(3)]
        for oid in ids:
            await h.wait_status(alice, oid, "FILLED")
        assert hook.calls >= 1 and not hook.received  # deliveries are still hanging


async def test_event_translation_and_a_bounded_queue(tmp_path: Path) -> None:
    async with running(tmp_path, f"sqlite+aiosqlite:///{tmp_path / 'h.db'}") as h:
        n = Notifier(h.hoga.db, h.hoga.vault, h.hoga.clock, queue_size=3)
        order = {"id": 7, "symbol": "005930", "side": "buy", "qty": 5, "filled_qty": 5}
        n.on_event(1, {"type": "order", "order": {**order, "status": "UNKNOWN"}})
        n.on_event(1, {"type": "order", "order": {**order, "status": "FILLED"}})
        n.on_event(
            1,
            {
                "type": "order",
                "order": {**order, "id": 8, "status": "REJECTED", "reason": "잔고 부족"},
            },
        )
        n.on_event(
            1,
            {
                "type": "strategy",
                "strategy": {
                    "id": 3,
                    "name": "sma",
                    "status": "error",
                    "last_error": {"message": "boom"},
                },
            },
        )
        n.on_event(
            1, {"type": "strategy", "strategy": {"id": 3, "name": "sma", "status": "running"}}
        )
        n.on_event(1, {"type": "fill"})  # malformed: logged, never raised into the publisher
        queued: list[Message] = []
        while not n._queue.empty():
            queued.append(n._queue.get_nowait())
        assert [m.event for m in queued] == ["unknown_settled", "rejection", "strategy_error"]
        assert "잔고 부족" in queued[1].body and "boom" in queued[2].body
        for i in range(5):
            n.notify_user(1, "fill", "t", str(i))
        assert n.pending() == 3 and n.dropped == 2


async def test_an_order_settled_after_unknown_reaches_the_webhook(tmp_path: Path) -> None:
    async with (
        webhook_receiver() as hook,
        running_unanswered(tmp_path, f"sqlite+aiosqlite:///{tmp_path / 'h.db'}") as h,
    ):
        h.hoga.reconciler.unknown_grace = 0.5
        bea = await h.user("bea", "basic")
        await _add(h, bea, kind="webhook", label="w", url=hook.url(), events=["unknown_settled"])
        h.pump(300)
        oid = (await h.filled_through_unknown(bea, symbol="000660", qty=3))["id"]

        async def arrived() -> bool:
            return any(f"#{oid}" in m["title"] for m in hook.received)

        await eventually(arrived, what="the settled-after-UNKNOWN message")
        assert len(hook.received) == 1  # fills were not subscribed
