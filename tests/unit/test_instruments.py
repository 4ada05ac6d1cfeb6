"""The instrument master: KIS master-file parsing against the fake's writer and a hand-made
line, Kiwoom ka10099 rows, the risk gate's halt and designation rules (the sync against a
database: tests/integration/test_instrument_sync.py)."""

from __future__ import annotations

import io
import zipfile
from dataclasses import replace

import pytest

from hoga.brokers.kis.master import MasterError, parse_mst, parse_zip
from hoga.brokers.kiwoom.market import listing_from
from hoga.domain.market import Instrument
from hoga.domain.orders import OrderIntent, OrderType, Side
from hoga.execution import risk
from hoga.fakes.master import (
    KOSDAQ_TAIL,
    KOSPI_TAIL,
    generate_master,
    kis_mst,
    kis_mst_zip,
    kiwoom_row,
)
from hoga.marketdata.universe import bundled_universe
from tests.unit.test_risk import inputs


def test_generated_master_is_realistic_and_holds_the_bundle() -> None:
    m = generate_master()
    assert len(m) >= 2800 and len({x.symbol for x in m}) == len(m)
    symbols = {x.symbol for x in m}
    assert {i.symbol for i in bundled_universe()} <= symbols and "095340" in symbols
    kinds = {x.kind for x in m}
    assert kinds == {"stock", "etf", "etn"}
    assert any(x.group == "RT" for x in m)
    assert sum(x.halted for x in m) > 5
    assert {x.designation for x in m} >= {"caution", "warning", "risk", "admin", "liquidation"}
    assert generate_master() is m  # seeded and cached


def test_kis_master_round_trips_every_field_hoga_reads() -> None:
    m = generate_master()
    parsed = parse_zip(kis_mst_zip(m, "KOSPI"), "KOSPI") + parse_zip(
        kis_mst_zip(m, "KOSDAQ"), "KOSDAQ"
    )
    assert len(parsed) == len(m)
    by = {x.symbol: x for x in m}
    for x in parsed:
        assert replace(x, nxt=by[x.symbol].nxt) == by[x.symbol]


def test_a_hand_made_kospi_line_is_read_by_position() -> None:
    """Independent of the fake's writer: fields placed by the official widths."""
    widths = dict(KOSPI_TAIL)
    tail = {name: " " * w for name, w in KOSPI_TAIL}
    tail.update(
        group="EF", base_price="000012345", halted="Y", liquidation="N", admin="N",
        warning="02", listed_on="20200102", listed_shares="000000000001500",
    )  # fmt: skip
    text = "".join(tail[name].ljust(widths[name]) for name, _ in KOSPI_TAIL)
    assert len(text) == 227
    line = "069500   KR7069500007KODEX 200" + text + "\n"
    (x,) = parse_mst(line.encode("cp949"), "KOSPI")
    assert (x.symbol, x.std_code, x.name, x.kind, x.group) == (
        "069500", "KR7069500007", "KODEX 200", "etf", "EF",
    )  # fmt: skip
    assert (x.base_price, x.halted, x.warning, x.listed_on, x.listed_shares) == (
        12345, True, "warning", "20200102", 1_500_000,
    )  # fmt: skip
    assert sum(w for _, w in KOSDAQ_TAIL) == 221


def test_a_korean_name_in_cp949_and_short_lines() -> None:
    m = [x for x in generate_master() if x.market == "KOSDAQ"][:3]
    data = kis_mst(m, "KOSDAQ") + b"short line\n"
    parsed = parse_mst(data, "KOSDAQ")
    assert [x.name for x in parsed] == [x.name for x in m]


def test_not_a_zip_is_a_master_error() -> None:
    with pytest.raises(MasterError):
        parse_zip(b"<html>not found</html>", "KOSPI")
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("readme.txt", "nothing")
    with pytest.raises(MasterError):
        parse_zip(buf.getvalue(), "KOSPI")


def test_kiwoom_rows_become_listings() -> None:
    for x in generate_master()[:400]:
        row = kiwoom_row(x)
        assert all(isinstance(v, str) for v in row.values())
        got = listing_from(row, row["marketCode"])
        assert got is not None
        assert (got.symbol, got.name, got.kind, got.halted, got.designation) == (
            x.symbol, x.name, x.kind, x.halted, x.designation,
        )  # fmt: skip
        assert (got.base_price, got.listed_shares, got.nxt) == (
            x.base_price, x.listed_shares, x.nxt,
        )  # fmt: skip
    assert listing_from({"code": "!!"}, "0") is None


# --- the risk gate


def _inst(**kw: object) -> Instrument:
    return replace(Instrument("095340", "ISC", "KOSDAQ", "stock", 61_200), **kw)  # type: ignore[arg-type]


def _buy() -> OrderIntent:
    return OrderIntent("095340", Side.BUY, OrderType.LIMIT, 1, 61_200)


def test_a_halted_symbol_is_refused_both_ways() -> None:
    for intent in (_buy(), OrderIntent("095340", Side.SELL, OrderType.LIMIT, 1, 61_200)):
        d = risk.check(inputs(intent=intent, instrument=_inst(halted=True), held_qty=5))
        assert not d.ok and d.code == "risk.symbol_halted"


def test_designation_policy_refuses_warns_or_allows_buys_never_sells() -> None:
    policy = risk.parse_designation_policy(risk.DEFAULT_DESIGNATION_POLICY)
    expect = {"caution": "ok", "warning": "warn", "admin": "warn", "risk": "refuse",
              "liquidation": "refuse"}  # fmt: skip
    for designation, outcome in expect.items():
        inst = _inst(designation=designation)
        d = risk.check(inputs(intent=_buy(), instrument=inst, designation_policy=policy))
        if outcome == "refuse":
            assert not d.ok and d.code == "risk.designated", designation
        else:
            assert d.ok, designation
            assert bool(d.warning) == (outcome == "warn"), designation
        sell = OrderIntent("095340", Side.SELL, OrderType.LIMIT, 1, 61_200)
        d = risk.check(inputs(intent=sell, instrument=inst, designation_policy=policy, held_qty=3))
        assert d.ok, designation
    # No policy at all: everything allowed.
    assert risk.check(inputs(intent=_buy(), instrument=_inst(designation="risk"))).ok


def test_designation_policy_parsing_names_the_mistake() -> None:
    assert risk.parse_designation_policy("risk=allow, admin=refuse") == {
        "risk": "allow",
        "admin": "refuse",
    }
    with pytest.raises(ValueError, match="unknown designation"):
        risk.parse_designation_policy("scary=refuse")
    with pytest.raises(ValueError, match="allow, warn or refuse"):
        risk.parse_designation_policy("risk=maybe")
