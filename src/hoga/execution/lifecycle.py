"""Control of the order service: start-up recovery, day-end expiry, the server's kill switch,
and the lookups reconciliation needs.

``recover`` rebuilds the queue from the database after a (re)start and turns orders caught
mid-submit into ``UNKNOWN`` (nothing is resent blindly); ``expire_stale`` records ``EXPIRED``
for queued orders of earlier days *before* taking them out of the queue; the server state
(ACTIVE / REDUCING / HALTED) lives in ``system_state`` and is read by the risk gate.
"""

from __future__ import annotations

from datetime import date

from hoga.brokers.base import AccountRef
from hoga.domain.errors import InvalidInput, NotFound
from hoga.domain.orders import AT_BROKER, Order, OrderStatus, Priority
from hoga.execution import risk
from hoga.execution.modifying import Modifier
from hoga.execution.ordercore import OrderCore
from hoga.execution.queue import Kind
from hoga.store.db import SYSTEM, Actor
from hoga.store.repos import accounts as accounts_repo
from hoga.store.repos import audit, system
from hoga.store.repos import orders as repo
from hoga.store.repos import users as users_repo

S = OrderStatus
TRADING_STATE = "trading_state"


class OrderControl:
    """Recovery, expiry, server state and reconciliation lookups (see the module docstring)."""

    def __init__(self, core: OrderCore, modifier: Modifier) -> None:
        self._core = core
        self._modifier = modifier

    async def recover(self, user_id: int | None = None) -> dict[str, int]:
        """After a (re)start: queued orders go back in the queue; orders caught mid-submit
        become UNKNOWN for reconciliation. Nothing is resent blindly. ``user_id``: one user's
        orders only (cluster mode: this server has just become that user's owner)."""
        core = self._core
        counts = {"requeued": 0, "unknown": 0}
        recovering = [S.QUEUED, S.SUBMITTING, S.CANCEL_PENDING, S.MODIFY_PENDING]
        async with core.db.tx(SYSTEM) as conn:
            pending = await repo.open_orders(
                conn, user_id=user_id, statuses=[s.value for s in recovering]
            )
            brokers = {a.id: a.broker for a in await accounts_repo.all_active_accounts(conn)}
            disabled = {u.id for u in await users_repo.list_users(conn) if not u.is_active}
        for order in pending:
            broker = brokers.get(order.account_id, "paper")
            if order.status == S.QUEUED and order.user_id in disabled:
                # Disabled while its order waited (and the server stopped before withdrawing
                # it): it must not go out on restart.
                await core.move(
                    order,
                    S.CANCELLED,
                    detail="user disabled",
                    reason_code="user.disabled",
                    reason="사용자가 비활성화되어 취소했습니다 (user disabled)",
                )
                counts["withdrawn"] = counts.get("withdrawn", 0) + 1
            elif order.status == S.QUEUED:
                core.enqueue(order, broker, Kind.PLACE, order.priority)
                counts["requeued"] += 1
            elif order.status == S.SUBMITTING:
                await core.move(
                    order,
                    S.UNKNOWN,
                    detail="server restarted during submit",
                    reason_code="broker.unknown",
                    reason="재시작 중 전송 결과 확인 필요 (reconciling)",
                )
                counts["unknown"] += 1
            elif order.status == S.CANCEL_PENDING:
                core.enqueue(order, broker, Kind.CANCEL, Priority.URGENT)
            elif order.status == S.MODIFY_PENDING:
                await self._modifier.abandon(order)
        return counts

    async def expire_stale(self, today: date) -> int:
        """Queued orders of earlier days expire (the broker expires its own at day end)."""
        core = self._core
        n = 0
        async with core.db.tx(SYSTEM) as conn:
            stale = [
                o
                for o in await repo.open_orders(conn, statuses=[S.QUEUED.value])
                if o.trading_day < today
            ]
        for order in stale:
            # Recorded first: if the database fails here the order is still queued, in both.
            if await core.move(order, S.EXPIRED, detail="day ended before sending") is not None:
                core.queue.remove(order.id, Kind.PLACE)
                n += 1
        return n

    # ------------------------------------------------------------------ kill switch

    async def set_server_state(self, state: str, *, actor_id: int | None, ip: str | None) -> None:
        if state not in (risk.ACTIVE, risk.REDUCING, risk.HALTED):
            raise InvalidInput("state must be ACTIVE, REDUCING or HALTED", "risk.bad_state")
        core = self._core
        now = core.clock.now()
        async with core.db.tx(SYSTEM) as conn:
            await system.put(conn, TRADING_STATE, {"state": state}, now)
            await audit.record(
                conn,
                action="server.trading_state",
                now=now,
                user_id=None,
                actor_id=actor_id,
                ip=ip,
                detail={"from": core.server_state, "to": state},
            )
        core.server_state = state

    async def load_server_state(self) -> str:
        core = self._core
        async with core.db.tx(SYSTEM) as conn:
            value = await system.get(conn, TRADING_STATE)
        core.server_state = str(value.get("state", risk.ACTIVE)) if value else risk.ACTIVE
        return core.server_state

    # ------------------------------------------------------------------ reconciliation hooks

    async def open_at_broker(self, account_id: int) -> list[Order]:
        user_id = await self._core.owner(account_id)
        if user_id is None:
            return []
        async with self._core.db.tx(Actor.user(user_id)) as conn:
            return [
                o
                for o in await repo.open_orders(conn, user_id=user_id, account_id=account_id)
                if o.status in AT_BROKER or o.status == S.SUBMITTING
            ]

    async def account_ref(self, account_id: int) -> AccountRef | None:
        user_id = await self._core.owner(account_id)
        if user_id is None:
            return None
        try:
            return await self._core.accounts.ref_for(user_id, account_id)
        except NotFound:
            return None
