"""Settling by hand an order reconciliation cannot settle (an admin looked at the broker).

An order left ``UNKNOWN`` across KST midnight on Kiwoom can no longer be checked (its reports
cover today only: reconciliation reports it ``unverifiable``); it would hold its reserve and
stay open for ever. An admin who has seen the broker's own app/HTS says what became of it:

* ``cancelled`` - never executed (or cancelled at the broker): ``CANCELLED``, reserve released;
* ``rejected`` - the broker refused it: ``REJECTED``, reserve released;
* ``filled`` - ``filled_qty`` shares at ``avg_price`` (won, on the KRX tick grid): booked
  through the fills' own path (``booking.book_parts``: fill row ``manual-<order id>``,
  position, cash, commission and tax, the day's P&L), then ``FILLED`` - or, for part of the
  order, ``CANCELLED`` for the rest.

Only an ``UNKNOWN`` order can be settled (409 ``order.not_unknown`` otherwise, so a repeat
books nothing). Every state change goes through the checked write (``repos.orders.apply``);
all of it and the audit entry (``order.settled_by_hand``) are one transaction.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Mapping
from typing import Any

from hoga.brokers.base import FillReport
from hoga.domain import krx
from hoga.domain.clock import Clock
from hoga.domain.errors import Conflict, InvalidInput, NotFound
from hoga.domain.market import Instrument
from hoga.domain.orders import Order, OrderStatus
from hoga.execution.booking import Booked, book_at_account_rates, fill_view, plan_for
from hoga.execution.ordercore import OrderCore
from hoga.store.db import SYSTEM, Actor, Database
from hoga.store.repos import audit
from hoga.store.repos import orders as repo

S = OrderStatus
OUTCOMES = ("cancelled", "rejected", "filled")
#: The reason code a settled order carries (its history and view say it was settled by hand).
REASON_CODE = "order.settled_by_hand"


class HandSettlement:
    """Settles ``UNKNOWN`` orders by an admin's word (see the module docstring).

    ``instrument`` names a symbol's market and kind (the tax and the tick grid); ``locks``
    are the server's per-account locks when it runs in the server (the CLI has none: the
    checked write's compare-and-set still refuses an order the server moved meanwhile);
    ``on_settled`` is told the order and the fills booked (the server publishes them).
    """

    def __init__(
        self,
        db: Database,
        clock: Clock,
        instrument: Callable[[str], Instrument | None],
        *,
        locks: Mapping[int, asyncio.Lock] | None = None,
        on_settled: Callable[[Order, list[Booked]], None] | None = None,
    ) -> None:
        self._db = db
        self._clock = clock
        self._instrument = instrument
        self._locks = locks
        self._on_settled = on_settled

    async def settle_by_hand(
        self,
        order_id: int,
        outcome: str,
        *,
        filled_qty: int | None = None,
        avg_price: int | None = None,
        reason: str,
        actor_id: int | None,
        ip: str | None,
        by: str | None = None,
    ) -> Order:
        """Settle ``order_id`` as ``outcome`` (see the module docstring); ``by`` names who
        for the audit entry when there is no admin user (the CLI)."""
        if outcome not in OUTCOMES:
            raise InvalidInput(
                f"결과는 {', '.join(OUTCOMES)} 중 하나여야 합니다 (outcome must be one of "
                f"{', '.join(OUTCOMES)})",
                "order.invalid_settlement",
            )
        if not reason.strip():
            raise InvalidInput(
                "정리 사유가 필요합니다 (a reason is required)", "order.invalid_settlement"
            )
        async with self._db.tx(SYSTEM) as conn:
            user_id = await repo.owner_of(conn, order_id)
        if user_id is None:
            raise NotFound("주문을 찾을 수 없습니다 (order not found)", "order.not_found")
        async with self._db.tx(Actor.user(user_id)) as conn:
            peek = await repo.get_order(conn, user_id, order_id)
        if peek is None:
            raise NotFound("주문을 찾을 수 없습니다 (order not found)", "order.not_found")
        lock = self._locks[peek.account_id] if self._locks is not None else None
        async with lock or contextlib.nullcontext(), self._db.tx(Actor.user(user_id)) as conn:
            order = await repo.get_order(conn, user_id, order_id)
            if order is None or order.status != S.UNKNOWN:
                state = order.status.value if order else "-"
                raise Conflict(
                    "미확인(UNKNOWN) 상태의 주문만 수동으로 정리할 수 있습니다. "
                    f"현재 상태: {state} (only an UNKNOWN order can be settled by hand; "
                    f"this one is {state})",
                    "order.not_unknown",
                )
            now = self._clock.now()
            note = f"수동 정리 (settled by hand): {reason.strip()}"
            booked: list[Booked] = []
            if outcome == "filled":
                qty, price = self._check_fill(order, filled_qty, avg_price)
                booked = await self._book(conn, order, qty, price)
                order = await repo.get_order(conn, user_id, order_id) or order
                final = S.FILLED if order.filled_qty >= order.qty else S.CANCELLED
            else:
                final = S.CANCELLED if outcome == "cancelled" else S.REJECTED
            if order.status != final:
                moved = await repo.transition(
                    conn,
                    order,
                    final,
                    now,
                    detail=f"settled by hand: {outcome}",
                    reason_code=REASON_CODE,
                    reason=note,
                    reserved_cash=0,
                )
                if moved is None:
                    raise Conflict(
                        "주문 상태가 방금 바뀌었습니다. 다시 확인하세요 "
                        "(the order changed meanwhile; look again)",
                        "order.not_unknown",
                    )
                order = moved
            await audit.record(
                conn,
                action="order.settled_by_hand",
                now=now,
                user_id=order.user_id,
                actor_id=actor_id,
                target=f"order:{order.id}",
                ip=ip,
                detail=_detail(outcome, filled_qty, avg_price, reason, by or f"admin:{actor_id}"),
            )
        if self._on_settled is not None:
            self._on_settled(order, booked)
        return order

    def _check_fill(self, order: Order, qty: int | None, price: int | None) -> tuple[int, int]:
        if qty is None or not 1 <= qty <= order.qty:
            raise InvalidInput(
                f"체결 수량은 1부터 {order.qty}까지입니다 (filled quantity must be 1..{order.qty})",
                "order.invalid_settlement",
            )
        inst = self._instrument(order.symbol)
        kind = inst.kind if inst else "stock"
        if price is None or price <= 0 or price % krx.tick_size(price, kind):
            raise InvalidInput(
                "평균 체결가는 호가단위에 맞는 양의 원 단위 가격이어야 합니다 "
                "(the average price must be whole won on the KRX tick grid)",
                "order.invalid_settlement",
            )
        return qty, price

    async def _book(self, conn: Any, order: Order, qty: int, price: int) -> list[Booked]:
        """Book the execution as the broker's report of it would be: where it leaves the
        order (cumulative quantity and amount), planned by ``domain/fills.py``."""
        # The execution happened on the order's day (the reports hoga missed were that day's).
        sent = order.submitted_at or order.created_at
        report = FillReport(
            broker_order_id=order.broker_order_id or "",
            fill_id=f"manual-{order.id}",
            symbol=order.symbol,
            side=order.side,
            qty=qty,
            price=price,
            ts=sent.timestamp(),
            client_order_id=order.client_order_id,
            cum_qty=qty,
            cum_amount=qty * price,
        )
        p = plan_for(order, report)
        if p.skip is not None:
            return []
        inst = self._instrument(order.symbol)
        return await book_at_account_rates(conn, order, report, p.parts, inst, self._clock.now())


def _detail(
    outcome: str,
    qty: int | None,
    price: int | None,
    reason: str,
    by: str,
) -> dict[str, Any]:
    return {
        "outcome": outcome,
        "qty": qty if outcome == "filled" else None,
        "price": price if outcome == "filled" else None,
        "reason": reason.strip(),
        "by": by,
    }


def in_server(core: OrderCore) -> HandSettlement:
    """Settlement inside the server: under its account locks, published to the user's event
    stream (the dashboard) like any fill and order update."""

    def publish(order: Order, booked: list[Booked]) -> None:
        core.stats["fills"] += len(booked)
        for b in booked:
            core.bus.publish(order.user_id, {"type": "fill", "fill": fill_view(order, b)})
        core.publish(order)

    return HandSettlement(
        core.db, core.clock, core.quotes.instrument, locks=core.account_locks, on_settled=publish
    )
