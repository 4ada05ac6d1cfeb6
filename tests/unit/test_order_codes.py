"""Order-type codes on the wire (kis.md §4 ORD_DVSN, kiwoom.md A4 trde_tp) and the modify
rule (``domain.orders.check_modify``)."""

from __future__ import annotations

import pytest

from hoga.brokers.kis import wire as kis_wire
from hoga.brokers.kiwoom import wire as kiwoom_wire
from hoga.domain.orders import InvalidModify, OrderType, TimeInForce, check_modify
from hoga.fakes.kis.exchange import ORD_KINDS
from hoga.fakes.kiwoom.exchange import TRADE_TYPE_TEXT, TRADE_TYPES

T, TIF = OrderType, TimeInForce

KIS = {
    "00": (T.LIMIT, TIF.DAY),
    "01": (T.MARKET, TIF.DAY),
    "02": (T.CONDITIONAL, TIF.DAY),
    "03": (T.BEST, TIF.DAY),
    "04": (T.PRIORITY, TIF.DAY),
    "05": (T.PRE_CLOSE, TIF.DAY),
    "06": (T.AFTER_CLOSE, TIF.DAY),
    "07": (T.SINGLE_PRICE, TIF.DAY),
    "11": (T.LIMIT, TIF.IOC),
    "12": (T.LIMIT, TIF.FOK),
    "13": (T.MARKET, TIF.IOC),
    "14": (T.MARKET, TIF.FOK),
    "15": (T.BEST, TIF.IOC),
    "16": (T.BEST, TIF.FOK),
}
KIWOOM = {
    "0": (T.LIMIT, TIF.DAY),
    "3": (T.MARKET, TIF.DAY),
    "5": (T.CONDITIONAL, TIF.DAY),
    "6": (T.BEST, TIF.DAY),
    "7": (T.PRIORITY, TIF.DAY),
    "10": (T.LIMIT, TIF.IOC),
    "13": (T.MARKET, TIF.IOC),
    "16": (T.BEST, TIF.IOC),
    "20": (T.LIMIT, TIF.FOK),
    "23": (T.MARKET, TIF.FOK),
    "26": (T.BEST, TIF.FOK),
    "61": (T.PRE_CLOSE, TIF.DAY),
    "62": (T.SINGLE_PRICE, TIF.DAY),
    "81": (T.AFTER_CLOSE, TIF.DAY),
}


@pytest.mark.parametrize(("code", "kind"), sorted(KIS.items()))
def test_kis_ord_dvsn(code: str, kind: tuple[OrderType, TimeInForce]) -> None:
    assert kis_wire.ord_dvsn(*kind) == code
    assert kis_wire.ORD_TYPE_OF[code] == kind[0]
    assert ORD_KINDS[code] == kind  # the fake reads them the same way


@pytest.mark.parametrize(("code", "kind"), sorted(KIWOOM.items()))
def test_kiwoom_trde_tp(code: str, kind: tuple[OrderType, TimeInForce]) -> None:
    assert kiwoom_wire.trde_tp(*kind) == code
    assert TRADE_TYPES[code] == kind
    # The type text the fake shows reads back as the same type in the adapter.
    assert kiwoom_wire.type_of_text(TRADE_TYPE_TEXT[code]) == kind[0]


def test_no_code_for_combinations_krx_does_not_have() -> None:
    assert kis_wire.ord_dvsn(T.PRIORITY, TIF.IOC) is None
    assert kiwoom_wire.trde_tp(T.SINGLE_PRICE, TIF.FOK) is None


def test_check_modify() -> None:
    assert check_modify(10, 4, 70_000, 8, None) == (8, 70_000)
    assert check_modify(10, 0, 70_000, None, 69_900) == (10, 69_900)
    for args, why in [
        ((10, 4, 70_000, None, None), "nothing to modify"),
        ((10, 4, 70_000, 4, None), "exceed the filled"),
        ((10, 4, 70_000, 11, None), "cannot add shares"),
        ((10, 4, 70_000, 10, 70_000), "changes nothing"),
        ((10, 0, None, 5, None), "needs a price"),
    ]:
        with pytest.raises(InvalidModify, match=why):
            check_modify(*args)
