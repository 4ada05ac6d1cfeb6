"""Sending: one queued request carried out against its broker (called by the dispatcher).

A place request is *claimed* first - the order is written ``SUBMITTING`` before the adapter is
called, so a crash mid-call leaves a trace that reconciliation settles. The adapter's four
outcomes map to states: an acknowledgement -> ``ACCEPTED`` (recorded through
``ExecutionEvents.acknowledged``, which owns the race with the order's execution events),
``BrokerRejected`` -> ``REJECTED``, ``BrokerNotProcessed`` -> back to ``QUEUED`` (deferred),
anything else -> ``UNKNOWN`` (reconciliation decides; never resent). Cancels follow the same
discipline from ``CANCEL_PENDING``.

The queue and the database never disagree for long: a request that could not get past the
database before reaching the broker goes back in the queue (deferred, visible), and a broker
answer that could not be recorded is retried, then left to reconciliation.
"""

from __future__ import annotations

import asyncio
import logging
from functools import partial

from hoga.brokers.base import BrokerError, BrokerNotProcessed, BrokerRejected, PlaceRequest
from hoga.domain.errors import NotFound, StorageUnavailable
from hoga.domain.orders import Order, OrderStatus
from hoga.execution import retry
from hoga.execution.executions import ExecutionEvents
from hoga.execution.modifying import Modifier
from hoga.execution.ordercore import OrderCore
from hoga.execution.queue import Kind, QueueItem
from hoga.store.db import Actor
from hoga.store.repos import orders as repo

log = logging.getLogger(__name__)

S = OrderStatus


class Sender:
    """Carries out queued requests (see the module docstring).

    ``inflight`` holds (order id, kind) of requests handed to ``send`` and not finished;
    ``cancels_sent`` the orders whose cancel reached a broker call in this process (the queue
    resync leaves both alone).
    """

    def __init__(self, core: OrderCore, events: ExecutionEvents, modifier: Modifier) -> None:
        self._core = core
        self._events = events
        self._modifier = modifier
        self.inflight: set[tuple[int, Kind]] = set()
        self.cancels_sent: set[int] = set()

    async def send(self, item: QueueItem) -> None:
        """Carry out one queued request against its broker."""
        key = (item.order_id, item.kind)
        self.inflight.add(key)
        try:
            if item.kind == Kind.PLACE:
                await self._send_place(item)
            elif item.kind == Kind.MODIFY:
                await self._modifier.send(item)
            else:
                await self._send_cancel(item)
        except StorageUnavailable as e:
            delay = retry.backoff(item.attempts)
            item.attempts += 1
            log.warning(
                "order %s: %s not sent yet, storage fault (%s); again in %.1f s",
                item.order_id,
                item.kind.value,
                e.code,
                delay,
            )
            self._core.queue.defer(item, delay)
        except Exception:
            log.exception("sending %s for order %s failed unexpectedly", item.kind, item.order_id)
        finally:
            self.inflight.discard(key)

    async def _claim(self, item: QueueItem) -> Order | None:
        """Mark a queued order SUBMITTING (persisted before any broker call); None if it is no
        longer queued (cancelled meanwhile).

        The order as it was queued (``item.expected``) is tried first: the compare-and-set on
        its state and executed quantity is the check, and its RETURNING row the order, so the
        row is read only when it moved on meanwhile."""
        core = self._core
        expected, item.expected = item.expected, None
        async with (
            core.account_locks[item.account_id],
            core.db.tx(Actor.user(item.user_id)) as conn,
        ):
            now = core.clock.now()
            moved = None
            if expected is not None:
                moved = await repo.transition(conn, expected, S.SUBMITTING, now, submitted_at=now)
            if moved is None:
                order = await repo.get_order(conn, item.user_id, item.order_id)
                if order is None or order.status != S.QUEUED:
                    return None
                moved = await repo.transition(conn, order, S.SUBMITTING, now, submitted_at=now)
        if moved is not None:
            core.publish(moved)
        return moved

    async def _send_place(self, item: QueueItem) -> None:
        core = self._core
        # Everything that reads the database happens before the claim: a fault there leaves
        # the order QUEUED and the request goes back in the queue (see send()).
        try:
            ref = await core.accounts.ref_for(item.user_id, item.account_id)
        except NotFound:
            order = await core.load(item.user_id, item.order_id)
            if order is not None and order.status == S.QUEUED:
                await core.move(
                    order,
                    S.REJECTED,
                    detail="account gone",
                    reason_code="account.not_found",
                    reason="계좌가 없어 보내지 않았습니다 (the account no longer exists)",
                )
            return
        broker = core.accounts.broker_for(ref.broker)
        submitting = await self._claim(item)
        if submitting is None:
            return
        order = submitting
        if not core.may_send(item.user_id):
            # Cluster mode: this server lost the user (lease fenced or handed back) after the
            # queue gave the item out. Nothing was sent: back to QUEUED for the new owner
            # (whose recovery, if it ran first, made it UNKNOWN - then this move fails and
            # reconciliation settles it).
            await core.record(
                order,
                "hand-over",
                partial(core.move, submitting, S.QUEUED, detail="owner changed; not sent here"),
            )
            return
        core.stats["sent"] += 1
        request = PlaceRequest(
            client_order_id=order.client_order_id,
            symbol=order.symbol,
            side=order.side,
            type=order.type,
            qty=order.qty,
            price=order.price,
            venue=order.venue.value,
            tif=order.tif,
        )
        events = self._events
        events.placing(order)
        # From here the order is SUBMITTING in the database and may reach the broker: it is
        # never put back in the queue, and its outcome is recorded with retries.
        try:
            ack = await asyncio.wait_for(broker.place(ref, request), core.policy.submit_timeout)
        except BrokerNotProcessed as e:
            events.placed(order)
            back = await core.record(
                order,
                "requeue",
                partial(
                    core.move, submitting, S.QUEUED, detail=f"not processed ({e.code}); requeued"
                ),
            )
            if back is not None:
                core.queue.defer(item, e.retry_after)
            return
        except BrokerRejected as e:
            events.placed(order)
            await core.record(
                order,
                "rejection",
                partial(
                    core.move,
                    submitting,
                    S.REJECTED,
                    detail=e.code,
                    reason_code=e.code,
                    reason=e.message,
                ),
            )
            return
        except (TimeoutError, BrokerError, OSError) as e:
            events.placed(order)
            # Outcome unknown: never resend blindly; reconciliation decides.
            core.stats["unknown"] += 1
            code = getattr(e, "code", type(e).__name__)
            await core.record(
                order,
                "unknown outcome",
                partial(
                    core.move,
                    submitting,
                    S.UNKNOWN,
                    detail=f"outcome unknown: {code}",
                    reason_code="broker.unknown",
                    reason="브로커 응답을 받지 못했습니다; 잔고와 대조 중입니다 (outcome unknown; reconciling)",
                ),
            )
            core.on_unknown(order.account_id)
            return
        except BaseException:
            events.placed(order)
            raise
        try:
            await core.record(
                order,
                "acknowledgement",
                partial(events.acknowledged, submitting, ack.broker_order_id, ack.org_no),
            )
        finally:
            events.placed(order)

    async def _send_cancel(self, item: QueueItem) -> None:
        core = self._core
        order = await core.load(item.user_id, item.order_id)
        if order is None or order.status != S.CANCEL_PENDING or not order.broker_order_id:
            return
        ref = await core.accounts.ref_for(order.user_id, order.account_id)
        broker = core.accounts.broker_for(ref.broker)
        self.cancels_sent.add(order.id)
        try:
            await asyncio.wait_for(
                broker.cancel(ref, order.broker_order_id, order.symbol, order.remaining),
                core.policy.submit_timeout,
            )
        except BrokerNotProcessed as e:
            self.cancels_sent.discard(order.id)
            core.queue.defer(item, e.retry_after)
            return
        except BrokerRejected as e:
            if await core.record(order, "cancel refusal", partial(self._cancel_refused, order, e)):
                self.cancels_sent.discard(order.id)
            core.on_unknown(order.account_id)
            return
        except (TimeoutError, BrokerError, OSError):
            core.on_unknown(order.account_id)
            return

        if await core.record(order, "cancel confirmation", partial(self._cancel_confirmed, order)):
            # Recorded; while it is not, the resync must not send the cancel again.
            self.cancels_sent.discard(order.id)

    async def _cancel_refused(self, order: Order, e: BrokerRejected) -> Order | None:
        fresh = await self._core.load(order.user_id, order.id)
        if fresh is None or fresh.status != S.CANCEL_PENDING:
            return None
        back = S.PARTIALLY_FILLED if fresh.filled_qty else S.ACCEPTED
        return await self._core.move(
            fresh,
            back,
            detail=f"cancel refused: {e.code}",
            reason_code=e.code,
            reason=f"취소 거부: {e.message}",
        )

    async def _cancel_confirmed(self, order: Order) -> Order | None:
        fresh = await self._core.load(order.user_id, order.id)
        if fresh is None or fresh.status != S.CANCEL_PENDING:
            return None
        return await self._core.move(fresh, S.CANCELLED, detail="cancel confirmed")
