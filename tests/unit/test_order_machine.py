"""The order state machine (``domain.orders.evolve``): every state change of an order is an
event the machine allows, and the books it keeps on the order stay consistent whatever the
sequence of events - fills included."""

from __future__ import annotations

from datetime import date, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hoga.domain.clock import KST
from hoga.domain.orders import (
    CLOSED_UNFILLED,
    TERMINAL,
    TRANSITIONS,
    Executed,
    Identified,
    InvalidTransition,
    Modified,
    Moved,
    Order,
    OrderEvent,
    OrderStatus,
    OrderType,
    Priority,
    Side,
    evolve,
)

S = OrderStatus
T0 = datetime(2026, 12, 4, 9, 0, tzinfo=KST)


def _order(qty: int, side: Side, status: OrderStatus = S.QUEUED, reserved: int = 0) -> Order:
    return Order(
        id=1,
        user_id=1,
        account_id=1,
        strategy_id=None,
        client_order_id="c1",
        symbol="005930",
        side=side,
        type=OrderType.LIMIT,
        qty=qty,
        price=70_000,
        status=status,
        priority=Priority.NORMAL,
        urgent=False,
        source="api",
        filled_qty=0,
        filled_amount=0,
        commission=0,
        tax=0,
        reserved_cash=reserved,
        broker_order_id=None,
        broker_org_no=None,
        reason_code=None,
        reason=None,
        trading_day=date(2026, 12, 4),
        created_at=T0,
        updated_at=T0,
        submitted_at=None,
    )


events = st.one_of(
    st.builds(Moved, st.sampled_from(list(S))),
    st.builds(
        Executed,
        qty=st.integers(1, 60),
        amount=st.integers(0, 5_000_000),
        commission=st.integers(0, 1_000),
        tax=st.integers(0, 1_000),
        broker_order_id=st.sampled_from([None, "B1"]),
    ),
    st.builds(Identified, st.sampled_from(["B1", "B2"]), st.sampled_from([None, "01"])),
    st.builds(
        Modified, st.integers(1, 120), st.integers(1_000, 90_000), st.integers(0, 10_000_000)
    ),
)


@settings(max_examples=400)
@given(
    qty=st.integers(1, 100),
    side=st.sampled_from(list(Side)),
    reserved=st.integers(0, 10_000_000),
    seq=st.lists(events, max_size=25),
)
def test_any_sequence_keeps_the_order_consistent(
    qty: int, side: Side, reserved: int, seq: list[OrderEvent]
) -> None:
    order = _order(qty, side, reserved=reserved if side == Side.BUY else 0)
    now = T0
    for event in seq:
        now += timedelta(seconds=1)
        before = order
        try:
            order = evolve(before, event, now)
        except InvalidTransition:
            continue  # refused: the order is as it was (evolve is pure)
        if isinstance(event, Moved):
            assert event.status in TRANSITIONS[before.status]
            assert event.status != S.FILLED
        if isinstance(event, Executed):
            assert before.status not in {S.NEW, S.QUEUED, S.DENIED, S.FILLED}
            assert order.filled_qty == before.filled_qty + event.qty
            assert order.filled_amount == before.filled_amount + event.amount
            if before.status in TERMINAL:
                # A closed order only ever turns FILLED, when completely executed.
                assert order.status in (before.status, S.FILLED)
        if isinstance(event, Modified):
            assert before.status == S.MODIFY_PENDING and event.qty > before.filled_qty
            assert order.status in (S.ACCEPTED, S.PARTIALLY_FILLED)
            assert (order.qty, order.price) == (event.qty, event.price)
            continue  # a confirmed modify sets a new reserve
        if isinstance(event, Identified):
            assert order.status == before.status and order.updated_at == before.updated_at
        # Invariants of the books on the order.
        assert 0 <= order.filled_qty <= order.qty
        assert (order.status == S.FILLED) == (order.filled_qty == order.qty)
        assert 0 <= order.reserved_cash <= before.reserved_cash
        if order.status in TERMINAL:
            assert order.reserved_cash == 0
        if before.status == S.FILLED:
            assert order.status == S.FILLED


@given(st.sampled_from(list(S)), st.sampled_from(list(S)))
def test_moves_follow_the_transition_table(current: OrderStatus, target: OrderStatus) -> None:
    order = _order(10, Side.BUY, current, reserved=700_000)
    if target in TRANSITIONS[current] and target not in (S.FILLED, S.PARTIALLY_FILLED):
        after = evolve(order, Moved(target), T0)
        assert after.status == target
        assert after.reserved_cash == (0 if target in CLOSED_UNFILLED else 700_000)
    else:
        with pytest.raises(InvalidTransition):
            evolve(order, Moved(target), T0)


@given(
    qty=st.integers(1, 1_000),
    parts=st.lists(st.integers(1, 1_000), min_size=1, max_size=10),
    reserved=st.integers(0, 100_000_000),
)
def test_a_buy_releases_its_reserve_in_proportion_and_all_when_filled(
    qty: int, parts: list[int], reserved: int
) -> None:
    order = _order(qty, Side.BUY, S.ACCEPTED, reserved)
    for part in parts:
        part = min(part, order.remaining)
        if part == 0:
            break
        after = evolve(order, Executed(part, part * 70_000), T0)
        assert after.reserved_cash == (
            0
            if after.filled_qty == qty
            else order.reserved_cash * after.remaining // order.remaining
        )
        order = after
    assert order.status in (S.FILLED, S.PARTIALLY_FILLED)


def test_a_cancelled_order_found_completely_executed_becomes_filled() -> None:
    order = evolve(_order(10, Side.SELL, S.ACCEPTED), Executed(4, 4 * 70_000), T0)
    order = evolve(order, Moved(S.CANCEL_PENDING), T0)
    assert order.status == S.CANCEL_PENDING
    order = evolve(order, Moved(S.CANCELLED), T0)
    late = evolve(order, Executed(6, 6 * 70_000), T0)
    assert late.status == S.FILLED and late.filled_qty == 10
    with pytest.raises(InvalidTransition):
        evolve(late, Executed(1, 70_000), T0)


def test_no_execution_of_an_order_the_broker_cannot_have() -> None:
    for status in (S.QUEUED, S.DENIED, S.NEW):
        with pytest.raises(InvalidTransition):
            evolve(_order(10, Side.BUY, status), Executed(1, 70_000), T0)
