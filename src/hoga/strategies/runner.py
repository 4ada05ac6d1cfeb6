"""The strategy runner: each user's strategies on the shared feed, one worker task apiece.

Contract:

* **Limits.** A user has at most their tier's ``max_strategies`` strategies, and at most that
  many running (the tier may have been lowered since they were created).
* **Lifecycle.** ``created`` -> ``running`` (start) -> ``paused`` (pause: orders stay working)
  or ``stopped`` (stop: the strategy's open orders are cancelled) -> ``running`` again;
  ``error`` when the strategy raised. Every change is stored and published to the user's
  event stream as ``{"type": "strategy", "strategy": view}``.
* **Data.** Each running strategy subscribes to its symbols through the hub. The hub's callback
  and the bar listener only append to the strategy's inbox (ticks conflated to the latest per
  symbol) and wake its worker, so a slow strategy never slows the hub or anyone else.
* **Isolation.** A hook that raises stops that strategy alone: its error is stored (visible in
  the API and ``/ws/events``), its open orders are cancelled, and nothing else is touched.
* **Orders.** The worker hands the context's outbox to ``OrderService.submit`` with
  ``strategy_id`` and ``source="strategy"`` - the same risk gate, queue and limits as any order.
  Fills come back through the event bus hook to ``on_fill`` and the strategy's own position.
* **Restarts.** Strategies that were running are started again by ``start()`` (server
  start-up, after the feeds); their ``state`` dict, positions (from their fills) and open
  orders are restored first.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import secrets
from collections import Counter, defaultdict, deque
from collections.abc import Callable
from datetime import datetime
from typing import Any

from hoga.domain import krx
from hoga.domain.clock import KST, Clock
from hoga.domain.errors import (
    Conflict,
    Forbidden,
    HogaError,
    InvalidInput,
    NotFound,
    StorageUnavailable,
)
from hoga.domain.market import Bar, QuoteSource, Tick
from hoga.domain.orders import OrderIntent, OrderStatus, OrderType, Side
from hoga.domain.portfolio import Position
from hoga.domain.ratelimit import SlidingWindow
from hoga.execution import retry
from hoga.execution.events import EventBus
from hoga.execution.service import OrderService
from hoga.marketdata.hub import Hub
from hoga.marketdata.hub import Subscription as HubSubscription
from hoga.marketdata.universe import Universe
from hoga.security.auth import AuthService
from hoga.store.db import SYSTEM, Actor, Database
from hoga.store.repos import accounts as accounts_repo
from hoga.store.repos import audit, ledger
from hoga.store.repos import strategies as repo
from hoga.strategies.base import Context, Fill, OpenOrder, Strategy, book_fill, overrides
from hoga.strategies.registry import Catalog

log = logging.getLogger(__name__)

_DAY = 86_400
_KST = 9 * 3600
STATUSES = ("created", "running", "paused", "stopped", "error")
_STATE_SAVE_EVERY = 5.0
_MAX_STATE_BYTES = 64_000
# Log lines kept per strategy for a page opened later (GET /api/strategies/{id}/log).
_RECENT_LOG = 200
_SIDE_KO = {"buy": "매수", "sell": "매도"}


def _day_key(ts: float) -> int:
    return int((ts + _KST) // _DAY)


class _Failed(Exception):
    def __init__(self, hook: str, exc: BaseException) -> None:
        super().__init__(hook)
        self.hook = hook
        self.exc = exc


class _Live:
    """A running strategy: its instance, context, inbox and worker."""

    def __init__(self, rec: repo.StrategyRecord, ctx: Context) -> None:
        self.rec = rec
        self.ctx = ctx
        self.strategy: Strategy[Any] | None = None
        self.inbox: deque[tuple[str, Any]] = deque()
        self.ticks: dict[str, Tick] = {}
        self.wake = asyncio.Event()
        self.task: asyncio.Task[None] | None = None
        self.sub: HubSubscription | None = None
        self.wants_ticks = False
        self.days: dict[str, int] = {}
        self.seen_fills: set[int] = set()
        self.cash_stale = True
        self.saved_state = ""
        self.saved_at = 0.0
        self.stop_mode: str | None = None
        self.log_window = SlidingWindow(20, 10.0)
        self.log_dropped = 0
        self.events = 0

    @property
    def id(self) -> int:
        return self.rec.id

    def push(self, kind: str, payload: Any) -> None:
        self.inbox.append((kind, payload))
        self.wake.set()


class StrategyRunner:
    """See the module docstring."""

    def __init__(
        self,
        db: Database,
        clock: Clock,
        auth: AuthService,
        orders: OrderService,
        hub: Hub,
        bus: EventBus,
        universe: Universe,
        quotes: QuoteSource,
        catalog: Catalog,
    ) -> None:
        self._db = db
        self._clock = clock
        self._auth = auth
        self._orders = orders
        self._hub = hub
        self._bus = bus
        self._universe = universe
        self._quotes = quotes
        self.catalog = catalog
        self._runs: dict[int, _Live] = {}
        self._by_symbol: dict[str, set[_Live]] = defaultdict(set)
        self._locks: dict[int, asyncio.Lock] = defaultdict(asyncio.Lock)
        self._errors = 0
        self._started = False
        # The last lines each strategy's log published, for a page opened after they were
        # sent (the event stream is live only): strategy id -> (user id, lines).
        self._recent: dict[int, tuple[int, deque[dict[str, Any]]]] = {}
        #: The server is paused: nothing runs; statuses stay for ``resume``.
        self.suspended = False
        # Cluster mode (cluster/node.py): which users' strategies run here, and how a start or
        # stop recorded for a user owned elsewhere reaches the owner.
        self.owns: Callable[[int], bool] | None = None
        self.on_remote: Callable[[int], None] = lambda user_id: None
        bus.add_hook(self._on_event)
        hub.bars.add_listener(self._on_bar)

    # ------------------------------------------------------------------ start-up / shutdown

    async def start(self, user_id: int | None = None) -> None:
        """Start every strategy that was running when the server stopped (none while the
        server is paused: they keep their status and start on ``resume``). ``user_id``: that
        user's only. In cluster mode only the users this server owns (``owns``)."""
        if self.suspended:
            self._started = True
            log.info("server paused: strategies were not started")
            return
        async with self._db.tx(SYSTEM) as conn:
            running = [
                r
                for r in await repo.with_status(conn, ["running"])
                if r.id not in self._runs
                and (user_id is None or r.user_id == user_id)
                and (self.owns is None or self.owns(r.user_id))
            ]
        by_user: dict[int, list[repo.StrategyRecord]] = defaultdict(list)
        for rec in running:
            by_user[rec.user_id].append(rec)
        for user_id, recs in by_user.items():
            try:
                user = await self._auth.user(user_id)
                allowed = (await self._auth.tier(user.tier)).max_strategies
                active = user.is_active
            except HogaError:
                allowed, active = 0, False
            for n, rec in enumerate(recs):
                if not active:
                    await self._set_error(
                        rec, "사용자가 비활성화되어 시작하지 않았습니다 (user disabled)"
                    )
                elif n >= allowed:
                    await self._set_error(
                        rec,
                        f"등급 한도({allowed}개)를 넘어 재시작하지 않았습니다 "
                        f"(the tier allows {allowed} running strategies)",
                    )
                else:
                    await self._launch_or_error(rec)
        self._started = True
        if running:
            log.info("strategies restarted: %d of %d", len(self._runs), len(running))

    async def suspend(self) -> None:
        """The server pauses: stop every worker; statuses stay, so ``resume`` restarts them."""
        self.suspended = True
        await self.stop()

    async def resume(self) -> None:
        """The server resumes: start the strategies whose status says running."""
        self.suspended = False
        await self.start()

    async def stop(self) -> None:
        """Server shutdown: stop every worker; statuses stay as they are for the next start."""
        await asyncio.gather(
            *(self._halt(run, "shutdown") for run in list(self._runs.values())),
            return_exceptions=True,
        )
        self._started = False

    async def start_user(self, user_id: int) -> None:
        """Cluster mode: this server now owns the user - start their strategies whose status
        says running (what a restart does, for one user)."""
        async with self._locks[user_id]:
            await self.start(user_id)

    async def sync_user(self, user_id: int) -> None:
        """Cluster mode: another server started or stopped one of this owner's user's
        strategies in the database; make the running set match it."""
        async with self._locks[user_id]:
            async with self._db.tx(SYSTEM) as conn:
                wanted = {r.id for r in await repo.with_status(conn, ["running"])}
            for run in [r for r in list(self._runs.values()) if r.rec.user_id == user_id]:
                if run.id not in wanted:
                    await self._halt(run, "shutdown")  # its new status is in the database
            await self.start(user_id)

    async def stop_user(self, user_id: int, message: str | None = None) -> int:
        """The user was disabled (``message``): stop their running strategies now (their open
        orders are cancelled, as on a stop) and record why as the strategies' error. Without a
        message (cluster mode: another server owns the user now) they stop as at a shutdown,
        statuses kept, so the new owner starts them. Returns how many."""
        if message is None:
            async with self._locks[user_id]:
                runs = [r for r in list(self._runs.values()) if r.rec.user_id == user_id]
                await asyncio.gather(*(self._halt(r, "shutdown") for r in runs))
            return len(runs)
        async with self._locks[user_id]:
            runs = [r for r in list(self._runs.values()) if r.rec.user_id == user_id]
            for run in runs:
                await self._halt(run, "stop")
                await self._set_error(run.rec, message)
        if runs:
            log.warning("user %s disabled: stopped %d strategies", user_id, len(runs))
        return len(runs)

    def status(self) -> dict[str, Any]:
        runs = list(self._runs.values())
        return {
            "running": len(runs),
            "by_kind": dict(Counter(r.rec.kind for r in runs)),
            "queued_events": sum(len(r.inbox) + len(r.ticks) for r in runs),
            "events_processed": sum(r.events for r in runs),
            "errors_since_start": self._errors,
            "catalog": self.catalog.kinds(),
        }

    # ------------------------------------------------------------------ API operations

    def _validate_symbols(self, cls: type[Strategy[Any]], symbols: Any) -> list[str]:
        if not isinstance(symbols, list) or not all(isinstance(s, str) for s in symbols):
            raise InvalidInput(
                "symbols는 종목코드 목록이어야 합니다 (symbols must be a list of codes)",
                "strategy.unknown_symbol",
                field="symbols",
            )
        out = list(dict.fromkeys(krx.normalize_symbol(s) for s in symbols))
        bad = [s for s in out if not krx.is_valid_symbol(s) or s not in self._universe]
        if bad:
            raise InvalidInput(
                f"알 수 없는 종목입니다: {', '.join(bad[:10])} (unknown symbols)",
                "strategy.unknown_symbol",
                field="symbols",
                symbols=bad[:50],
            )
        if not cls.min_symbols <= len(out) <= cls.max_symbols:
            raise InvalidInput(
                f"{cls.kind} 전략은 종목 {cls.min_symbols}~{cls.max_symbols}개를 받습니다 "
                f"(takes {cls.min_symbols} to {cls.max_symbols} symbols, got {len(out)})",
                "strategy.bad_symbols",
                field="symbols",
            )
        return out

    async def create(
        self,
        user_id: int,
        *,
        name: str,
        kind: str,
        symbols: Any,
        params: Any,
        account_id: int | None = None,
        ip: str | None = None,
    ) -> dict[str, Any]:
        """Validate and record a new strategy (status ``created``); nothing is half-created."""
        cls = self.catalog.get(kind)
        codes = self._validate_symbols(cls, symbols)
        validated = self.catalog.params(kind, params if params is not None else {}, tuple(codes))
        name = name.strip()
        if not name:
            raise InvalidInput(
                "이름이 필요합니다 (name required)", "strategy.bad_name", field="name"
            )
        user = await self._auth.user(user_id)
        tier = await self._auth.tier(user.tier)
        now = self._clock.now()
        async with self._locks[user_id], self._db.tx(Actor.user(user_id)) as conn:
            if account_id is None:
                acct = await accounts_repo.paper_account(conn, user_id)
                if acct is None:
                    raise NotFound("계좌가 없습니다 (no account)", "account.not_found")
            else:
                acct = await accounts_repo.require_account(conn, user_id, account_id)
            count = await repo.count_for_user(conn, user_id)
            if count >= tier.max_strategies:
                raise Forbidden(
                    f"{tier.name} 등급은 전략을 {tier.max_strategies}개까지 만들 수 있습니다 "
                    f"(your tier allows {tier.max_strategies} strategies)",
                    "strategy.limit_reached",
                    limit=tier.max_strategies,
                )
            rec = await repo.create(
                conn,
                user_id=user_id,
                account_id=acct.id,
                name=name,
                kind=cls.kind,
                symbols=codes,
                params=validated.model_dump(mode="json"),
                now=now,
            )
            await audit.record(
                conn,
                action="strategy.create",
                now=now,
                user_id=user_id,
                ip=ip,
                target=f"strategy:{rec.id}",
                detail={"kind": rec.kind, "symbols": codes},
            )
        return await self._announce(rec)

    async def _get(self, user_id: int, strategy_id: int) -> repo.StrategyRecord:
        async with self._db.tx(Actor.user(user_id)) as conn:
            rec = await repo.get(conn, user_id, strategy_id)
        if rec is None:
            raise NotFound("전략을 찾을 수 없습니다 (no such strategy)", "strategy.not_found")
        return rec

    async def get(self, user_id: int, strategy_id: int) -> dict[str, Any]:
        return await self.view(await self._get(user_id, strategy_id))

    async def list_strategies(self, user_id: int) -> list[dict[str, Any]]:
        async with self._db.tx(Actor.user(user_id)) as conn:
            recs = await repo.list_for_user(conn, user_id)
            counts = await repo.order_counts(conn, user_id)
            fills = {r.id: await repo.fills(conn, user_id, r.id) for r in recs}
        return [self._view(r, fills[r.id], counts.get(r.id, 0)) for r in recs]

    async def start_strategy(
        self, user_id: int, strategy_id: int, *, ip: str | None = None
    ) -> dict[str, Any]:
        async with self._locks[user_id]:
            rec = await self._get(user_id, strategy_id)
            if rec.id in self._runs:
                return await self.view(rec)
            if self.suspended:
                raise Conflict(
                    "서버가 일시정지되어 전략을 시작할 수 없습니다. 관리자가 재개한 뒤 시작하세요 "
                    "(the server is paused: strategies start after an admin resumes it)",
                    "server.paused",
                )
            self.catalog.get(rec.kind)
            user = await self._auth.user(user_id)
            tier = await self._auth.tier(user.tier)
            mine = sum(1 for r in self._runs.values() if r.rec.user_id == user_id)
            if mine >= tier.max_strategies:
                raise Forbidden(
                    f"{tier.name} 등급은 전략을 {tier.max_strategies}개까지 실행할 수 있습니다 "
                    f"(your tier runs at most {tier.max_strategies} strategies)",
                    "strategy.limit_reached",
                    limit=tier.max_strategies,
                )
            rec = await self._update(
                rec,
                status="running",
                last_error=None,
                error_at=None,
                audit_action="strategy.start",
                ip=ip,
            )
            if self.owns is not None and not self.owns(user_id):
                self.on_remote(user_id)  # the owner starts it from the database
            else:
                await self._launch_or_error(rec)
            rec = await self._get(user_id, strategy_id)
        return await self._announce(rec)

    async def stop_strategy(
        self, user_id: int, strategy_id: int, *, ip: str | None = None
    ) -> dict[str, Any]:
        return await self._park(user_id, strategy_id, "stopped", ip)

    async def pause(
        self, user_id: int, strategy_id: int, *, ip: str | None = None
    ) -> dict[str, Any]:
        return await self._park(user_id, strategy_id, "paused", ip)

    async def _park(
        self, user_id: int, strategy_id: int, status: str, ip: str | None
    ) -> dict[str, Any]:
        async with self._locks[user_id]:
            rec = await self._get(user_id, strategy_id)
            run = self._runs.get(rec.id)
            if run is not None:
                await self._halt(run, "stop" if status == "stopped" else "pause")
            elif status == "stopped":
                await self._cancel_open(rec)
            if rec.status != status:
                keep_error = rec.status == "error"
                rec = await self._update(
                    rec,
                    status=status,
                    audit_action=f"strategy.{'stop' if status == 'stopped' else 'pause'}",
                    ip=ip,
                    **({} if keep_error else {"last_error": None, "error_at": None}),
                )
                if self.owns is not None and not self.owns(user_id):
                    self.on_remote(user_id)  # the owner halts its run
        return await self._announce(rec)

    async def delete(self, user_id: int, strategy_id: int, *, ip: str | None = None) -> None:
        async with self._locks[user_id]:
            rec = await self._get(user_id, strategy_id)
            run = self._runs.get(rec.id)
            if run is not None:
                await self._halt(run, "stop")
            else:
                await self._cancel_open(rec)
            now = self._clock.now()
            async with self._db.tx(Actor.user(user_id)) as conn:
                await repo.remove(conn, user_id, rec.id)
                await audit.record(
                    conn,
                    action="strategy.delete",
                    now=now,
                    user_id=user_id,
                    ip=ip,
                    target=f"strategy:{rec.id}",
                    detail={"kind": rec.kind, "name": rec.name},
                )
        self._bus.publish(
            user_id, {"type": "strategy_deleted", "strategy_id": rec.id, "name": rec.name}
        )

    # ------------------------------------------------------------------ views and P&L

    async def view(self, rec: repo.StrategyRecord) -> dict[str, Any]:
        async with self._db.tx(Actor.user(rec.user_id)) as conn:
            fills = await repo.fills(conn, rec.user_id, rec.id)
            counts = await repo.order_counts(conn, rec.user_id)
        return self._view(rec, fills, counts.get(rec.id, 0))

    def _view(
        self, rec: repo.StrategyRecord, fills: list[repo.StrategyFill], orders: int
    ) -> dict[str, Any]:
        positions: dict[str, Position] = {}
        for f in fills:
            positions[f.symbol] = book_fill(positions.get(f.symbol, Position()), _fill_of(f))
        realized = sum(p.realized_pnl for p in positions.values())
        unrealized = 0
        held = []
        for symbol, p in positions.items():
            if not p.qty:
                continue
            tick = self._hub.last(symbol) or self._quotes.last(symbol)
            price = tick.price if tick else p.avg_price
            unrealized += p.unrealized_pnl(price)
            held.append(
                {
                    "symbol": symbol,
                    "qty": p.qty,
                    "avg_price": p.avg_price,
                    "market_price": price,
                    "unrealized_pnl": p.unrealized_pnl(price),
                }
            )
        return {
            "id": rec.id,
            "name": rec.name,
            "kind": rec.kind,
            "symbols": list(rec.symbols),
            "params": rec.params,
            "account_id": rec.account_id,
            "status": rec.status,
            "last_error": {"message": rec.last_error, "at": rec.error_at.isoformat()}
            if rec.last_error and rec.error_at
            else None,
            "pnl": {
                "realized": realized,
                "unrealized": unrealized,
                "fills": len(fills),
                "orders": orders,
            },
            "positions": held,
            "state": rec.state,
            "created_at": rec.created_at.isoformat(),
            "updated_at": rec.updated_at.isoformat(),
        }

    async def _announce(self, rec: repo.StrategyRecord) -> dict[str, Any]:
        view = await self.view(rec)
        self._bus.publish(rec.user_id, {"type": "strategy", "strategy": view})
        return view

    async def _update(
        self,
        rec: repo.StrategyRecord,
        *,
        audit_action: str | None = None,
        ip: str | None = None,
        **values: Any,
    ) -> repo.StrategyRecord:
        now = self._clock.now()
        async with self._db.tx(Actor.user(rec.user_id)) as conn:
            fresh = await repo.update_row(conn, rec.user_id, rec.id, now, **values)
            if audit_action:
                await audit.record(
                    conn,
                    action=audit_action,
                    now=now,
                    user_id=rec.user_id,
                    ip=ip,
                    target=f"strategy:{rec.id}",
                    detail={"status": values.get("status")},
                )
        if fresh is None:
            raise NotFound("전략을 찾을 수 없습니다 (no such strategy)", "strategy.not_found")
        return fresh

    async def _set_error(self, rec: repo.StrategyRecord, message: str) -> repo.StrategyRecord:
        self._errors += 1
        fresh = await self._update(
            rec, status="error", last_error=message[:2000], error_at=self._clock.now()
        )
        await self._announce(fresh)
        return fresh

    # ------------------------------------------------------------------ launching

    async def _launch_or_error(self, rec: repo.StrategyRecord) -> None:
        try:
            await self._launch(rec)
        except _Failed as f:
            self._forget(self._runs.get(rec.id))
            await self._set_error(rec, _describe(f.hook, f.exc))
        except HogaError as e:
            self._forget(self._runs.get(rec.id))
            await self._set_error(rec, e.message)

    async def _launch(self, rec: repo.StrategyRecord) -> None:
        cls = self.catalog.get(rec.kind)
        try:
            params = cls.Params.model_validate(rec.params)
        except ValueError as e:
            raise InvalidInput(
                f"저장된 매개변수가 유효하지 않습니다 (stored params invalid): {e}"
            ) from None
        ctx = Context(
            strategy_id=rec.id,
            symbols=rec.symbols,
            time=self._clock.time,
            id_prefix=f"s{rec.id}-{secrets.token_hex(4)}-",
            history=max(2, cls.lookback(params)),
            state=rec.state,
        )
        run = _Live(rec, ctx)
        run.wants_ticks = overrides(cls, "on_tick")
        today = _day_key(self._clock.time())
        run.days = dict.fromkeys(rec.symbols, today)
        # Register first: events that arrive while the snapshot loads wait in the inbox.
        self._runs[rec.id] = run
        for s in rec.symbols:
            self._by_symbol[s].add(run)
        async with self._db.tx(Actor.user(rec.user_id)) as conn:
            fills = await repo.fills(conn, rec.user_id, rec.id)
            open_rows = await repo.open_orders(conn, rec.user_id, rec.id)
            ctx.cash = await ledger.cash(conn, rec.user_id, rec.account_id)
        run.cash_stale = False
        for f in fills:
            run.seen_fills.add(f.id)
            ctx._set_position(f.symbol, book_fill(ctx.position(f.symbol), _fill_of(f)))
        for o in open_rows:
            ctx._track(
                OpenOrder(
                    o.client_order_id,
                    o.symbol,
                    o.side,
                    o.type,
                    int(o.qty),
                    o.price,
                    o.status,
                    int(o.filled_qty),
                    int(o.id),
                )
            )
        for s in rec.symbols:
            ctx._seed_bars(s, self._hub.bars.recent(s, cls.lookback(params)))
            tick = self._hub.last(s) or self._quotes.last(s)
            if tick is not None and tick.volume:
                ctx._last[s] = tick.price
        run.saved_state = _dump(ctx.state)
        try:
            run.strategy = cls(ctx, params)
        except Exception as e:
            raise _Failed("__init__", e) from None
        run.sub = self._hub.subscribe(
            list(rec.symbols), self._tick_callback(run), owner=f"strategy:{rec.id}"
        )
        run.task = asyncio.get_running_loop().create_task(
            self._work(run), name=f"strategy-{rec.id}"
        )

    def _forget(self, run: _Live | None) -> None:
        if run is None:
            return
        self._runs.pop(run.id, None)
        for s in run.rec.symbols:
            group = self._by_symbol.get(s)
            if group is not None:
                group.discard(run)
                if not group:
                    del self._by_symbol[s]
        if run.sub is not None:
            run.sub.close()
            run.sub = None

    # ------------------------------------------------------------------ event intake (must be quick)

    def _tick_callback(self, run: _Live) -> Callable[[Tick], None]:
        ctx, days, ticks = run.ctx, run.days, run.ticks

        def on_tick(tick: Tick) -> None:
            ctx._last[tick.symbol] = tick.price
            day = int((tick.ts + _KST) // _DAY)
            if days.get(tick.symbol) != day:
                days[tick.symbol] = day
                run.push("session", (tick.symbol, day))
            if run.wants_ticks:
                ticks[tick.symbol] = tick
                run.wake.set()

        return on_tick

    def _on_bar(self, bar: Bar) -> None:
        for run in self._by_symbol.get(bar.symbol, ()):
            run.push("bar", bar)

    def _on_event(self, user_id: int, event: dict[str, Any]) -> None:
        try:
            kind = event.get("type")
            if kind == "fill":
                f = event["fill"]
                for run in self._runs.values():
                    if run.rec.user_id == user_id and run.rec.account_id == f.get("account_id"):
                        run.cash_stale = True
                sid = f.get("strategy_id")
                target = self._runs.get(sid) if sid is not None else None
                if target is not None:
                    target.push("fill", f)
            elif kind == "order":
                o = event["order"]
                sid = o.get("strategy_id")
                target = self._runs.get(sid) if sid is not None else None
                if target is not None:
                    target.push("order", o)
        except Exception:
            log.exception("strategy event routing failed")

    # ------------------------------------------------------------------ the worker

    def _call(self, run: _Live, hook: str, *args: Any) -> None:
        assert run.strategy is not None
        try:
            getattr(run.strategy, hook)(*args)
        except Exception as e:
            raise _Failed(hook, e) from None

    async def _work(self, run: _Live) -> None:
        ctx = run.ctx
        try:
            # The runner's own lines (start, orders, fills) go to the strategy's log too: a
            # strategy that logs nothing itself used to leave its live log empty.
            ctx.log.info(f"시작했습니다: {', '.join(run.rec.symbols)} (started)")
            self._call(run, "on_start")
            await self._after(run, save=True)
            while run.stop_mode is None:
                if not run.inbox and not run.ticks:
                    await self._save_state(run, force=False)
                    await run.wake.wait()
                    run.wake.clear()
                    continue
                if run.cash_stale:
                    with contextlib.suppress(StorageUnavailable):  # stays stale: next event
                        await self._refresh_cash(run)
                save = True
                if run.inbox:
                    kind, payload = run.inbox.popleft()
                    if kind == "bar":
                        window = ctx._bars.get(payload.symbol)
                        if window and payload.start <= window[-1].start:
                            continue  # already seeded at launch
                        ctx._push_bar(payload)
                        self._call(run, "on_bar", payload)
                    elif kind == "session":
                        symbol, day = payload
                        self._call(run, "on_session_open", symbol, _date_of(day))
                    elif kind == "fill":
                        fill = self._fill_event(run, payload)
                        if fill is None:
                            continue
                        ctx._apply_fill(fill)
                        ctx.log.info(
                            f"체결 {fill.symbol} {_SIDE_KO.get(fill.side, fill.side)} {fill.qty:,}주 "
                            f"@ {fill.price:,}원 (fill {fill.side} {fill.qty:,} @ {fill.price:,})"
                        )
                        self._call(run, "on_fill", fill)
                    elif kind == "order":
                        self._order_event(run, payload)
                        save = False
                else:
                    symbol = next(iter(run.ticks))
                    tick = run.ticks.pop(symbol)
                    self._call(run, "on_tick", tick)
                    save = False
                run.events += 1
                await self._after(run, save=save)
        except _Failed as f:
            await self._crash(run, f.hook, f.exc)
            return
        except asyncio.CancelledError:
            raise
        except Exception as e:  # a bug of ours, not the strategy's: still contained to it
            log.exception("strategy %s worker failed", run.id)
            await self._crash(run, "runner", e)
            return
        await self._wind_down(run)

    def _fill_event(self, run: _Live, f: dict[str, Any]) -> Fill | None:
        fid = f.get("id")
        if isinstance(fid, int) and fid in run.seen_fills:
            run.seen_fills.discard(fid)
            return None
        oid = f.get("order_id")
        cid = next((o.client_order_id for o in run.ctx._orders.values() if o.order_id == oid), None)
        ts = f.get("ts")
        when = datetime.fromisoformat(ts).timestamp() if isinstance(ts, str) else self._clock.time()
        return Fill(
            cid,
            oid,
            str(f["symbol"]),
            str(f["side"]),
            int(f["qty"]),
            int(f["price"]),
            int(f["commission"]),
            int(f["tax"]),
            when,
        )

    def _order_event(self, run: _Live, o: dict[str, Any]) -> None:
        cid = o.get("client_order_id")
        if not isinstance(cid, str):
            return
        known = run.ctx._orders.get(cid)
        before = known.status if known else None
        run.ctx._order_update(
            cid, str(o.get("status")), order_id=o.get("id"), filled_qty=o.get("filled_qty")
        )
        status = o.get("status")
        if known is not None and status != before and status in ("DENIED", "REJECTED"):
            run.ctx.log.warning(
                f"주문 거부 ({status}) {o.get('side')} {o.get('qty')} {o.get('symbol')}: "
                f"{o.get('reason') or o.get('reason_code')}"
            )

    async def _refresh_cash(self, run: _Live) -> None:
        run.cash_stale = False
        async with self._db.tx(Actor.user(run.rec.user_id)) as conn:
            run.ctx.cash = await ledger.cash(conn, run.rec.user_id, run.rec.account_id)

    async def _after(self, run: _Live, *, save: bool) -> None:
        """After a hook: submit what it asked for, publish its log lines, maybe save state."""
        await self._submit(run, run.ctx._take_outbox())
        self._publish_logs(run)
        if save:
            await self._save_state(run, force=False, due=True)

    async def _submit(self, run: _Live, requests: list[Any]) -> None:
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
                    f"주문 #{order.id} {_SIDE_KO.get(req.side, req.side)} {what} "
                    f"(order #{order.id} {req.side} {what})"
                )
            if order.status == OrderStatus.DENIED:
                ctx.log.warning(
                    f"주문 거부 (denied) {req.side} {req.qty} {req.symbol}: {order.reason or order.reason_code}"
                )

    def _publish_logs(self, run: _Live) -> None:
        lines = run.ctx.log.lines
        if not lines:
            return
        batch = list(lines)
        lines.clear()
        now = self._clock.monotonic()
        for line in batch:
            log.log(
                logging.WARNING if line.level in ("warning", "error") else logging.INFO,
                "strategy %s (%s): %s",
                run.id,
                run.rec.kind,
                line.message,
            )
            if not run.log_window.try_acquire(now):
                run.log_dropped += 1
                continue
            message = line.message
            if run.log_dropped:
                message = f"{message} (+{run.log_dropped} lines suppressed)"
                run.log_dropped = 0
            event = {
                "type": "strategy_log",
                "strategy_id": run.id,
                "level": line.level,
                "message": message,
                "ts": datetime.fromtimestamp(line.ts, KST).isoformat(),
            }
            recent = self._recent.get(run.id)
            if recent is None or recent[0] != run.rec.user_id:
                recent = self._recent[run.id] = (run.rec.user_id, deque(maxlen=_RECENT_LOG))
            recent[1].append(event)
            self._bus.publish(run.rec.user_id, event)

    def recent_log(self, user_id: int, strategy_id: int) -> list[dict[str, Any]]:
        """The strategy's last published log lines, oldest first (its owner's only)."""
        recent = self._recent.get(strategy_id)
        if recent is None or recent[0] != user_id:
            return []
        return list(recent[1])

    async def _save_state(self, run: _Live, *, force: bool, due: bool = False) -> None:
        text = _dump(run.ctx.state)
        if text == run.saved_state:
            return
        now = self._clock.monotonic()
        if not (force or due) and now - run.saved_at < _STATE_SAVE_EVERY:
            return
        if len(text) > _MAX_STATE_BYTES:
            raise _Failed(
                "state",
                ValueError(f"state is {len(text):,} bytes; the limit is {_MAX_STATE_BYTES:,}"),
            )
        try:
            async with self._db.tx(Actor.user(run.rec.user_id)) as conn:
                await repo.save_state(conn, run.rec.user_id, run.id, json.loads(text))
        except StorageUnavailable as e:
            # The state stays unsaved (and due): the next event tries again.
            log.warning("strategy %s: state not saved, storage fault (%s)", run.id, e.code)
            return
        run.saved_state = text
        run.saved_at = now

    # ------------------------------------------------------------------ stopping

    async def _halt(self, run: _Live, mode: str) -> None:
        """Ask the worker to finish (after its current hook) and wait for it."""
        run.stop_mode = mode
        run.wake.set()
        task = run.task
        if task is None:
            self._forget(run)
            return
        try:
            await asyncio.wait_for(asyncio.shield(task), 5.0)
        except TimeoutError:
            log.warning("strategy %s did not stop in time; cancelling it", run.id)
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
            self._forget(run)

    async def _wind_down(self, run: _Live) -> None:
        """The worker's normal end: on_stop, orders it placed there, state, unsubscribe."""
        mode = run.stop_mode or "shutdown"
        self._forget(run)
        before = [o for o in run.ctx.open_orders() if o.order_id is not None]
        try:
            self._call(run, "on_stop")
        except _Failed as f:
            log.warning("strategy %s on_stop raised %s", run.id, type(f.exc).__name__)
            run.ctx.log.error(_describe("on_stop", f.exc))
        requests = run.ctx._take_outbox()
        if mode == "stop":
            await self._cancel_orders(run.rec.user_id, [o.order_id for o in before if o.order_id])
        await self._submit(run, requests)
        self._publish_logs(run)
        try:
            await self._save_state(run, force=True)
        except _Failed as f:
            log.warning("strategy %s: %s", run.id, f.exc)

    async def _crash(self, run: _Live, hook: str, exc: BaseException) -> None:
        """A hook raised: stop this strategy alone and record why."""
        log.warning(
            "strategy %s (%s) stopped: %s in %s", run.id, run.rec.kind, type(exc).__name__, hook
        )
        self._forget(run)
        if hook != "on_stop" and run.strategy is not None:
            with contextlib.suppress(Exception):
                run.strategy.on_stop()
        run.ctx._take_outbox()
        await self._cancel_orders(
            run.rec.user_id, [o.order_id for o in run.ctx.open_orders() if o.order_id]
        )
        self._publish_logs(run)
        with contextlib.suppress(Exception):
            await self._save_state(run, force=True)
        await self._set_error(run.rec, _describe(hook, exc))

    async def _cancel_open(self, rec: repo.StrategyRecord) -> None:
        async with self._db.tx(Actor.user(rec.user_id)) as conn:
            rows = await repo.open_orders(conn, rec.user_id, rec.id)
        await self._cancel_orders(rec.user_id, [int(r.id) for r in rows])

    async def _cancel_orders(self, user_id: int, order_ids: list[int]) -> None:
        for oid in order_ids:
            try:
                await self._orders.cancel(user_id, oid)
            except HogaError:
                pass  # already done, or cannot be cancelled any more
            except Exception:
                log.exception("cancelling order %s failed", oid)


def _fill_of(f: repo.StrategyFill) -> Fill:
    return Fill(
        f.client_order_id,
        f.order_id,
        f.symbol,
        f.side,
        f.qty,
        f.price,
        f.commission,
        f.tax,
        f.ts.timestamp(),
    )


def _date_of(day: int) -> Any:
    return datetime.fromtimestamp(day * _DAY - _KST + 1, KST).date()


def _dump(state: dict[str, Any]) -> str:
    try:
        return json.dumps(state, sort_keys=True, ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError) as e:
        raise _Failed("state", ValueError(f"ctx.state must be JSON-able: {e}")) from None


def _describe(hook: str, exc: BaseException) -> str:
    text = str(exc).strip()
    where = f" in {hook}" if hook not in ("runner", "state") else ""
    return f"{type(exc).__name__}{where}: {text}"[:2000] if text else f"{type(exc).__name__}{where}"
