"""Intake: the only way an order enters hoga, and the user's requests about it.

``submit`` validates an intent (``validation.py``), reads the risk inputs (``riskinputs.py``),
runs the pure risk gate and records the order - ``DENIED`` with a reason, or ``QUEUED`` with
the cash it reserves - in one transaction, then queues it. ``preview`` answers what ``submit``
would decide without writing; ``cancel`` takes a queued order out of the queue or asks the
broker through the queue; reading is here too.

Concurrency: a per-user lock serialises submissions (counters and cash reservations); state
changes of an account's orders take the account lock (``OrderCore``).
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections import defaultdict
from dataclasses import replace
from datetime import datetime
from typing import Any

from hoga.domain import krx
from hoga.domain.errors import Conflict, NotFound, Unauthorized
from hoga.domain.market import Instrument
from hoga.domain.orders import TERMINAL, Order, OrderIntent, OrderStatus, Priority, Side
from hoga.domain.tiers import Tier
from hoga.execution import risk
from hoga.execution.ordercore import OrderCore
from hoga.execution.queue import Kind, QueueItem
from hoga.execution.riskinputs import AccountOpen, AccountSession, RiskReader
from hoga.execution.validation import same_or_conflict, validate
from hoga.security.auth import AuthService
from hoga.store.db import Actor
from hoga.store.repos import accounts as accounts_repo
from hoga.store.repos import audit, ledger
from hoga.store.repos import orders as repo
from hoga.store.repos.users import UserRecord

log = logging.getLogger(__name__)

S = OrderStatus


class Intake:
    """Submit, preview, cancel and read orders for a user (see the module docstring)."""

    def __init__(
        self,
        core: OrderCore,
        auth: AuthService,
        account_open: AccountOpen,
        account_session: AccountSession | None = None,
    ) -> None:
        self._core = core
        self._auth = auth
        self._user_locks: dict[int, asyncio.Lock] = defaultdict(asyncio.Lock)
        self.risk = RiskReader(core, account_open, account_session)

    # ------------------------------------------------------------------ submit

    async def _checked(
        self, user_id: int, intent: OrderIntent
    ) -> tuple[OrderIntent, UserRecord, Tier, Instrument]:
        """The validated intent, the user, their tier and the instrument."""
        intent = validate(intent, self._core.quotes)
        # A symbol nobody subscribes to gets its quote from the broker on demand (lookup.py).
        prime = getattr(self._core.quotes, "prime", None)
        if prime is not None:
            await prime(intent.symbol)
        user = await self._auth.user(user_id)
        if not user.is_active:
            # A strategy's last orders after its user was disabled (issue 12).
            raise Unauthorized("비활성화된 계정입니다 (account disabled)", "auth.disabled")
        tier = await self._auth.tier(user.tier)
        inst = self._core.quotes.instrument(intent.symbol)
        assert inst is not None  # validate() checked it
        return intent, user, tier, inst

    async def submit(self, user_id: int, intent: OrderIntent, *, ip: str | None = None) -> Order:
        """Check and record an order. Returns it QUEUED, or DENIED with the reason.

        The same ``client_order_id`` again returns the first order (409 if the order differs).
        """
        core = self._core
        intent, user, tier, inst = await self._checked(user_id, intent)
        now = core.clock.now()
        mono = core.clock.monotonic()
        day = krx.trading_date(now)
        # Outside the transaction: it may read the database itself (SQLite has one writer).
        acct = await core.accounts.resolve(user_id, intent.account_id)
        async with self._user_locks[user_id]:
            async with core.db.tx(Actor.user(user_id)) as conn:
                if intent.client_order_id is not None:
                    existing = await repo.get_by_client_id(conn, user_id, intent.client_order_id)
                    if existing is not None:
                        return same_or_conflict(existing, intent)
                intent = replace(intent, account_id=acct.id)
                inputs = await self.risk.read(conn, user, tier, acct, intent, inst, day, mono)
                decision = risk.check(inputs)
                if decision.warning:
                    log.warning("order accepted for a designated symbol: %s", decision.warning)
                cid = intent.client_order_id or f"h{uuid.uuid4().hex[:20]}"
                status = S.QUEUED if decision.ok else S.DENIED
                order = await repo.insert_order(
                    conn,
                    user_id=user_id,
                    account_id=acct.id,
                    strategy_id=intent.strategy_id,
                    client_order_id=cid,
                    symbol=intent.symbol,
                    side=intent.side.value,
                    type=intent.type.value,
                    tif=intent.tif.value,
                    venue=intent.venue.value,
                    qty=intent.qty,
                    price=intent.price,
                    status=status.value,
                    priority=int(decision.priority),
                    urgent=intent.urgent,
                    source=intent.source,
                    filled_qty=0,
                    filled_amount=0,
                    commission=0,
                    tax=0,
                    reserved_cash=decision.reserved_cash,
                    reason_code=decision.code or None,
                    reason=decision.message or None,
                    trading_day=day,
                    created_at=now,
                    updated_at=now,
                )
                await repo.add_event(conn, user_id, order.id, status, now, decision.code or None)
                if decision.ok:
                    await ledger.bump_day(conn, user_id, day, trades=1)
                await audit.record(
                    conn,
                    action="order.submit" if decision.ok else "order.denied",
                    now=now,
                    user_id=user_id,
                    ip=ip,
                    target=f"order:{order.id}",
                    detail={
                        "symbol": order.symbol,
                        "side": order.side.value,
                        "qty": order.qty,
                        "price": order.price,
                        "type": order.type.value,
                        "code": decision.code or None,
                        "source": intent.source,
                    },
                )
            self.risk.remember(user_id, intent, mono)
        await self._committed(order, acct.broker, decision)
        return order

    async def _committed(self, order: Order, broker: str, decision: risk.RiskDecision) -> None:
        """After the order is committed: the one place for what follows a recorded order.

        Persist-before-send: the dispatcher can see the order only from here on. The queue
        comes first, with no await before it, so an order committed but not yet queued is
        seen as briefly as possible (the queue resync backstop queues such an order again;
        twice is harmless). What does not decide the answer goes after it.
        """
        core = self._core
        if decision.ok:
            core.stats["submitted"] += 1
            core.enqueue(order, broker, Kind.PLACE, order.priority)
        else:
            core.stats["denied"] += 1
        core.publish(order)
        if decision.breach:
            await self._auth.set_trading_state(order.user_id, risk.REDUCING, "daily loss limit")

    async def preview(self, user_id: int, intent: OrderIntent) -> dict[str, Any]:
        """What ``submit`` would decide, and what the order would cost - nothing is recorded."""
        core = self._core
        intent, user, tier, inst = await self._checked(user_id, intent)
        now = core.clock.now()
        day = krx.trading_date(now)
        async with core.db.tx(Actor.user(user_id)) as conn:
            if intent.account_id is None:
                acct = await accounts_repo.paper_account(conn, user_id)
                if acct is None:
                    raise NotFound("계좌가 없습니다 (no account)", "account.not_found")
            else:
                acct = await accounts_repo.require_account(conn, user_id, intent.account_id)
            intent = replace(intent, account_id=acct.id)
            inputs = await self.risk.read(
                conn, user, tier, acct, intent, inst, day, core.clock.monotonic()
            )
        decision = risk.check(inputs)
        lower, upper = krx.price_limits(inst.base_price, inst.kind)
        price = intent.price or inputs.last_price or inst.base_price
        amount = intent.qty * price
        fee = krx.commission(amount, acct.commission_rate)
        tax = krx.sell_tax(amount, day, inst.market) if intent.side == Side.SELL else 0
        orderable = inputs.cash - inputs.reserved_cash
        reserve = risk.reserve_for(intent, inst, acct.commission_rate)
        on_grid = price - price % krx.tick_size(price, inst.kind)
        return {
            "ok": decision.ok,
            "code": decision.code or None,
            "message": decision.message or None,
            "symbol": inst.symbol,
            "name": inst.name,
            "price": price,
            "amount": amount,
            "commission": fee,
            "tax": tax,
            "total": amount + fee if intent.side == Side.BUY else amount - fee - tax,
            "reserved_cash": reserve,
            "orderable_cash": orderable,
            "cash_after": orderable - reserve
            if intent.side == Side.BUY
            else orderable + amount - fee - tax,
            "tick_size": krx.tick_size(price, inst.kind),
            "price_up": krx.step_price(on_grid, 1, inst.kind),
            "price_down": krx.step_price(on_grid, -1, inst.kind) if on_grid == price else on_grid,
            "limits": {"base": inst.base_price, "lower": lower, "upper": upper},
            "trades_today": inputs.trades_today,
            "daily_limit": tier.daily_trades,
        }

    # ------------------------------------------------------------------ reading

    async def get(self, user_id: int, order_id: int) -> Order:
        order = await self._core.load(user_id, order_id)
        if order is None:
            raise NotFound("주문을 찾을 수 없습니다 (no such order)", "order.not_found")
        return order

    async def list_orders(self, user_id: int, **filters: Any) -> list[Order]:
        async with self._core.db.tx(Actor.user(user_id)) as conn:
            return await repo.list_orders(conn, user_id, **filters)

    async def history(self, user_id: int, order_id: int) -> list[dict[str, Any]]:
        async with self._core.db.tx(Actor.user(user_id)) as conn:
            return await repo.events(conn, user_id, order_id)

    # ------------------------------------------------------------------ cancel

    async def cancel(self, user_id: int, order_id: int, *, ip: str | None = None) -> Order:
        order = await self.get(user_id, order_id)
        if order.status in TERMINAL:
            raise Conflict(
                f"이미 끝난 주문입니다 ({order.status.value}) (order is not open)", "order.not_open"
            )
        if order.status == S.CANCEL_PENDING:
            return order
        if order.status in (S.SUBMITTING, S.UNKNOWN, S.MODIFY_PENDING):
            raise Conflict(
                "브로커 응답을 기다리는 주문입니다. 잠시 후 다시 시도하세요 (order in flight; retry shortly)",
                "order.in_flight",
            )
        now = self._core.clock.now()
        taken: list[QueueItem] = []
        try:
            updated, send_cancel, acct = await self._cancel_tx(user_id, order, now, ip, taken)
        except BaseException:
            # The queued request was taken out inside the failed transaction: put it back, so
            # the queue still holds what the database says is queued.
            for item in taken:
                self._core.queue.requeue(item)
            raise
        if send_cancel:
            self._core.enqueue(updated, acct.broker, Kind.CANCEL, Priority.URGENT)
        self._core.publish(updated)
        return updated

    async def _cancel_tx(
        self, user_id: int, order: Order, now: datetime, ip: str | None, taken: list[QueueItem]
    ) -> tuple[Order, bool, Any]:
        core = self._core
        async with core.account_locks[order.account_id], core.db.tx(Actor.user(user_id)) as conn:
            order = await core.reload(conn, order)
            if order.status == S.QUEUED and (item := core.queue.remove(order.id, Kind.PLACE)):
                taken.append(item)
                updated = await repo.transition(
                    conn,
                    order,
                    S.CANCELLED,
                    now,
                    detail="cancelled before sending",
                    reserved_cash=0,
                )
                send_cancel = False
            elif order.status in (S.ACCEPTED, S.PARTIALLY_FILLED):
                updated = await repo.transition(
                    conn, order, S.CANCEL_PENDING, now, detail="cancel requested"
                )
                send_cancel = True
            else:
                raise Conflict(
                    f"지금은 취소할 수 없는 주문입니다 ({order.status.value})",
                    "order.not_cancellable",
                )
            if updated is None:
                raise Conflict(
                    "주문 상태가 방금 바뀌었습니다. 다시 시도하세요 (order changed; retry)",
                    "order.changed",
                )
            await audit.record(
                conn,
                action="order.cancel",
                now=now,
                user_id=user_id,
                ip=ip,
                target=f"order:{order.id}",
                detail={"status": order.status.value},
            )
            acct = await accounts_repo.require_account(conn, user_id, order.account_id)
        return updated, send_cancel, acct
