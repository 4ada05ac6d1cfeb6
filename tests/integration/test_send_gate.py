"""The send gate says why an account waits (issue 11): market hours, a pause, a lost instance
lock, a broker that is down - and never for refused credentials. Builds the KRX calendar
(seconds), hence an integration test."""

from __future__ import annotations

from datetime import datetime

from hoga.brokers.base import AccountRef
from hoga.domain.clock import KST, ManualClock
from hoga.execution.gate import Pause, SendGate, TradingHours
from hoga.execution.health import BrokerHealth, Outcome
from hoga.execution.queue import Kind
from tests.unit.test_broker_health import KIS_REAL, PAPER


def test_the_send_gate_says_why_an_account_waits() -> None:
    evening = ManualClock(datetime(2026, 11, 26, 20, 55, tzinfo=KST))
    health = BrokerHealth(evening)
    gate = SendGate(evening, TradingHours(evening, lambda: True), health)
    assert gate.hold_for(PAPER) is None  # demo: paper trades around the clock
    hold = gate.hold_for(KIS_REAL)
    assert hold is not None and hold.code == "market.closed"
    assert gate.hold_for(KIS_REAL, Kind.CANCEL) is None  # cancels are never held for hours
    gate.pause = Pause("restore drill", "admin:1", evening.time())
    hold = gate.hold_for(PAPER)
    assert hold is not None and hold.code == "server.paused" and "restore drill" in hold.message
    assert gate.hold_for(KIS_REAL, Kind.CANCEL) is not None  # a pause holds everything
    gate.pause = None
    gate.lock_lost_since = evening.time()
    hold = gate.hold_for(PAPER)
    assert hold is not None and hold.code == "server.lock_lost"
    gate.lock_lost_since = None
    for _ in range(3):
        health.record("paper", 1, Outcome.FAILED, "timeout")
    hold = gate.hold_for(PAPER)
    assert hold is not None and hold.code == "broker.down"
    assert hold.view()["since"] == "2026-11-26T20:55:00+09:00"
    # Refused credentials are not waited out: the adapter refuses such orders unsent.
    health.record("kis", 8, Outcome.AUTH, "kis.EGW00103")
    kis_mock = AccountRef(account_id=8, user_id=1, broker="kis", env="mock", account_no="1")
    assert gate.hold_for(kis_mock) is None
