"""The order service: the only way an order enters hoga, and the only code that changes one.

``submit`` validates an intent, runs the risk gate and records the order - ``DENIED`` with a
reason, or ``QUEUED`` with the cash it reserves - in one transaction, then queues it. The
dispatcher hands queued requests back to ``send``, which marks the order ``SUBMITTING`` in the
database *before* calling the broker, so a crash mid-call leaves a trace that reconciliation
settles. Broker executions arrive at ``on_execution``; each fill updates the order, the
position, the cash ledger and the day's P&L in one transaction, de-duplicated by the broker's
fill id.

Concurrency: a per-user lock serialises submissions (counters and cash reservations), and a
per-account lock serialises state changes of an account's orders; broker calls are made
outside both.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections import OrderedDict, defaultdict, deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from datetime import date, datetime
from functools import partial
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from hoga.brokers.base import (
    AccountRef,
    BrokerError,
    BrokerNotProcessed,
    BrokerRejected,
    ExecutionEvent,
    FillEvent,
    FillReport,
    OrderStatusReport,
    OrderUpdate,
    PlaceRequest,
)
from hoga.domain import fills, krx
from hoga.domain.clock import Clock
from hoga.domain.errors import Conflict, InvalidInput, NotFound, StorageUnavailable
from hoga.domain.market import QuoteSource
from hoga.domain.orders import (
    AT_BROKER,
    TERMINAL,
    Order,
    OrderIntent,
    OrderStatus,
    Priority,
    Side,
)
from hoga.execution import booking, retry, risk
from hoga.execution.accounts import AccountService
from hoga.execution.events import EventBus
from hoga.execution.queue import Kind, OrderQueue, QueueItem
from hoga.security.auth import AuthService
from hoga.store import tables as t
from hoga.store.db import SYSTEM, Actor, Database
from hoga.store.repos import accounts as accounts_repo
from hoga.store.repos import audit, ledger
from hoga.store.repos import orders as repo

log = logging.getLogger(__name__)

S = OrderStatus
MAX_QTY = 10_000_000
ORPHAN_TTL = 600.0
MAX_ORPHANS = 10_000
GATEWAY_OF = {"paper": "paper", "kis": "kis", "kiwoom": "kiwoom"}


@dataclass(frozen=True, slots=True)
class OrderPolicy:
    """Server-wide defaults the order service applies (per-user values override some)."""

    max_order_value: int = 50_000_000
    daily_loss_limit: int = 0
    duplicate_window: float = 2.0
    submit_timeout: float = 10.0
    #: A market order is refused when the symbol's last quote is older than this (seconds)
    #: while the market is open; 0 disables the check.
    max_quote_age: float = 60.0


def order_view(o: Order, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    view: dict[str, Any] = {
        "id": o.id,
        "client_order_id": o.client_order_id,
        "account_id": o.account_id,
        "strategy_id": o.strategy_id,
        "symbol": o.symbol,
        "side": o.side.value,
        "type": o.type.value,
        "tif": o.tif.value,
        "venue": o.venue.value,
        "qty": o.qty,
        "price": o.price,
        "status": o.status.value,
        "priority": o.priority.label,
        "urgent": o.urgent,
        "source": o.source,
        "filled_qty": o.filled_qty,
        "avg_fill_price": o.avg_fill_price,
        "commission": o.commission,
        "tax": o.tax,
        "reserved_cash": o.reserved_cash,
        "broker_order_id": o.broker_order_id,
        "reason_code": o.reason_code,
        "reason": o.reason,
        "trading_day": o.trading_day.isoformat(),
        "created_at": o.created_at.isoformat(),
        "updated_at": o.updated_at.isoformat(),
    }
    if extra:
        view.update(extra)
    return view


class OrderService:
    """See the module docstring."""

    def __init__(
        self,
        db: Database,
        clock: Clock,
        auth: AuthService,
        accounts: AccountService,
        quotes: QuoteSource,
        queue: OrderQueue,
        bus: EventBus,
        *,
        policy: OrderPolicy,
        market_open: Callable[[], bool] | None = None,
        account_open: Callable[[str, str, str | None], bool] | None = None,
        account_session: Callable[[str, str, str | None, OrderIntent], str | None] | None = None,
    ) -> None:
        self._db = db
        self._clock = clock
        self._auth = auth
        self._accounts = accounts
        self._quotes = quotes
        self.queue = queue
        self._bus = bus
        self.policy = policy
        self._market_open = market_open or (lambda: True)
        # Per account (broker, env): real-money accounts follow the KRX calendar whatever the
        # server's market mode (execution/gate.py).
        self._account_open = account_open or (lambda broker, env, url: self._market_open())
        # The KRX/Nextrade session an order goes into (sessions and order types, issue 14).
        self._account_session = account_session or (
            lambda broker, env, url, intent: risk.order_session(
                intent, self._clock.now(), calendar=False
            )
        )
        self._user_locks: dict[int, asyncio.Lock] = defaultdict(asyncio.Lock)
        self._account_locks: dict[int, asyncio.Lock] = defaultdict(asyncio.Lock)
        self._recent: dict[int, deque[tuple[float, tuple[Any, ...]]]] = defaultdict(deque)
        # Events for broker orders hoga has not (yet) recorded, oldest first: parked briefly for
        # a place() answer still on its way, and dropped after ORPHAN_TTL - an order placed
        # outside hoga never gets claimed, and reconciliation settles our own from reports.
        self._orphans: OrderedDict[tuple[int, str], tuple[float, list[ExecutionEvent]]] = (
            OrderedDict()
        )
        self.server_state = risk.ACTIVE
        self._owners: dict[int, int] = {}
        # (account, client order id) of orders whose place() call is in flight.
        self._sending: set[tuple[int, str | None]] = set()
        self.on_unknown: Callable[[int], None] = lambda account_id: None
        #: (order id, kind) of requests the dispatcher handed to send() and not finished.
        self.inflight: set[tuple[int, Kind]] = set()
        #: Orders whose cancel reached a broker call in this process (resync leaves them be).
        self.cancels_sent: set[int] = set()
        # Execution events the database could not take yet (replayed in order).
        self._held = retry.HeldEvents(self._execution, lambda a: self.on_unknown(a))
        self.stats = {"submitted": 0, "denied": 0, "sent": 0, "unknown": 0, "fills": 0}

    # ------------------------------------------------------------------ submit

    def _validate(self, intent: OrderIntent) -> OrderIntent:
        symbol = krx.normalize_symbol(intent.symbol) if isinstance(intent.symbol, str) else ""
        if not krx.is_valid_symbol(symbol):
            raise InvalidInput(
                f"종목코드 형식이 올바르지 않습니다: {intent.symbol!r}",
                "order.bad_symbol",
                field="symbol",
            )
        if self._quotes.instrument(symbol) is None:
            raise InvalidInput(
                f"알 수 없는 종목입니다: {symbol}", "order.unknown_symbol", field="symbol"
            )
        if isinstance(intent.qty, bool) or not isinstance(intent.qty, int) or intent.qty <= 0:
            raise InvalidInput(
                "수량은 1 이상의 정수여야 합니다 (qty must be a positive integer)",
                "order.bad_qty",
                field="qty",
            )
        if intent.qty > MAX_QTY:
            raise InvalidInput(
                f"수량이 너무 큽니다 (qty over {MAX_QTY:,})", "order.bad_qty", field="qty"
            )
        if intent.type.needs_price:
            if intent.price is None:
                raise InvalidInput(
                    "지정가 주문에는 가격이 필요합니다 (limit order needs a price)",
                    "order.price_required",
                    field="price",
                )
            if (
                isinstance(intent.price, bool)
                or not isinstance(intent.price, int)
                or intent.price <= 0
            ):
                raise InvalidInput(
                    "가격은 1원 이상의 정수여야 합니다 (price must be a positive integer)",
                    "order.bad_price",
                    field="price",
                )
        elif intent.price is not None:
            raise InvalidInput(
                f"시장가·최유리·최우선·시간외종가 주문에는 가격을 넣지 않습니다 ({intent.type}) "
                "(market-priced order takes no price)",
                "order.price_not_allowed",
                field="price",
            )
        cid = intent.client_order_id
        if cid is not None and not (1 <= len(cid) <= 64 and cid.isprintable() and " " not in cid):
            raise InvalidInput(
                "client_order_id: 1-64 printable characters without spaces",
                "order.bad_client_order_id",
                field="client_order_id",
            )
        return replace(intent, symbol=symbol)

    def _is_duplicate(self, user_id: int, intent: OrderIntent, now: float) -> bool:
        if intent.client_order_id is not None or self.policy.duplicate_window <= 0:
            return False
        key = (intent.account_id, intent.symbol, intent.side, intent.type, intent.qty, intent.price)
        recent = self._recent[user_id]
        while recent and recent[0][0] < now - self.policy.duplicate_window:
            recent.popleft()
        return any(k == key for _, k in recent)

    def _remember(self, user_id: int, intent: OrderIntent, now: float) -> None:
        key = (intent.account_id, intent.symbol, intent.side, intent.type, intent.qty, intent.price)
        self._recent[user_id].append((now, key))

    async def submit(self, user_id: int, intent: OrderIntent, *, ip: str | None = None) -> Order:
        """Check and record an order. Returns it QUEUED, or DENIED with the reason.

        The same ``client_order_id`` again returns the first order (409 if the order differs).
        """
        intent = self._validate(intent)
        user = await self._auth.user(user_id)
        tier = await self._auth.tier(user.tier)
        inst = self._quotes.instrument(intent.symbol)
        assert inst is not None
        now = self._clock.now()
        mono = self._clock.monotonic()
        day = krx.trading_date(now)
        # Outside the transaction: it may read the database itself (SQLite has one writer).
        acct = await self._accounts.resolve(user_id, intent.account_id)
        async with self._user_locks[user_id]:
            async with self._db.tx(Actor.user(user_id)) as conn:
                if intent.client_order_id is not None:
                    existing = await repo.get_by_client_id(conn, user_id, intent.client_order_id)
                    if existing is not None:
                        return self._same_or_conflict(existing, intent)
                intent = replace(intent, account_id=acct.id)
                inputs = await self._risk_inputs(
                    conn,
                    user,
                    tier,
                    acct.id,
                    acct.commission_rate,
                    intent,
                    inst,
                    day,
                    mono,
                    market_open=self._account_open(acct.broker, acct.env, acct.base_url),
                    session=self._account_session(acct.broker, acct.env, acct.base_url, intent),
                )
                decision = risk.check(inputs)
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
            self._remember(user_id, intent, mono)
        if decision.ok:
            self.stats["submitted"] += 1
            self.enqueue(order, acct.broker, Kind.PLACE, order.priority)
        else:
            self.stats["denied"] += 1
        self._publish(order)
        if decision.breach:
            await self._auth.set_trading_state(user_id, risk.REDUCING, "daily loss limit")
        return order

    async def preview(self, user_id: int, intent: OrderIntent) -> dict[str, Any]:
        """What ``submit`` would decide, and what the order would cost - nothing is recorded."""
        intent = self._validate(intent)
        user = await self._auth.user(user_id)
        tier = await self._auth.tier(user.tier)
        inst = self._quotes.instrument(intent.symbol)
        assert inst is not None
        now = self._clock.now()
        day = krx.trading_date(now)
        async with self._db.tx(Actor.user(user_id)) as conn:
            if intent.account_id is None:
                acct = await accounts_repo.paper_account(conn, user_id)
                if acct is None:
                    raise NotFound("계좌가 없습니다 (no account)", "account.not_found")
            else:
                acct = await accounts_repo.require_account(conn, user_id, intent.account_id)
            intent = replace(intent, account_id=acct.id)
            inputs = await self._risk_inputs(
                conn,
                user,
                tier,
                acct.id,
                acct.commission_rate,
                intent,
                inst,
                day,
                self._clock.monotonic(),
                market_open=self._account_open(acct.broker, acct.env, acct.base_url),
                session=self._account_session(acct.broker, acct.env, acct.base_url, intent),
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

    def _same_or_conflict(self, existing: Order, intent: OrderIntent) -> Order:
        same = (
            existing.symbol == intent.symbol
            and existing.side == intent.side
            and existing.type == intent.type
            and existing.qty == intent.qty
            and existing.price == intent.price
            and existing.tif == intent.tif
            and existing.venue == intent.venue
            and (intent.account_id is None or existing.account_id == intent.account_id)
        )
        if not same:
            raise Conflict(
                "이 client_order_id는 다른 주문에 이미 쓰였습니다 (client_order_id already used for a different order)",
                "order.client_order_id_reused",
                order_id=existing.id,
            )
        return existing

    async def _risk_inputs(
        self,
        conn: AsyncConnection,
        user: Any,
        tier: Any,
        account_id: int,
        commission_rate: Any,
        intent: OrderIntent,
        inst: Any,
        day: date,
        mono: float,
        *,
        market_open: bool,
        session: str | None = krx.Session.CONTINUOUS.value,
    ) -> risk.RiskInputs:
        uid = user.id
        trades, realized, unreal_start = await ledger.day_counters(conn, uid, day)
        cash = await ledger.cash(conn, uid, account_id)
        reserved, open_sells, open_buys = await repo.exposure(conn, uid, account_id)
        positions = await ledger.positions(conn, uid)
        held = {p.symbol: p for p in positions if p.account_id == account_id}
        unreal = 0
        for p in positions:
            last = self._quotes.last(p.symbol)
            if last is not None:
                unreal += p.position.unrealized_pnl(last.price)
        if unreal_start is None:
            # First look at this day: today's P&L is measured from here.
            await ledger.bump_day(conn, uid, day, unrealized_start=unreal)
            unreal_start = unreal
        last = self._quotes.last(intent.symbol)
        pos = held.get(intent.symbol)
        return risk.RiskInputs(
            intent=intent,
            instrument=inst,
            last_price=last.price if last else None,
            tier=tier,
            user_state=user.trading_state,
            server_state=self.server_state,
            market_open=market_open,
            session=session,
            quote_age=None if last is None else max(0.0, self._clock.time() - last.ts),
            max_quote_age=self.policy.max_quote_age,
            trades_today=trades,
            max_order_value=user.max_order_value or self.policy.max_order_value,
            daily_loss_limit=user.daily_loss_limit
            if user.daily_loss_limit is not None
            else self.policy.daily_loss_limit,
            daily_pnl=realized + unreal - unreal_start,
            cash=cash,
            reserved_cash=reserved,
            held_qty=pos.qty if pos else 0,
            open_sell_qty=open_sells.get(intent.symbol, 0),
            held_symbols=frozenset(p.symbol for p in positions),
            pending_buy_symbols=frozenset(open_buys),
            commission_rate=commission_rate,
            duplicate=self._is_duplicate(uid, intent, mono),
        )

    def enqueue(self, order: Order, broker: str, kind: Kind, priority: Priority) -> None:
        self.queue.push(
            QueueItem(
                order_id=order.id,
                user_id=order.user_id,
                account_id=order.account_id,
                gateway=GATEWAY_OF.get(broker, broker),
                kind=kind,
                priority=priority,
                enqueued_at=self._clock.monotonic(),
            )
        )

    def _publish(self, order: Order, event: str = "order") -> None:
        self._bus.publish(order.user_id, {"type": event, "order": order_view(order)})

    # ------------------------------------------------------------------ reading

    async def get(self, user_id: int, order_id: int) -> Order:
        async with self._db.tx(Actor.user(user_id)) as conn:
            order = await repo.get_order(conn, user_id, order_id)
        if order is None:
            raise NotFound("주문을 찾을 수 없습니다 (no such order)", "order.not_found")
        return order

    async def list_orders(self, user_id: int, **filters: Any) -> list[Order]:
        async with self._db.tx(Actor.user(user_id)) as conn:
            return await repo.list_orders(conn, user_id, **filters)

    async def history(self, user_id: int, order_id: int) -> list[dict[str, Any]]:
        async with self._db.tx(Actor.user(user_id)) as conn:
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
        if order.status in (S.SUBMITTING, S.UNKNOWN):
            raise Conflict(
                "브로커 응답을 기다리는 주문입니다. 잠시 후 다시 시도하세요 (order in flight; retry shortly)",
                "order.in_flight",
            )
        now = self._clock.now()
        taken: list[QueueItem] = []
        try:
            updated, send_cancel, acct = await self._cancel_tx(user_id, order, now, ip, taken)
        except BaseException:
            # The queued request was taken out inside the failed transaction: put it back, so
            # the queue still holds what the database says is queued.
            for item in taken:
                self.queue.requeue(item)
            raise
        if send_cancel:
            self.enqueue(updated, acct.broker, Kind.CANCEL, Priority.URGENT)
        self._publish(updated)
        return updated

    async def _cancel_tx(
        self, user_id: int, order: Order, now: datetime, ip: str | None, taken: list[QueueItem]
    ) -> tuple[Order, bool, Any]:
        async with self._account_locks[order.account_id], self._db.tx(Actor.user(user_id)) as conn:
            order = await self._reload(conn, order)
            if order.status == S.QUEUED and (item := self.queue.remove(order.id, Kind.PLACE)):
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

    async def _reload(self, conn: AsyncConnection, order: Order) -> Order:
        fresh = await repo.get_order(conn, order.user_id, order.id)
        if fresh is None:
            raise NotFound("주문을 찾을 수 없습니다", "order.not_found")
        return fresh

    # ------------------------------------------------------------------ sending (dispatcher)

    async def send(self, item: QueueItem) -> None:
        """Carry out one queued request against its broker (called by the dispatcher).

        The queue and the database never disagree for long: a request that could not get past
        the database before reaching the broker goes back in the queue (deferred, visible),
        and a broker answer that could not be recorded is retried, then left to
        reconciliation - never resent.
        """
        key = (item.order_id, item.kind)
        self.inflight.add(key)
        try:
            if item.kind == Kind.PLACE:
                await self._send_place(item)
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
            self.queue.defer(item, delay)
        except Exception:
            log.exception("sending %s for order %s failed unexpectedly", item.kind, item.order_id)
        finally:
            self.inflight.discard(key)

    async def _load(self, user_id: int, order_id: int) -> Order | None:
        async with self._db.tx(Actor.user(user_id)) as conn:
            return await repo.get_order(conn, user_id, order_id)

    async def move(
        self, order: Order, status: OrderStatus, detail: str | None = None, **values: Any
    ) -> Order | None:
        """Transition under the account lock, re-reading the order first."""
        async with (
            self._account_locks[order.account_id],
            self._db.tx(Actor.user(order.user_id)) as conn,
        ):
            fresh = await self._reload(conn, order)
            if fresh.status != order.status:
                return None
            if status in (S.REJECTED, S.CANCELLED, S.EXPIRED):
                values.setdefault("reserved_cash", 0)
            moved = await repo.transition(
                conn, fresh, status, self._clock.now(), detail=detail, **values
            )
        if moved is not None:
            self._publish(moved)
        return moved

    async def _claim(self, item: QueueItem) -> Order | None:
        """Mark a queued order SUBMITTING (persisted before any broker call); None if it is no
        longer queued (cancelled meanwhile)."""
        async with (
            self._account_locks[item.account_id],
            self._db.tx(Actor.user(item.user_id)) as conn,
        ):
            order = await repo.get_order(conn, item.user_id, item.order_id)
            if order is None or order.status != S.QUEUED:
                return None
            moved = await repo.transition(
                conn, order, S.SUBMITTING, self._clock.now(), submitted_at=self._clock.now()
            )
        if moved is not None:
            self._publish(moved)
        return moved

    async def _send_place(self, item: QueueItem) -> None:
        # Everything that reads the database happens before the claim: a fault there leaves
        # the order QUEUED and the request goes back in the queue (see send()).
        try:
            ref = await self._accounts.ref_for(item.user_id, item.account_id)
        except NotFound:
            order = await self._load(item.user_id, item.order_id)
            if order is not None and order.status == S.QUEUED:
                await self.move(
                    order,
                    S.REJECTED,
                    detail="account gone",
                    reason_code="account.not_found",
                    reason="계좌가 없어 보내지 않았습니다 (the account no longer exists)",
                )
            return
        broker = self._accounts.broker_for(ref.broker)
        submitting = await self._claim(item)
        if submitting is None:
            return
        order = submitting
        self.stats["sent"] += 1
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
        key = (order.account_id, order.client_order_id)
        self._sending.add(key)
        # From here the order is SUBMITTING in the database and may reach the broker: it is
        # never put back in the queue, and its outcome is recorded with retries.
        try:
            ack = await asyncio.wait_for(broker.place(ref, request), self.policy.submit_timeout)
        except BrokerNotProcessed as e:
            self._sending.discard(key)
            back = await self._record(
                order,
                "requeue",
                partial(
                    self.move, submitting, S.QUEUED, detail=f"not processed ({e.code}); requeued"
                ),
            )
            if back is not None:
                self.queue.defer(item, e.retry_after)
            return
        except BrokerRejected as e:
            self._sending.discard(key)
            await self._record(
                order,
                "rejection",
                partial(
                    self.move,
                    submitting,
                    S.REJECTED,
                    detail=e.code,
                    reason_code=e.code,
                    reason=e.message,
                ),
            )
            return
        except (TimeoutError, BrokerError, OSError) as e:
            self._sending.discard(key)
            # Outcome unknown: never resend blindly; reconciliation decides.
            self.stats["unknown"] += 1
            code = getattr(e, "code", type(e).__name__)
            await self._record(
                order,
                "unknown outcome",
                partial(
                    self.move,
                    submitting,
                    S.UNKNOWN,
                    detail=f"outcome unknown: {code}",
                    reason_code="broker.unknown",
                    reason="브로커 응답을 받지 못했습니다; 잔고와 대조 중입니다 (outcome unknown; reconciling)",
                ),
            )
            self.on_unknown(order.account_id)
            return
        except BaseException:
            self._sending.discard(key)
            raise
        try:
            await self._record(
                order,
                "acknowledgement",
                partial(self._acknowledged, submitting, ack.broker_order_id, ack.org_no),
            )
        finally:
            self._sending.discard(key)

    async def _record(
        self, order: Order, what: str, step: Callable[[], Awaitable[Order | None]]
    ) -> Order | None:
        """Record a broker's answer, retrying storage faults for a while; if the database
        stays away, leave the order as it is (SUBMITTING or CANCEL_PENDING) for
        reconciliation, which settles it from the broker's reports."""
        try:
            return await retry.persist(step, what=f"order {order.id}: recording the {what}")
        except StorageUnavailable:
            log.error(
                "order %s: the broker's %s could not be recorded; reconciliation will settle it",
                order.id,
                what,
            )
            self.on_unknown(order.account_id)
            return None

    async def _acknowledged(
        self, order: Order, broker_order_id: str, org_no: str | None
    ) -> Order | None:
        async with (
            self._account_locks[order.account_id],
            self._db.tx(Actor.user(order.user_id)) as conn,
        ):
            fresh = await self._reload(conn, order)
            values = {"broker_order_id": broker_order_id, "broker_org_no": org_no}
            if fresh.status in (S.SUBMITTING, S.UNKNOWN):
                moved = await repo.transition(
                    conn, fresh, S.ACCEPTED, self._clock.now(), detail="accepted", **values
                )
            elif (fresh.broker_order_id, fresh.broker_org_no) != (broker_order_id, org_no):
                # Executions got here first (they already moved the order on); keep the id.
                await conn.execute(
                    t.orders.update().where(t.orders.c.id == fresh.id).values(**values)
                )
                moved = await self._reload(conn, fresh)
            else:
                moved = None
        if moved is not None:
            self._publish(moved)
        await self._release(order.account_id, broker_order_id)
        return moved

    async def _send_cancel(self, item: QueueItem) -> None:
        order = await self._load(item.user_id, item.order_id)
        if order is None or order.status != S.CANCEL_PENDING or not order.broker_order_id:
            return
        ref = await self._accounts.ref_for(order.user_id, order.account_id)
        broker = self._accounts.broker_for(ref.broker)
        self.cancels_sent.add(order.id)
        try:
            await asyncio.wait_for(
                broker.cancel(ref, order.broker_order_id, order.symbol, order.remaining),
                self.policy.submit_timeout,
            )
        except BrokerNotProcessed as e:
            self.cancels_sent.discard(order.id)
            self.queue.defer(item, e.retry_after)
            return
        except BrokerRejected as e:
            if await self._record(order, "cancel refusal", partial(self._cancel_refused, order, e)):
                self.cancels_sent.discard(order.id)
            self.on_unknown(order.account_id)
            return
        except (TimeoutError, BrokerError, OSError):
            self.on_unknown(order.account_id)
            return

        if await self._record(order, "cancel confirmation", partial(self._cancel_confirmed, order)):
            # Recorded; while it is not, the resync must not send the cancel again.
            self.cancels_sent.discard(order.id)

    async def _cancel_refused(self, order: Order, e: BrokerRejected) -> Order | None:
        fresh = await self._load(order.user_id, order.id)
        if fresh is None or fresh.status != S.CANCEL_PENDING:
            return None
        back = S.PARTIALLY_FILLED if fresh.filled_qty else S.ACCEPTED
        return await self.move(
            fresh,
            back,
            detail=f"cancel refused: {e.code}",
            reason_code=e.code,
            reason=f"취소 거부: {e.message}",
        )

    async def _cancel_confirmed(self, order: Order) -> Order | None:
        fresh = await self._load(order.user_id, order.id)
        if fresh is None or fresh.status != S.CANCEL_PENDING:
            return None
        return await self.move(fresh, S.CANCELLED, detail="cancel confirmed")

    # ------------------------------------------------------------------ executions (brokers)

    async def on_execution(self, account_id: int, event: ExecutionEvent) -> None:
        """An execution event from a broker: an order update or a fill.

        If the database cannot take it (a storage fault), the event is held and replayed in
        order until it is booked; the account's later events wait behind it."""
        if self._held.holding(account_id):
            self._held.hold(account_id, event)
            return
        try:
            await self._execution(account_id, event)
        except StorageUnavailable as e:
            log.warning("account %s: execution event held, storage fault (%s)", account_id, e.code)
            self._held.hold(account_id, event)

    async def _execution(self, account_id: int, event: ExecutionEvent) -> None:
        report = event.fill if isinstance(event, FillEvent) else event.report
        if (
            isinstance(event, OrderUpdate)
            and event.report.status == S.ACCEPTED
            and (account_id, event.report.client_order_id) in self._sending
        ):
            return  # the place() answer on its way records the acceptance
        order = await self._find(account_id, report.broker_order_id, report.client_order_id)
        if order is None:
            # Not ours yet (the place() answer is still on its way), or not ours at all.
            self._park(account_id, report.broker_order_id, event)
            return
        had_id = order.broker_order_id is not None
        if isinstance(event, FillEvent):
            await self.apply_fill(order, event.fill)
        else:
            await self.apply_report(order, event.report)
        if not had_id:
            await self._release(account_id, report.broker_order_id)

    def _park(self, account_id: int, broker_order_id: str, event: ExecutionEvent) -> None:
        now = self._clock.monotonic()
        while self._orphans:
            key, (since, _) = next(iter(self._orphans.items()))
            if now - since < ORPHAN_TTL and len(self._orphans) < MAX_ORPHANS:
                break
            del self._orphans[key]
        _, events = self._orphans.setdefault((account_id, broker_order_id), (now, []))
        events.append(event)

    async def _release(self, account_id: int, broker_order_id: str) -> None:
        """Replay events parked for an order whose broker id hoga now knows."""
        _, events = self._orphans.pop((account_id, broker_order_id), (0.0, []))
        for event in events:
            await self.on_execution(account_id, event)

    async def _find(
        self, account_id: int, broker_order_id: str, client_order_id: str | None
    ) -> Order | None:
        user_id = await self._owner(account_id)
        if user_id is None:
            return None
        async with self._db.tx(Actor.user(user_id)) as conn:
            order = await repo.get_by_broker_id(conn, user_id, account_id, broker_order_id)
            if order is None and client_order_id:
                order = await repo.get_by_client_id(conn, user_id, client_order_id)
                if order is not None and order.account_id != account_id:
                    order = None
        return order

    async def _owner(self, account_id: int) -> int | None:
        owners = self._owners
        if account_id not in owners:
            async with self._db.tx(SYSTEM) as conn:
                row = (
                    await conn.execute(
                        t.broker_accounts.select()
                        .with_only_columns(t.broker_accounts.c.user_id)
                        .where(t.broker_accounts.c.id == account_id)
                    )
                ).first()
            if row is None:
                return None
            owners[account_id] = int(row[0])
        return owners[account_id]

    async def apply_fill(
        self, order: Order, fill: FillReport, *, reconcile_gaps: bool = True
    ) -> Order | None:
        """Book one execution report, once whatever its id (``domain/fills.py``): fill rows,
        order, position, cash and the day's P&L in one transaction (``booking.py``).

        Returns the updated order, or None when there was nothing (more) to book. A report
        that shows executions hoga has not booked but cannot price asks for reconciliation
        (unless it comes from reconciliation itself: ``reconcile_gaps=False``).
        """
        async with (
            self._account_locks[order.account_id],
            self._db.tx(Actor.user(order.user_id)) as conn,
        ):
            order = await self._reload(conn, order)
            p = fills.plan(
                order_qty=order.qty,
                filled_qty=order.filled_qty,
                filled_amount=order.filled_amount,
                qty=fill.qty,
                price=fill.price,
                cum_qty=fill.cum_qty,
                cum_amount=fill.cum_amount,
            )
            if p.skip is None:
                acct = await accounts_repo.get_account(conn, order.user_id, order.account_id)
                inst = self._quotes.instrument(order.symbol)
                booked = await booking.book_parts(
                    conn,
                    order,
                    fill,
                    p.parts,
                    rate=acct.commission_rate if acct else krx.DEFAULT_COMMISSION_RATE,
                    market=inst.market if inst else "KOSPI",
                    now=self._clock.now(),
                )
                updated = await self._reload(conn, order) if booked else None
        if p.skip is not None:
            if p.skip != "duplicate":
                log.warning(
                    "fill %s for order %s not booked (%s: qty %s, cumulative %s, booked %s/%s)",
                    fill.fill_id,
                    order.id,
                    p.skip,
                    fill.qty,
                    fill.cum_qty,
                    order.filled_qty,
                    order.qty,
                )
                if reconcile_gaps:
                    # The broker knows executions hoga cannot book from this report alone.
                    self.on_unknown(order.account_id)
            return None
        if updated is None:
            return None
        self.stats["fills"] += len(booked)
        for b in booked:
            self._bus.publish(
                order.user_id,
                {
                    "type": "fill",
                    "fill": {
                        "id": b.row_id,
                        "order_id": order.id,
                        "strategy_id": order.strategy_id,
                        "symbol": order.symbol,
                        "side": order.side.value,
                        "qty": b.qty,
                        "price": b.price,
                        "commission": b.commission,
                        "tax": b.tax,
                        "ts": b.ts.isoformat(),
                        "account_id": order.account_id,
                    },
                },
            )
        self._publish(updated)
        return updated

    async def apply_report(self, order: Order, rep: OrderStatusReport) -> Order | None:
        """Bring an order in line with the broker's status report (fills come separately)."""
        target = rep.status
        if order.status in TERMINAL or target == order.status:
            return None
        values: dict[str, Any] = {}
        if order.broker_order_id is None:
            values["broker_order_id"] = rep.broker_order_id
        if target == S.ACCEPTED and order.status in (S.SUBMITTING, S.UNKNOWN):
            return await self.move(order, S.ACCEPTED, detail="broker: accepted", **values)
        if target in (S.CANCELLED, S.REJECTED, S.EXPIRED) and rep.filled_qty <= order.filled_qty:
            extra = (
                {"reason_code": f"broker.{target.value.lower()}", "reason": rep.reason}
                if target == S.REJECTED
                else {}
            )
            if order.status in (S.SUBMITTING,):
                if target == S.REJECTED:
                    return None  # the place() answer (a refusal) will settle it
                # The broker had the order and already ended it (an IOC/FOK rest cancelled on
                # arrival) before its answer reached us: accepted, then ended.
                accepted = await self.move(order, S.ACCEPTED, detail="broker: accepted", **values)
                if accepted is None:
                    return None
                order, values = accepted, {}
            return await self.move(
                order, target, detail=f"broker: {target.value.lower()}", **values, **extra
            )
        if (
            target in (S.PARTIALLY_FILLED, S.FILLED)
            and order.status in (S.UNKNOWN,)
            and rep.filled_qty == 0
        ):
            return await self.move(order, S.ACCEPTED, detail="broker: working", **values)
        return None

    # ------------------------------------------------------------------ start-up and day end

    async def recover(self) -> dict[str, int]:
        """After a (re)start: queued orders go back in the queue; orders caught mid-submit
        become UNKNOWN for reconciliation. Nothing is resent blindly."""
        counts = {"requeued": 0, "unknown": 0}
        async with self._db.tx(SYSTEM) as conn:
            pending = await repo.open_orders(
                conn, statuses=[S.QUEUED.value, S.SUBMITTING.value, S.CANCEL_PENDING.value]
            )
            brokers = {a.id: a.broker for a in await accounts_repo.all_active_accounts(conn)}
        for order in pending:
            broker = brokers.get(order.account_id, "paper")
            if order.status == S.QUEUED:
                self.enqueue(order, broker, Kind.PLACE, order.priority)
                counts["requeued"] += 1
            elif order.status == S.SUBMITTING:
                await self.move(
                    order,
                    S.UNKNOWN,
                    detail="server restarted during submit",
                    reason_code="broker.unknown",
                    reason="재시작 중 전송 결과 확인 필요 (reconciling)",
                )
                counts["unknown"] += 1
            elif order.status == S.CANCEL_PENDING:
                self.enqueue(order, broker, Kind.CANCEL, Priority.URGENT)
        return counts

    async def expire_stale(self, today: date) -> int:
        """Queued orders of earlier days expire (the broker expires its own at day end)."""
        n = 0
        async with self._db.tx(SYSTEM) as conn:
            stale = [
                o
                for o in await repo.open_orders(conn, statuses=[S.QUEUED.value])
                if o.trading_day < today
            ]
        for order in stale:
            # Recorded first: if the database fails here the order is still queued, in both.
            if await self.move(order, S.EXPIRED, detail="day ended before sending") is not None:
                self.queue.remove(order.id, Kind.PLACE)
                n += 1
        return n

    def held_events(self) -> int:
        """Execution events waiting for the database (see on_execution)."""
        return self._held.count()

    async def stop(self) -> None:
        """Stop replaying held execution events (reconciliation recovers what they said)."""
        await self._held.stop()

    # ------------------------------------------------------------------ kill switches

    async def set_server_state(self, state: str, *, actor_id: int | None, ip: str | None) -> None:
        if state not in (risk.ACTIVE, risk.REDUCING, risk.HALTED):
            raise InvalidInput("state must be ACTIVE, REDUCING or HALTED", "risk.bad_state")
        now = self._clock.now()
        async with self._db.tx(SYSTEM) as conn:
            row = (
                await conn.execute(
                    t.system_state.select().where(t.system_state.c.key == "trading_state")
                )
            ).first()
            if row is None:
                await conn.execute(
                    t.system_state.insert().values(
                        key="trading_state", value={"state": state}, updated_at=now
                    )
                )
            else:
                await conn.execute(
                    t.system_state.update()
                    .where(t.system_state.c.key == "trading_state")
                    .values(value={"state": state}, updated_at=now)
                )
            await audit.record(
                conn,
                action="server.trading_state",
                now=now,
                user_id=None,
                actor_id=actor_id,
                ip=ip,
                detail={"from": self.server_state, "to": state},
            )
        self.server_state = state

    async def load_server_state(self) -> str:
        async with self._db.tx(SYSTEM) as conn:
            row = (
                await conn.execute(
                    t.system_state.select().where(t.system_state.c.key == "trading_state")
                )
            ).first()
        self.server_state = str(row.value.get("state", risk.ACTIVE)) if row else risk.ACTIVE
        return self.server_state

    # ------------------------------------------------------------------ reconciliation hooks

    async def open_at_broker(self, account_id: int) -> list[Order]:
        user_id = await self._owner(account_id)
        if user_id is None:
            return []
        async with self._db.tx(Actor.user(user_id)) as conn:
            return [
                o
                for o in await repo.open_orders(conn, user_id=user_id, account_id=account_id)
                if o.status in AT_BROKER or o.status == S.SUBMITTING
            ]

    async def account_ref(self, account_id: int) -> AccountRef | None:
        user_id = await self._owner(account_id)
        if user_id is None:
            return None
        try:
            return await self._accounts.ref_for(user_id, account_id)
        except NotFound:
            return None
