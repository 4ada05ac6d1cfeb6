"""Order placement for running strategies: what a hook asked for goes to ``OrderService``.

Contract: an order request becomes an ``OrderIntent`` with ``strategy_id`` and
``source="strategy"`` and passes through ``OrderService.submit`` - the same risk gate, queue and
limits as any order; a storage fault is retried (the client order id makes the repeat safe). A
refused order is marked ``DENIED`` in the strategy's context and said in its log; nothing a
request does can fail the strategy. Cancels that cannot be done any more are ignored.
"""

from __future__ import annotations

import functools
import logging
from typing import Any

from hoga.domain.errors import HogaError
from hoga.domain.orders import OrderIntent, OrderStatus, OrderType, Side
from hoga.execution import retry
from hoga.execution.service import OrderService
from hoga.store.db import Actor, Database
from hoga.store.repos import strategies as repo
from hoga.strategies.live_run import LiveRun

log = logging.getLogger(__name__)

SIDE_KO = {"buy": "매수", "sell": "매도"}


class OrderPlacer:
    """Submits and cancels running strategies' orders; see the module docstring."""

    def __init__(self, db: Database, orders: OrderService) -> None:
        self._db = db
        self._orders = orders

    async def submit(self, run: LiveRun, requests: list[Any]) -> None:
        """Carry out the requests a hook left in the context's outbox, in order."""
        ctx, rec = run.ctx, run.rec
        for req in requests:
            if req.action == "cancel":
                mine = ctx._orders.get(req.client_order_id)
                if mine is None or mine.order_id is None:
                    continue
                try:
                    await self._orders.cancel(rec.user_id, mine.order_id)
                except HogaError as e:
                    ctx.log.warning(
                        f"취소 실패 (cancel refused) {req.client_order_id}: {e.message}"
                    )
                continue
            intent = OrderIntent(
                symbol=req.symbol,
                side=Side(req.side),
                type=OrderType.MARKET if req.price is None else OrderType.LIMIT,
                qty=req.qty,
                price=req.price,
                account_id=rec.account_id,
                client_order_id=req.client_order_id,
                strategy_id=rec.id,
                source="strategy",
            )
            try:
                # The client order id makes a repeat safe: a submit that reached the database
                # before its fault returns the order it recorded.
                order = await retry.persist(
                    functools.partial(self._orders.submit, rec.user_id, intent),
                    what=f"strategy {rec.id}: order {req.client_order_id}",
                    attempts=4,
                )
            except HogaError as e:
                ctx._order_update(req.client_order_id, "DENIED")
                ctx.log.warning(
                    f"주문 거부 (order refused) {req.side} {req.qty} {req.symbol}: {e.message}"
                )
                continue
            except Exception:
                log.exception("strategy %s: submitting an order failed", rec.id)
                ctx._order_update(req.client_order_id, "DENIED")
                ctx.log.error(
                    f"주문 전송 실패 (order could not be submitted) {req.client_order_id}"
                )
                continue
            ctx._order_update(
                req.client_order_id,
                order.status.value,
                order_id=order.id,
                filled_qty=order.filled_qty,
            )
            if order.status != OrderStatus.DENIED:
                what = f"{req.symbol} {req.qty:,}" + (f" @ {req.price:,}" if req.price else "")
                ctx.log.info(
                    f"주문 #{order.id} {SIDE_KO.get(req.side, req.side)} {what} "
                    f"(order #{order.id} {req.side} {what})"
                )
            if order.status == OrderStatus.DENIED:
                ctx.log.warning(
                    f"주문 거부 (denied) {req.side} {req.qty} {req.symbol}: {order.reason or order.reason_code}"
                )

    async def cancel_open(self, rec: repo.StrategyRecord) -> None:
        """Cancel the strategy's open orders as the database knows them (it is not running)."""
        async with self._db.tx(Actor.user(rec.user_id)) as conn:
            rows = await repo.open_orders(conn, rec.user_id, rec.id)
        await self.cancel(rec.user_id, [int(r.id) for r in rows])

    async def cancel(self, user_id: int, order_ids: list[int]) -> None:
        for oid in order_ids:
            try:
                await self._orders.cancel(user_id, oid)
            except HogaError:
                pass  # already done, or cannot be cancelled any more
            except Exception:
                log.exception("cancelling order %s failed", oid)
