"""Which orders the modify pipeline (``execution/modifying.py``) takes: a working order that
names its price (limit, conditional, single price) - market-priced types are 409
``order.not_modifiable``, like closed orders (the broker protocol after the sessions merge)."""

from __future__ import annotations

from dataclasses import replace

import pytest

from hoga.domain.errors import Conflict
from hoga.domain.orders import OrderStatus, OrderType, Side
from hoga.execution.modifying import Modifier
from tests.unit.test_order_machine import _order

S = OrderStatus


@pytest.mark.parametrize("kind", [OrderType.LIMIT, OrderType.CONDITIONAL, OrderType.SINGLE_PRICE])
def test_priced_working_orders_can_be_modified(kind: OrderType) -> None:
    for status in (S.ACCEPTED, S.PARTIALLY_FILLED):
        order = replace(_order(10, Side.BUY, status), type=kind, broker_order_id="0001")
        Modifier._check_state(order)  # no refusal


@pytest.mark.parametrize(
    "kind",
    [
        OrderType.MARKET,
        OrderType.BEST,
        OrderType.PRIORITY,
        OrderType.PRE_CLOSE,
        OrderType.AFTER_CLOSE,
    ],
)
def test_market_priced_orders_are_not_modifiable(kind: OrderType) -> None:
    order = replace(_order(10, Side.BUY, S.ACCEPTED), type=kind, price=None, broker_order_id="1")
    with pytest.raises(Conflict) as caught:
        Modifier._check_state(order)
    assert caught.value.code == "order.not_modifiable"


def test_closed_or_unsent_orders_are_not_modifiable() -> None:
    for status, broker_id in ((S.FILLED, "1"), (S.CANCELLED, "1"), (S.ACCEPTED, None)):
        order = replace(_order(10, Side.BUY, status), broker_order_id=broker_id)
        with pytest.raises(Conflict):
            Modifier._check_state(order)
