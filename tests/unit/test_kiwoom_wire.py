"""Kiwoom wire values and error envelopes: parsing rules, and what each answer means."""

from __future__ import annotations

import re
from datetime import date, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hoga.brokers.base import (
    BrokerAuthError,
    BrokerNotProcessed,
    BrokerOutcomeUnknown,
    BrokerRejected,
)
from hoga.brokers.kiwoom.errors import TokenInvalid, classify
from hoga.brokers.kiwoom.wire import (
    WireError,
    broker_code,
    external_order_id,
    parse_expires,
    parse_hms,
    split_order_id,
    to_code,
    to_int,
    to_price,
    to_qty,
    to_rate,
)
from hoga.domain.clock import KST
from hoga.fakes.kiwoom.formats import balance_code, change, padded, rate, signed


@pytest.mark.parametrize(
    ("raw", "value"),
    [
        ("+000070000", 70000),
        ("-20800", -20800),
        ("000000017598258", 17598258),
        ("0", 0),
        ("", 0),
        ("   ", 0),
        (None, 0),
        ("1,234,500", 1234500),
        (" +5 ", 5),
        (42, 42),
    ],
)
def test_to_int_reads_signed_padded_and_blank_values(raw: object, value: int) -> None:
    assert to_int(raw) == value


@pytest.mark.parametrize("raw", ["abc", "1.5", "--5", "+-3", "12a", True, 1.5, [1]])
def test_to_int_refuses_what_is_not_a_number(raw: object) -> None:
    with pytest.raises(WireError):
        to_int(raw)


def test_blank_is_an_error_when_a_value_is_required() -> None:
    with pytest.raises(WireError):
        to_int("", None)
    with pytest.raises(WireError):
        to_price(None, None)


def test_prices_drop_the_direction_sign_and_volumes_the_aggressor_sign() -> None:
    assert to_price("-000069500") == 69500
    assert to_price("+71000") == 71000
    assert to_qty("-120") == 120
    assert to_rate("-1.23") == -1.23
    assert to_rate("") == 0.0
    with pytest.raises(WireError):
        to_rate("1.2.3")


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        ("A005930", "005930"),
        ("005930", "005930"),
        (" a000660 ", "000660"),
        ("005930_NX", "005930"),
        ("039490_AL", "039490"),
        ("Q500001", "Q500001"),
    ],
)
def test_codes_lose_the_a_prefix_and_exchange_suffix(raw: str, code: str) -> None:
    assert to_code(raw) == code


@pytest.mark.parametrize("raw", ["", "5930", "0059300", "00-930", None, 5930])
def test_malformed_codes_are_refused(raw: object) -> None:
    with pytest.raises(WireError):
        to_code(raw)


@given(
    value=st.integers(min_value=0, max_value=10**13),
    base=st.integers(min_value=1, max_value=10**7),
    width=st.integers(min_value=0, max_value=18),
)
def test_signed_and_padded_prices_round_trip(value: int, base: int, width: int) -> None:
    """Whatever sign and padding the broker puts on a price, the parser gets the price back."""
    assert to_price(signed(value, base, width)) == value
    assert to_int(padded(value, width)) == value


@given(st.integers(min_value=-(10**12), max_value=10**12))
def test_signed_differences_and_padded_negatives_round_trip(value: int) -> None:
    assert to_int(change(value)) == value
    assert to_int(padded(value, 15)) == value


@given(part=st.integers(-(10**9), 10**9), whole=st.integers(1, 10**9))
def test_rates_parse_to_two_decimals(part: int, whole: int) -> None:
    text = rate(part, whole)
    assert abs(to_rate(text) - part * 100 / whole) < 0.01 + 1e-9


@given(st.from_regex(r"[0-9]{6}", fullmatch=True))
def test_balance_codes_round_trip(code: str) -> None:
    assert to_code(balance_code(code)) == code


@given(st.text(max_size=20))
def test_to_int_accepts_exactly_signed_digit_strings(text: str) -> None:
    """Any text either parses to the number it spells or is refused with WireError."""
    cleaned = text.strip().replace(",", "")
    if not cleaned:
        assert to_int(text) == 0
    elif re.fullmatch(r"[+-]?\d+", cleaned):
        assert to_int(text) == int(cleaned)
    else:
        with pytest.raises(WireError):
            to_int(text)


@pytest.mark.parametrize(
    ("rc", "msg", "code"),
    [
        (3, "인증에 실패했습니다[8005:Token이 유효하지 않습니다]", "8005"),
        (8005, "Token이 유효하지 않습니다", "8005"),
        (
            5,
            "허용된 요청 개수를 초과하였습니다[1700:허용된 요청 개수를 초과하였습니다. API ID=kt10000]",
            "1700",
        ),
        (2, "[2000](855056:매수증거금이 부족합니다. 6주 매수가능)", "855056"),
        (2, "[2000](800033:모의투자 매도가능수량이 부족합니다.)", "800033"),
        (1, "인증 실패 CODE=8005", "8005"),
        (0, "정상적으로 처리되었습니다", None),
        (None, "", None),
        (1511, "필수 입력 값에 값이 존재하지 않습니다", "1511"),
    ],
)
def test_broker_code_finds_the_detail_in_either_envelope(
    rc: int | None, msg: str, code: str | None
) -> None:
    assert broker_code(rc, msg) == code


def test_classify_success_and_the_four_outcomes() -> None:
    ok = {"return_code": 0, "return_msg": "매수주문이 완료되었습니다.", "ord_no": "0000024"}
    assert classify(200, ok, order=True) is None
    # A string return_code is still a return_code.
    assert classify(200, {"return_code": "0", "return_msg": ""}, order=False) is None

    throttled = {
        "return_code": 5,
        "return_msg": "허용된 요청 개수를 초과하였습니다[1700:API ID=kt10000]",
    }
    for status in (200, 429):
        err = classify(status, throttled, order=True)
        assert isinstance(err, BrokerNotProcessed) and err.code == "kiwoom.1700"
    assert isinstance(classify(429, None, order=True), BrokerNotProcessed)

    for body in (
        {"return_code": 3, "return_msg": "인증에 실패했습니다[8005:Token이 유효하지 않습니다]"},
        {"return_code": 8005, "return_msg": "Token이 유효하지 않습니다"},
    ):
        assert isinstance(classify(200, body, order=True), TokenInvalid)

    reject = classify(
        200,
        {"return_code": 2, "return_msg": "[2000](855056:매수증거금이 부족합니다. 6주 매수가능)"},
        order=True,
    )
    assert isinstance(reject, BrokerRejected)
    assert reject.code == "kiwoom.855056"
    assert "매수증거금이 부족합니다" in reject.message and "855056" in reject.message

    for code in ("8001", "8002", "8030", "8031"):
        err = classify(200, {"return_code": 3, "return_msg": f"실패[{code}:x]"}, order=False)
        assert isinstance(err, BrokerAuthError) and not isinstance(err, TokenInvalid)
        assert err.code == f"kiwoom.{code}"


def test_doubt_on_an_order_is_unknown_but_on_a_query_is_an_error() -> None:
    for status, body in [(500, None), (200, None), (502, {"return_code": 0}), (200, {"x": 1})]:
        assert isinstance(classify(status, body, order=True), BrokerOutcomeUnknown)
        err = classify(status, body, order=False)
        assert err is not None and not isinstance(err, BrokerOutcomeUnknown)
    assert isinstance(
        classify(200, {"return_code": 1999, "return_msg": "예상치 못한 에러"}, order=True),
        BrokerOutcomeUnknown,
    )


def test_expiry_is_kst() -> None:
    ts = parse_expires("20261127093000")
    assert datetime.fromtimestamp(ts, KST) == datetime(2026, 11, 27, 9, 30, tzinfo=KST)
    with pytest.raises(WireError):
        parse_expires("2026-11-27")
    day = date(2026, 11, 26)
    assert parse_hms("101530", day) == datetime(2026, 11, 26, 10, 15, 30, tzinfo=KST).timestamp()
    assert parse_hms("", day) is None
    assert parse_hms("256000", day) is None


def test_order_ids_carry_the_day_because_numbers_restart_daily() -> None:
    today = date(2026, 11, 26)
    oid = external_order_id(today, "0000139")
    assert oid == "20261126-0000139"
    assert split_order_id(oid, today) == ("20261126", "0000139")
    assert split_order_id("0000139", today) == ("20261126", "0000139")
