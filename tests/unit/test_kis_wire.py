"""KIS wire rules: account numbers, order numbers, realtime frames and AES."""

from __future__ import annotations

from datetime import date, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hoga.brokers.kis import wire
from hoga.brokers.kis.realtime import ws_endpoint
from hoga.domain.clock import KST
from hoga.fakes.kis import frames

printable = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="^|"), max_size=40
)


@given(st.from_regex(r"\d{8}", fullmatch=True), st.from_regex(r"\d{2}", fullmatch=True))
def test_account_numbers_split_with_or_without_the_dash(cano: str, prdt: str) -> None:
    assert wire.split_account(f"{cano}-{prdt}") == (cano, prdt)
    assert wire.split_account(cano + prdt) == (cano, prdt)


@pytest.mark.parametrize("bad", ["1234", "5012345601x", "50123456-1", "abcdefgh-01", ""])
def test_malformed_account_numbers_are_refused(bad: str) -> None:
    with pytest.raises(ValueError, match="8 digits"):
        wire.split_account(bad)


@given(st.integers(min_value=0, max_value=10**10 - 1), st.integers(min_value=0, max_value=4))
def test_order_numbers_compare_equal_however_padded(n: int, pad: int) -> None:
    plain = wire.norm_order_no(str(n))
    assert wire.norm_order_no(f"{n:010d}") == plain
    assert wire.norm_order_no("0" * pad + str(n)) == plain
    assert wire.norm_order_no(plain) == plain


@given(st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=300))
def test_aes_round_trip_between_the_fake_and_the_adapter(text: str) -> None:
    key, iv = "k" * 16 + "K" * 16, "0123456789abcdef"
    enc = frames.frame("H0STCNI0", [{"CUST_ID": text}], ("CUST_ID",), key_iv=(key, iv))
    parsed = wire.parse_frame(enc)
    assert parsed is not None and parsed[0] is True and parsed[1] == "H0STCNI0"
    assert wire.aes_decrypt(key, iv, parsed[3]) == text


@given(st.lists(st.lists(printable, min_size=3, max_size=3), min_size=1, max_size=9))
def test_multi_record_frames_split_back_into_records(recs: list[list[str]]) -> None:
    layout = ("A", "B", "C")
    text = frames.frame("H0STCNT0", [dict(zip(layout, r, strict=True)) for r in recs], layout)
    parsed = wire.parse_frame(text)
    assert parsed is not None
    _, tr, count, payload = parsed
    assert (tr, count) == ("H0STCNT0", len(recs))
    assert wire.records(payload, count, 3) == recs


def test_layouts_match_the_reference_field_counts() -> None:
    assert len(wire.TRADE_FIELDS) == 46 and tuple(wire.TRADE_FIELDS) == frames.TRADE_LAYOUT
    assert len(wire.BOOK_FIELDS) == 59 and tuple(wire.BOOK_FIELDS) == frames.BOOK_LAYOUT
    assert len(wire.NOTICE_FIELDS) == 26 and tuple(wire.NOTICE_FIELDS) == frames.NOTICE_LAYOUT


@given(st.dates(min_value=date(2000, 1, 1), max_value=date(2099, 12, 31)), st.times())
def test_kst_timestamps_round_trip(d: date, t: object) -> None:
    hhmmss = t.strftime("%H%M%S")  # type: ignore[attr-defined]
    ts = wire.kst_ts(d.strftime("%Y%m%d"), hhmmss)
    back = datetime.fromtimestamp(ts, KST)
    assert back.date() == d and back.strftime("%H%M%S") == hhmmss


@given(st.integers(min_value=-(10**12), max_value=10**12))
def test_numbers_as_strings(n: int) -> None:
    assert wire.to_int(str(n)) == n
    assert wire.to_int(f"{n}.0000") == n
    assert wire.to_int("") == 0 and wire.to_int(None, 7) == 7 and wire.to_int("x", 3) == 3


def test_websocket_urls_get_the_tryitout_path_once() -> None:
    assert (
        ws_endpoint("ws://ops.koreainvestment.com:21000")
        == "ws://ops.koreainvestment.com:21000/tryitout"
    )
    assert ws_endpoint("ws://127.0.0.1:5000/") == "ws://127.0.0.1:5000/tryitout"
    assert ws_endpoint("ws://127.0.0.1:5000/tryitout") == "ws://127.0.0.1:5000/tryitout"


def test_tr_ids_for_real_and_mock() -> None:
    assert wire.tr_id("buy", "real") == "TTTC0012U" and wire.tr_id("buy", "mock") == "VTTC0012U"
    assert wire.tr_id("sell", "mock") == "VTTC0011U"
    assert wire.tr_id("psbl_rvsecncl", "mock") is None
    assert wire.tr_id("price", "mock") == "FHKST01010100"
