"""Modify (정정): a new price and/or total quantity for a working order, through the pipeline.

A modify is a broker request like a cancel. ``request`` (intake) checks the body, runs the
pure risk gate on the order as it would be (the new price for what would remain, against the
cash and shares the order itself no longer holds back), and records ``MODIFY_PENDING`` with
the larger of the old and new reserves, then queues a ``Kind.MODIFY`` request that the
dispatcher paces like any other. ``send`` calls the adapter's ``modify`` and maps its four
outcomes: an acknowledgement -> ``Modified`` (the order works on at the new price and
quantity, holding the new reserve); ``BrokerRejected`` -> back to ``ACCEPTED`` /
``PARTIALLY_FILLED`` unchanged, with the broker's reason; ``BrokerNotProcessed`` -> queued
again after its back-off; anything else -> left ``MODIFY_PENDING`` for reconciliation, which
``settle``s it from the broker's report (new price and quantity: confirmed; otherwise:
unchanged). Fills arriving meanwhile are booked as usual (the order stays ``MODIFY_PENDING``).

The requested change lives in memory until it is answered. A restart with an order still
``MODIFY_PENDING`` puts it back to working, unchanged, and asks reconciliation to look (the
broker's report is the truth about fills; a modify that did reach the broker before the
crash is then not reflected in hoga's price - recorded in docs/architecture.md).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, replace
from functools import partial
from typing import Any

from hoga.brokers.base import (
    BrokerError,
    BrokerNotProcessed,
    BrokerRejected,
    ModifyAck,
    ModifyRequest,
    OrderStatusReport,
)
from hoga.domain import krx
from hoga.domain.errors import Conflict, InvalidInput, NotFound
from hoga.domain.orders import (
    InvalidModify,
    Modified,
    Order,
    OrderIntent,
    OrderStatus,
    Priority,
    Side,
    check_modify,
)
from hoga.execution import risk
from hoga.execution.ordercore import OrderCore
from hoga.execution.queue import Kind, QueueItem
from hoga.execution.riskinputs import RiskReader
from hoga.execution.validation import check_price, check_qty
from hoga.security.auth import AuthService
from hoga.store.db import Actor
from hoga.store.repos import accounts as accounts_repo
from hoga.store.repos import audit
from hoga.store.repos import orders as repo

log = logging.getLogger(__name__)

S = OrderStatus
BAD = "order.invalid_modify"
MODIFIABLE = (S.ACCEPTED, S.PARTIALLY_FILLED)


def _remaining_at(order: Order, qty: int, price: int | None) -> OrderIntent:
    """The order as a modify would leave it: what remains of a total of ``qty`` shares (less
    those filled) at ``price``, as an intent for the risk gate and the reserve."""
    return OrderIntent(
        symbol=order.symbol,
        side=order.side,
        type=order.type,
        qty=qty - order.filled_qty,
        price=price,
        account_id=order.account_id,
        client_order_id=order.client_order_id,
        tif=order.tif,
        venue=order.venue,
    )


@dataclass(frozen=True, slots=True)
class Modification:
    """A modify asked and not yet answered: the order's new total quantity and price."""

    qty: int
    price: int | None


class Modifier:
    """Modify requests from intake to the broker's answer (see the module docstring)."""

    def __init__(self, core: OrderCore, auth: AuthService, risk_reader: RiskReader) -> None:
        self._core = core
        self._auth = auth
        self._risk = risk_reader
        #: Order id -> the change asked, until it is answered and recorded.
        self.pending: dict[int, Modification] = {}
        #: Orders whose modify is at a broker call right now (reconciliation waits for it).
        self.sending: set[int] = set()

    # ------------------------------------------------------------------ intake

    async def request(
        self,
        user_id: int,
        order_id: int,
        *,
        price: int | None,
        quantity: int | None,
        ip: str | None = None,
    ) -> Order:
        """Ask for a modify; the order comes back ``MODIFY_PENDING`` (202)."""
        core = self._core
        order = await core.load(user_id, order_id)
        if order is None:
            raise NotFound("주문을 찾을 수 없습니다 (no such order)", "order.not_found")
        if price is None and quantity is None:
            raise InvalidInput(
                "가격이나 수량 중 하나는 바꿔야 합니다 (give price or quantity)", BAD
            )
        if quantity is not None:
            check_qty(quantity, BAD)
        if price is not None:
            check_price(price, BAD)
        self._check_state(order)
        user = await self._auth.user(user_id)
        tier = await self._auth.tier(user.tier)
        inst = core.quotes.instrument(order.symbol)
        if inst is None:
            raise Conflict("종목 정보가 없습니다 (unknown symbol)", "order.not_modifiable")
        now = core.clock.now()
        async with core.account_locks[order.account_id], core.db.tx(Actor.user(user_id)) as conn:
            order = await core.reload(conn, order)
            self._check_state(order)
            # The one rule for a modify's terms (also the brokers'): the new total quantity
            # above the filled part and never more shares, a price, and some change.
            try:
                new_qty, new_price = check_modify(
                    order.qty, order.filled_qty, order.price, quantity, price
                )
            except InvalidModify as e:
                raise InvalidInput(str(e), BAD) from None
            acct = await accounts_repo.require_account(conn, user_id, order.account_id)
            intent = _remaining_at(order, new_qty, new_price)
            day, mono = krx.trading_date(now), core.clock.monotonic()
            inputs = await self._risk.read(conn, user, tier, acct, intent, inst, day, mono)
            # Weighed as the order would stand: what it holds back now is freed for it, and a
            # modify is not another trade of the day.
            inputs = replace(
                inputs,
                reserved_cash=inputs.reserved_cash - order.reserved_cash,
                open_sell_qty=inputs.open_sell_qty
                - (order.remaining if order.side == Side.SELL else 0),
                trades_today=0,
                duplicate=False,
            )
            decision = risk.check(inputs)
            if not decision.ok:
                raise InvalidInput(decision.message, BAD, reason_code=decision.code)
            moved = await repo.transition(
                conn,
                order,
                S.MODIFY_PENDING,
                now,
                detail=f"modify requested: qty {new_qty}, price {new_price}",
                reserved_cash=max(order.reserved_cash, decision.reserved_cash),
            )
            if moved is None:
                raise Conflict(
                    "주문 상태가 방금 바뀌었습니다. 다시 시도하세요 (order changed; retry)",
                    "order.changed",
                )
            await audit.record(
                conn,
                action="order.modify",
                now=now,
                user_id=user_id,
                ip=ip,
                target=f"order:{order.id}",
                detail={"qty": new_qty, "price": new_price, "was": [order.qty, order.price]},
            )
        self.pending[order.id] = Modification(new_qty, new_price)
        core.enqueue(moved, acct.broker, Kind.MODIFY, Priority.URGENT)
        core.publish(moved)
        return moved

    @staticmethod
    def _check_state(order: Order) -> None:
        if order.status not in MODIFIABLE or not order.broker_order_id:
            raise Conflict(
                f"지금은 정정할 수 없는 주문입니다 ({order.status.value}) "
                "(only a working order can be modified)",
                "order.not_modifiable",
            )
        if not order.type.needs_price:
            # Brokers modify only orders that name their price (limit, conditional, single
            # price); a market-priced order is cancelled and placed again instead.
            raise Conflict(
                f"가격을 지정하지 않는 주문은 정정할 수 없습니다 ({order.type.value}) "
                "(only limit, conditional and single-price orders can be modified)",
                "order.not_modifiable",
            )

    # ------------------------------------------------------------------ sending

    async def send(self, item: QueueItem) -> None:
        """Carry out one modify request (called through ``Sender.send``)."""
        core = self._core
        order = await core.load(item.user_id, item.order_id)
        if order is None or order.status != S.MODIFY_PENDING or not order.broker_order_id:
            self.pending.pop(item.order_id, None)
            return
        mod = self.pending.get(order.id)
        if mod is None or mod.qty <= order.filled_qty:
            # The change is lost (cannot happen in one process) or overtaken by executions.
            await core.record(order, "modify abandonment", partial(self.revert, order, None))
            return
        ref = await core.accounts.ref_for(order.user_id, order.account_id)
        broker = core.accounts.broker_for(ref.broker)
        price = mod.price if mod.price is not None else order.price
        assert price is not None  # only priced orders are modified (``_check_state``)
        # Until the answer is recorded, reconciliation leaves the order alone (``settle``).
        self.sending.add(order.id)
        try:
            await self._call(item, order, mod, ref, broker, price)
        finally:
            self.sending.discard(order.id)

    async def _call(
        self, item: QueueItem, order: Order, mod: Modification, ref: Any, broker: Any, price: int
    ) -> None:
        core = self._core
        assert order.broker_order_id is not None
        request = ModifyRequest(
            broker_order_id=order.broker_order_id,
            symbol=order.symbol,
            side=order.side,
            type=order.type,
            qty=order.qty,  # the order as hoga knows it now
            price=order.price,
            new_qty=mod.qty,
            new_price=price,
            venue=order.venue.value,
        )
        try:
            ack: ModifyAck = await asyncio.wait_for(
                broker.modify(ref, request), core.policy.submit_timeout
            )
        except BrokerNotProcessed as e:
            core.queue.defer(item, e.retry_after)
            return
        except BrokerRejected as e:
            if await core.record(order, "modify refusal", partial(self.revert, order, e)):
                self.pending.pop(order.id, None)
            return
        except (TimeoutError, BrokerError, OSError):
            # Outcome unknown: the broker's report settles it (``settle``); never resent.
            core.on_unknown(order.account_id)
            return
        # The order keeps its id (``ack.broker_order_id``); the broker's own number for the
        # modify is only recorded in the order's history.
        no = ack.modify_order_no
        detail = "modified" if not no else f"modified (broker modify no. {no})"
        confirm = partial(self.confirm, order, mod, detail)
        if await core.record(order, "modify confirmation", confirm):
            self.pending.pop(order.id, None)

    # ------------------------------------------------------------------ outcomes

    async def confirm(
        self, order: Order, mod: Modification, detail: str = "modified"
    ) -> Order | None:
        """The broker applied the modify: the order works on at the new price and quantity."""
        return await self._settle_with(order, mod, detail)

    async def revert(self, order: Order, refusal: BrokerRejected | None) -> Order | None:
        """The modify did not happen: the order works on unchanged."""
        if refusal is None:
            return await self._settle_with(order, None, "modify not applied")
        return await self._settle_with(
            order,
            None,
            f"modify refused: {refusal.code}",
            reason_code=refusal.code,
            reason=f"정정 거부: {refusal.message}",
        )

    async def _settle_with(
        self, order: Order, mod: Modification | None, detail: str, **values: Any
    ) -> Order | None:
        core = self._core
        async with (
            core.account_locks[order.account_id],
            core.db.tx(Actor.user(order.user_id)) as conn,
        ):
            fresh = await core.reload(conn, order)
            if fresh.status != S.MODIFY_PENDING:
                return None  # executed in full, cancelled or settled meanwhile
            acct = await accounts_repo.get_account(conn, fresh.user_id, fresh.account_id)
            rate = acct.commission_rate if acct else krx.DEFAULT_COMMISSION_RATE
            now = core.clock.now()
            if mod is not None and mod.qty > fresh.filled_qty:
                reserve = self._reserve(fresh, mod.qty, mod.price, rate)
                event = Modified(mod.qty, mod.price, reserve)
                moved = await repo.apply(conn, fresh, event, now, detail=detail)
            else:
                back = S.PARTIALLY_FILLED if fresh.filled_qty else S.ACCEPTED
                reserve = self._reserve(fresh, fresh.qty, fresh.price, rate)
                moved = await repo.transition(
                    conn, fresh, back, now, detail=detail, reserved_cash=reserve, **values
                )
        if moved is not None:
            core.publish(moved)
        return moved

    def _reserve(self, order: Order, qty: int, price: int | None, rate: Any) -> int:
        """What the order holds back for its remaining ``qty - filled`` at ``price``."""
        inst = self._core.quotes.instrument(order.symbol)
        if order.side != Side.BUY or inst is None:
            return 0 if order.side != Side.BUY else order.reserved_cash
        return risk.reserve_for(_remaining_at(order, qty, price), inst, rate)

    # ------------------------------------------------------------------ reconciliation

    async def settle(self, order: Order, rep: OrderStatusReport) -> Order | None:
        """A ``MODIFY_PENDING`` order the broker reports working: confirmed if the report shows
        the new price and quantity, else unchanged - unless the modify is still on its way."""
        if order.id in self.sending or self._core.queue.contains(order.id, Kind.MODIFY):
            return None
        mod = self.pending.get(order.id)
        if mod is not None and (rep.qty, rep.price) == (mod.qty, mod.price):
            moved = await self.confirm(order, mod)
        else:
            moved = await self.revert(order, None)
        if moved is not None:
            self.pending.pop(order.id, None)
        return moved

    async def abandon(self, order: Order) -> Order | None:
        """After a restart: nothing remembers the change asked; the order works on unchanged
        and reconciliation is asked to compare it with the broker."""
        moved = await self.revert(order, None)
        self._core.on_unknown(order.account_id)
        return moved
