"""The kiwoom_openapi adapter's pure parts: the bridge's error kinds as the broker protocol's
four outcomes, report rows, and real-time frames as ticks."""

from __future__ import annotations

import pytest

from hoga.brokers.base import (
    AccountRef,
    BrokerAuthError,
    BrokerError,
    BrokerNotProcessed,
    BrokerOutcomeUnknown,
    BrokerRejected,
)
from hoga.brokers.kiwoom.tracking import ReportRow
from hoga.brokers.kiwoom_openapi import BridgeError, KiwoomOpenApiBroker, KiwoomOpenApiFeed
from hoga.brokers.kiwoom_openapi.errors import as_broker_error
from hoga.brokers.kiwoom_openapi.wire import report_row
from hoga.domain.clock import SystemClock
from hoga.domain.orders import OrderType, Side
from hoga.domain.secret import Secret


@pytest.mark.parametrize(
    ("kind", "expected"),
    [
        ("rejected", BrokerRejected),
        ("not_processed", BrokerNotProcessed),
        ("no_session", BrokerNotProcessed),
        ("login_failed", BrokerNotProcessed),
        ("unreachable", BrokerNotProcessed),
        ("unknown", BrokerOutcomeUnknown),
        ("disconnected", BrokerOutcomeUnknown),
        ("timeout", BrokerOutcomeUnknown),
        ("unauthorized", BrokerAuthError),
        ("bad_request", BrokerRejected),
    ],
)
def test_bridge_errors_map_to_the_four_outcomes(kind: str, expected: type[BrokerError]) -> None:
    err = as_broker_error(
        BridgeError(kind, "text", -308 if kind == "not_processed" else 0, 2.5), "place"
    )
    assert type(err) is expected
    assert err.code.startswith("kiwoom_openapi.")
    if kind == "not_processed":
        assert isinstance(err, BrokerNotProcessed) and err.retry_after == 2.5


def test_an_opt10075_row_reads_as_a_report_row() -> None:
    row = ReportRow.parse(
        report_row(
            {
                "주문번호": "0000012",
                "원주문번호": "0000010",
                "종목코드": "005930",
                "주문구분": "+매수정정",
                "매매구분": "보통",
                "주문수량": "4",
                "주문가격": "70100",
                "미체결수량": "1",
                "체결량": "3",
                "체결가": "70000",
                "시간": "101500",
            }
        ),
        "20261204",
        0.0,
    )
    assert (row.ord_no, row.orig, row.symbol, row.side, row.type) == (
        "0000012",
        "0000010",
        "005930",
        Side.BUY,
        OrderType.LIMIT,
    )
    assert (row.qty, row.price, row.open_qty, row.filled, row.fill_price) == (4, 70100, 1, 3, 70000)
    assert not row.cancel


def test_a_real_time_frame_reads_as_a_tick() -> None:
    broker = KiwoomOpenApiBroker(clock=SystemClock())
    ref = AccountRef(1, 1, "kiwoom_openapi", "mock", "5012345611", app_key=Secret("kim"))
    feed = KiwoomOpenApiFeed(broker, ref, SystemClock())
    tick = feed.parse(
        {
            "code": "005930",
            "fids": {
                "10": "-70100",
                "11": "-200",
                "15": "-12",
                "13": "5000",
                "27": "+70200",
                "28": "+70100",
                "20": "101500",
            },
        }
    )
    assert (tick.symbol, tick.price, tick.volume, tick.ask, tick.bid) == (
        "005930",
        70100,
        12,
        70200,
        70100,
    )
    assert tick.cum_volume == 5000 and tick.base_price == 70300


def test_limits_say_one_session_and_the_switch_cost() -> None:
    broker = KiwoomOpenApiBroker(clock=SystemClock(), switch_cost=2.5)
    ref = AccountRef(1, 1, "kiwoom_openapi", "mock", "5012345611", app_key=Secret("kim"))
    lim = broker.limits(ref)
    assert (lim.capacity, lim.switch_cost, lim.can_preload, lim.rate) == (1, 2.5, False, 5.0)
