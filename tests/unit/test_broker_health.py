"""Broker health from real call outcomes, and readiness (issue 11); the send gate, which builds
the KRX calendar, is in tests/integration/test_send_gate.py."""

from __future__ import annotations

import asyncio
from dataclasses import replace

import pytest

from hoga.brokers.base import (
    AccountRef,
    BrokerAuthError,
    BrokerNotProcessed,
    BrokerOutcomeUnknown,
    BrokerRejected,
    PlaceRequest,
)
from hoga.brokers.paper import PaperBroker, PaperFaults
from hoga.domain.clock import ManualClock
from hoga.domain.orders import OrderType, Side
from hoga.execution.health import (
    DEGRADED,
    DOWN,
    OK,
    BrokerHealth,
    MonitoredBroker,
    Outcome,
    classify,
)
from hoga.execution.readiness import feed_part, overall
from hoga.marketdata.feeds.simulator import SimulatedMarket
from hoga.marketdata.universe import Universe, bundled_universe

KIS_REAL = AccountRef(account_id=7, user_id=1, broker="kis", env="real", account_no="5012345601")
PAPER = AccountRef(account_id=1, user_id=1, broker="paper", env="paper", account_no="PAPER-1")


def test_outcomes_are_classified_by_what_they_say_about_the_broker() -> None:
    assert classify(None) == (Outcome.OK, None)
    assert classify(BrokerRejected("no", "kis.APBK0919"))[0] == Outcome.REFUSED
    assert classify(BrokerNotProcessed("busy", "kis.busy"))[0] == Outcome.BUSY
    assert classify(BrokerAuthError("bad key", "kis.EGW00103"))[0] == Outcome.AUTH
    assert classify(BrokerOutcomeUnknown("lost", "kis.timeout"))[0] == Outcome.FAILED
    assert classify(TimeoutError())[0] == Outcome.FAILED
    assert classify(ConnectionRefusedError())[0] == Outcome.FAILED
    assert classify(asyncio.CancelledError()) == (Outcome.FAILED, "timeout")
    # "Not sent because the connection never opened" is the broker being unreachable, whatever
    # exception class the adapter uses for it.
    assert classify(BrokerNotProcessed("down", "kis.unreachable"))[0] == Outcome.FAILED
    assert classify(BrokerRejected("down", "kiwoom.unreachable"))[0] == Outcome.FAILED


def test_an_account_goes_down_after_consecutive_failures_and_recovers_on_an_answer(
    clock: ManualClock,
) -> None:
    health = BrokerHealth(clock, down_after=3, window=60)
    woken: list[int] = []
    health.on_recovered.append(woken.append)
    assert health.account(7, "kis").status == OK
    health.record("kis", 7, Outcome.FAILED, "kis.unreachable")
    health.record("kis", 7, Outcome.FAILED, "kis.unreachable")
    assert health.account(7).status == DEGRADED
    assert not health.is_down(7)
    # A refusal is an answer: the count starts again.
    health.record("kis", 7, Outcome.REFUSED, "kis.APBK0919")
    health.record("kis", 7, Outcome.FAILED, "kis.unreachable")
    health.record("kis", 7, Outcome.FAILED, "kis.unreachable")
    assert not health.is_down(7)
    health.record("kis", 7, Outcome.FAILED, "timeout")
    h = health.account(7)
    assert h.status == DOWN and h.code == "timeout" and h.since == clock.time()
    assert "3" in (h.reason or "")
    assert health.brokers(["kis", "paper"]) == {
        "kis": {"status": DOWN, "accounts": {OK: 0, DEGRADED: 0, DOWN: 1}},
        "paper": {"status": OK, "accounts": {OK: 0, DEGRADED: 0, DOWN: 0}},
    }
    health.record("kis", 7, Outcome.OK, None)
    assert woken == [7]
    assert health.account(7).status == DEGRADED  # the failures are still recent
    clock.advance(61)
    assert health.account(7).status == OK


def test_credentials_refused_is_down_at_once_but_never_probed(clock: ManualClock) -> None:
    health = BrokerHealth(clock, probe_start=2.0)
    health.record("kiwoom", 3, Outcome.AUTH, "kiwoom.8002")
    h = health.account(3)
    assert h.status == DOWN and h.cause == "auth" and h.code == "kiwoom.8002"
    assert health.is_down(3) and not health.is_unreachable(3)
    clock.advance(3600)
    # Signing in again and again with refused credentials can get a key locked.
    assert health.due_probes() == []


def test_an_unreachable_account_is_probed_with_backoff(clock: ManualClock) -> None:
    health = BrokerHealth(clock, down_after=1, probe_start=2.0, probe_max=8.0)
    health.record("kis", 3, Outcome.FAILED, "kis.unreachable")
    assert health.is_unreachable(3) and health.account(3).cause == "unreachable"
    assert health.due_probes() == []
    gaps = []
    last = clock.monotonic()
    for _ in range(5):
        while not health.due_probes():
            clock.advance(0.5)
        gaps.append(clock.monotonic() - last)
        last = clock.monotonic()
    assert gaps == [2.0, 4.0, 8.0, 8.0, 8.0]


def test_realtime_session_down_makes_an_account_degraded(clock: ManualClock) -> None:
    health = BrokerHealth(clock)
    sessions = {7: False, 1: None}
    health.realtime = lambda broker, account_id: sessions.get(account_id)
    health.record("kis", 7, Outcome.OK, None)
    h = health.account(7)
    assert h.status == DEGRADED and h.code == "broker.realtime_down" and h.realtime is False
    sessions[7] = True
    assert health.account(7).status == OK


async def test_monitored_broker_records_every_call_of_a_real_adapter(clock: ManualClock) -> None:
    market = SimulatedMarket(Universe(bundled_universe()), seed=7, clock=clock)
    faults = PaperFaults(reject_next=1, accept_then_timeout=1)
    paper = PaperBroker(market, clock, initial_cash=10_000_000, faults=faults)
    await paper.start()
    await paper.attach(PAPER)
    health = BrokerHealth(clock, down_after=2)
    broker = MonitoredBroker(paper, health)
    req = PlaceRequest("c1", "005930", Side.BUY, OrderType.MARKET, 1, None)
    with pytest.raises(BrokerRejected):
        await broker.place(PAPER, req)
    assert health.account(1).status == OK  # a refusal is an answer
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(broker.place(PAPER, replace(req, client_order_id="c2")), 0.05)
    assert health.account(1).status == DEGRADED
    assert (await broker.balance(PAPER)).cash == 10_000_000
    assert health.account(1).status == DEGRADED and not health.is_down(1)
    # Everything that is not a broker call passes straight through.
    assert broker.limits(PAPER) == paper.limits(PAPER)
    assert broker.name == "paper"
    await paper.stop()


def test_readiness_is_down_for_database_or_dispatcher_and_degraded_for_the_rest() -> None:
    ok = {"status": OK}
    parts = {"database": ok, "feed": ok, "dispatcher": ok, "brokers": {"kis": ok, "paper": ok}}
    assert overall(parts) == OK
    assert overall({**parts, "brokers": {"kis": {"status": DOWN}}}) == DEGRADED
    assert overall({**parts, "feed": {"status": DOWN}}) == DEGRADED
    assert overall({**parts, "dispatcher": {"status": DEGRADED}}) == DEGRADED
    assert overall({**parts, "database": {"status": DOWN}}) == DOWN
    assert overall({**parts, "dispatcher": {"status": DOWN}}) == DOWN


def test_feed_part_judges_sessions_only_while_trading() -> None:
    def hub(*ages: float, wanted: int = 5, unplaced: int = 0) -> dict[str, object]:
        return {
            "feed": "kis",
            "sessions": [{"last_message_age": a} for a in ages],
            "symbols_wanted": wanted,
            "unplaced": ["x"] * unplaced,
        }

    assert feed_part(hub(1.0, 2.0), trading=True, stale_after=10)["status"] == OK
    assert feed_part(hub(1.0, 30.0), trading=True, stale_after=10)["status"] == DEGRADED
    assert feed_part(hub(30.0, 30.0), trading=True, stale_after=10)["status"] == DOWN
    assert feed_part(hub(30.0, 30.0), trading=False, stale_after=10)["status"] == OK
    assert feed_part(hub(wanted=3), trading=False, stale_after=10)["status"] == DOWN
    assert feed_part(hub(1.0, unplaced=2), trading=True, stale_after=10)["status"] == DEGRADED
    assert feed_part(hub(wanted=0), trading=True, stale_after=10)["status"] == OK
