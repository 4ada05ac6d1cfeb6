"""What the notifier learns by watching: kill switch, broker down and back, reconciliation
mismatches, the feed, the daily summary after the close; and vault rotation covering channel
URLs. Messages are captured at the notifier's queue (delivery itself is covered by
test_notifications.py with real receivers)."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from pathlib import Path

from hoga.domain.clock import KST, ManualClock
from hoga.execution.accounts import AccountService
from hoga.execution.health import Outcome
from hoga.execution.reconcile_orders import ReconcileResult
from hoga.execution.vault_rotation import rotate_vault_keys
from hoga.notify.messages import Message
from hoga.security.vault import KeyRing, Vault, channel_aad
from hoga.store import tables as t
from hoga.store.db import SYSTEM
from tests.helpers import Harness, eventually, running


def _drain(h: Harness) -> list[Message]:
    q = h.hoga.notifier._queue
    out = []
    while not q.empty():
        out.append(q.get_nowait())
    return out


async def _channel(h: Harness, headers: dict[str, str], events: list[str]) -> int:
    r = await h.http.post(
        "/api/me/notifications",
        json={"kind": "webhook", "label": "w", "url": "json://127.0.0.1:9/x", "events": events},
        headers=headers,
    )
    assert r.status_code == 201, r.text
    cid: int = r.json()["id"]
    return cid


async def test_watch_reports_kill_switch_broker_reconciliation_and_feed(tmp_path: Path) -> None:
    async with running(tmp_path, f"sqlite+aiosqlite:///{tmp_path / 'h.db'}") as h:
        await h.hoga.notifier.stop()  # capture messages at the queue instead of delivering
        alice = await h.user("alice")
        alice_id = (await h.hoga.auth.find_user("alice")).id
        await _channel(h, alice, ["kill_switch", "broker_down"])
        watch = h.hoga.alerts
        await watch.check()
        assert _drain(h) == []

        admin = await h.admin()
        r = await h.http.put("/api/admin/kill-switch", json={"state": "HALTED"}, headers=admin)
        assert r.status_code == 200
        await watch.check()
        await watch.check()  # once per change
        (m,) = _drain(h)
        assert (m.user_id, m.event) == (alice_id, "kill_switch") and "HALTED" in m.title

        # Alice's paper account goes down after three failures, then answers again.
        account_id = (await h.http.get("/api/broker-accounts", headers=alice)).json()["accounts"][
            0
        ]["id"]
        for _ in range(3):
            h.hoga.health.record("paper", account_id, Outcome.FAILED, "paper.unreachable")
        h.hoga.health.record("paper", account_id, Outcome.OK, None)

        async def two() -> bool:
            return h.hoga.notifier._queue.qsize() >= 2

        await eventually(two, what="down and back messages")
        down, up = _drain(h)
        assert (down.user_id, down.event) == (alice_id, "broker_down") and "down" in down.title
        assert "back" in up.title

        # A reconciliation mismatch: one admin alert per account until it agrees again.
        h.hoga.reconciler.last[account_id] = ReconcileResult(
            account_id, cash_mismatch={"hoga": 1, "broker": 2}
        )
        await watch.check()
        await watch.check()
        (alert,) = _drain(h)
        assert (alert.user_id, alert.event) == (
            None,
            "admin_alert",
        ) and "reconcile_mismatch" in alert.body
        h.hoga.reconciler.last[account_id] = ReconcileResult(account_id)
        await watch.check()
        assert _drain(h) == []

        # The feed: someone wants symbols and no session delivers them.
        h.hoga.hub.health = lambda: {  # type: ignore[method-assign]
            "feed": "simulator",
            "sessions": [],
            "symbols_wanted": 3,
            "unplaced": [],
        }
        await watch.check()
        (alert,) = _drain(h)
        assert "feed_down" in alert.body


async def test_daily_summary_after_the_close_once_a_day(tmp_path: Path) -> None:
    clock = ManualClock(datetime(2026, 12, 4, 14, 0, tzinfo=KST))  # a Friday, a trading day
    async with running(tmp_path, f"sqlite+aiosqlite:///{tmp_path / 'h.db'}", clock=clock) as h:
        await h.hoga.notifier.stop()
        alice = await h.user("alice", "basic")
        alice_id = (await h.hoga.auth.find_user("alice")).id
        await _channel(h, alice, ["daily_summary"])
        h.pump(300)
        r = await h.http.post(
            "/api/orders",
            json={"symbol": "005930", "side": "buy", "type": "market", "qty": 4},
            headers=alice,
        )
        order = await h.wait_status(alice, r.json()["id"], "FILLED")
        watch = h.hoga.alerts
        await watch.check()
        assert [m for m in _drain(h) if m.event == "daily_summary"] == []  # before the close
        clock.set(datetime(2026, 12, 4, 15, 41, tzinfo=KST))
        await watch.check()
        await watch.check()
        (m,) = [m for m in _drain(h) if m.event == "daily_summary"]
        assert m.user_id == alice_id and "2026-12-04" in m.title
        commission = sum(f["commission"] for f in order["fills"])
        assert f"수수료 (commission) {commission:,}원" in m.body
        assert f"체결 (fills) {len(order['fills'])}건" in m.body
        # A restarted watch does not send it again (remembered in the database).
        watch._summary_day = None
        await watch.check()
        assert [m for m in _drain(h) if m.event == "daily_summary"] == []


async def test_vault_rotation_re_encrypts_channel_urls(tmp_path: Path) -> None:
    async with running(tmp_path, f"sqlite+aiosqlite:///{tmp_path / 'h.db'}") as h:
        alice = await h.user("alice")
        cid = await _channel(h, alice, ["fill"])
        old = h.hoga.vault.current_key_id
        cli_vault = Vault(KeyRing.load_or_create(tmp_path / "var" / "master.key"))
        cli = AccountService(
            h.hoga.db, cli_vault, h.hoga.clock, {}, paper_cash=0, commission_rate=Decimal("0")
        )
        done = await rotate_vault_keys(h.hoga.db, cli_vault, cli, h.hoga.clock, server_running=True)
        assert done.retired == [old]
        async with h.hoga.db.tx(SYSTEM) as conn:
            row = (await conn.execute(t.notification_channels.select())).one()
        assert Vault.key_id_of(row.url_enc) == done.new_key == row.key_id
        alice_id = (await h.hoga.auth.find_user("alice")).id
        assert cli_vault.decrypt(row.url_enc, channel_aad(alice_id, cid)) == b"json://127.0.0.1:9/x"
