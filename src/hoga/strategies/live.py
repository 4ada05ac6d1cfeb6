"""The live driver: each user's running strategies on the shared feed, one worker task apiece.

Contract:

* **Running set.** A strategy runs here when its status says ``running`` and this server
  started it: at start-up (``start``), on ``resume``, when this server takes a user over
  (``start_user``) or when its owner starts it (``StrategyService``). A user runs at most
  their tier's ``max_strategies``; a disabled user runs none (the strategy gets an error).
* **Stopping.** ``stop`` (shutdown, pause) and ``stop_user`` (another server takes the user
  over) stop workers after their current hook and keep statuses and open orders, so whoever
  starts them next resumes them; ``disable_user`` stops a disabled user's strategies, cancels
  their open orders and records why as their error.
* **Data.** Each running strategy subscribes to its symbols through the hub. The hub's callback
  and the bar listener only append to the strategy's inbox (ticks conflated to the latest per
  symbol) and wake its worker (``worker.py``), so a slow strategy never slows anyone else.
  Fills and order updates reach the strategy through an ``EventBus`` hook.
* **Restarts.** A strategy's ``state`` dict, positions (from its fills), open orders and cash
  are restored before its ``on_start``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections import Counter, defaultdict
from collections.abc import Callable
from typing import Any

from hoga.domain.clock import Clock
from hoga.domain.errors import HogaError, InvalidInput
from hoga.domain.market import Bar, QuoteSource, Tick
from hoga.execution.events import EventBus
from hoga.execution.service import OrderService
from hoga.marketdata.hub import Hub
from hoga.security.auth import AuthService
from hoga.store.db import SYSTEM, Actor, Database
from hoga.store.repos import ledger
from hoga.store.repos import strategies as repo
from hoga.strategies.base import Context, OpenOrder, book_fill, overrides
from hoga.strategies.live_run import Failed, LiveRun, day_key, describe, dump_state
from hoga.strategies.logs import StrategyLogs
from hoga.strategies.placing import OrderPlacer
from hoga.strategies.pnl import fill_of
from hoga.strategies.records import StrategyRecords
from hoga.strategies.registry import Catalog
from hoga.strategies.worker import StrategyWorker

log = logging.getLogger(__name__)


class LiveDriver:
    """Runs strategies live; see the module docstring."""

    def __init__(
        self,
        records: StrategyRecords,
        auth: AuthService,
        orders: OrderService,
        hub: Hub,
        bus: EventBus,
        quotes: QuoteSource,
        catalog: Catalog,
    ) -> None:
        self._records = records
        self._db: Database = records.db
        self._clock: Clock = records.clock
        self._auth = auth
        self._hub = hub
        self._quotes = quotes
        self._catalog = catalog
        self._runs: dict[int, LiveRun] = {}
        self._by_symbol: dict[str, set[LiveRun]] = defaultdict(set)
        self._started = False
        self._logs = StrategyLogs(bus, self._clock)
        self._placer = OrderPlacer(self._db, orders)
        self._worker = StrategyWorker(
            self._db, self._clock, records, self._placer, self._logs, self._forget
        )
        #: The server is paused: nothing runs; statuses stay for ``resume``.
        self.suspended = False
        # Cluster mode (cluster/node.py): which users' strategies run here, and how a start or
        # stop recorded for a user owned elsewhere reaches the owner (``sync_user`` there).
        self.owns: Callable[[int], bool] | None = None
        self.on_remote: Callable[[int], None] = lambda user_id: None
        bus.add_hook(self._on_event)
        hub.bars.add_listener(self._on_bar)

    # ------------------------------------------------------------------ start-up / shutdown

    async def start(self) -> None:
        """Start every strategy that was running when the server stopped (none while the
        server is paused: they keep their status and start on ``resume``). In cluster mode
        only those of the users this server owns (``owns``)."""
        if self.suspended:
            self._started = True
            log.info("server paused: strategies were not started")
            return
        async with self._db.tx(SYSTEM) as conn:
            running = [
                r
                for r in await repo.with_status(conn, ["running"])
                if r.id not in self._runs and (self.owns is None or self.owns(r.user_id))
            ]
        by_user: dict[int, list[repo.StrategyRecord]] = defaultdict(list)
        for rec in running:
            by_user[rec.user_id].append(rec)
        for user_id, recs in by_user.items():
            await self._start_records(user_id, recs)
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

    async def start_user(self, user_id: int) -> int:
        """This server took the user over: start their strategies whose status says running
        (within their tier, none while paused or disabled). Returns how many now run."""
        if self.suspended:
            return 0
        async with self._records.lock(user_id):
            async with self._db.tx(Actor.user(user_id)) as conn:
                recs = [
                    r
                    for r in await repo.list_for_user(conn, user_id)
                    if r.status == "running" and r.id not in self._runs
                ]
            await self._start_records(user_id, recs)
            return self.running_for(user_id)

    async def stop_user(self, user_id: int) -> int:
        """This server no longer owns the user: stop their workers as at shutdown (statuses,
        state and open orders stay, for the server that takes them over). Returns how many."""
        async with self._records.lock(user_id):
            runs = [r for r in list(self._runs.values()) if r.rec.user_id == user_id]
            await asyncio.gather(
                *(self._halt(run, "shutdown") for run in runs), return_exceptions=True
            )
        return len(runs)

    async def sync_user(self, user_id: int) -> int:
        """Cluster mode: another server started, stopped or deleted one of this owner's
        user's strategies in the database; make the running set match it. Returns how many
        now run."""
        async with self._records.lock(user_id):
            async with self._db.tx(Actor.user(user_id)) as conn:
                recs = await repo.list_for_user(conn, user_id)
            wanted = {r.id for r in recs if r.status == "running"}
            for run in [r for r in list(self._runs.values()) if r.rec.user_id == user_id]:
                if run.id not in wanted:
                    await self._halt(run, "shutdown")  # its new status is in the database
            if not self.suspended:
                fresh = [r for r in recs if r.id in wanted and r.id not in self._runs]
                await self._start_records(user_id, fresh)
            return self.running_for(user_id)

    def remote(self, user_id: int) -> bool:
        """Cluster mode: the user is owned by another server; tell it (its ``sync_user``
        applies what was just recorded) and return True. False on the owner or alone."""
        if self.owns is None or self.owns(user_id):
            return False
        self.on_remote(user_id)
        return True

    async def disable_user(self, user_id: int, message: str) -> int:
        """The user was disabled: stop their running strategies now (their open orders are
        cancelled, as on a stop) and record why as the strategies' error. Returns how many."""
        async with self._records.lock(user_id):
            runs = [r for r in list(self._runs.values()) if r.rec.user_id == user_id]
            for run in runs:
                await self._halt(run, "stop")
                await self._records.set_error(run.rec, message)
        if runs:
            log.warning("user %s disabled: stopped %d strategies", user_id, len(runs))
        return len(runs)

    async def _start_records(self, user_id: int, recs: list[repo.StrategyRecord]) -> None:
        """Start the user's strategies in ``recs`` that their tier and standing allow."""
        try:
            user = await self._auth.user(user_id)
            allowed = (await self._auth.tier(user.tier)).max_strategies
            active = user.is_active
        except HogaError:
            allowed, active = 0, False
        already = self.running_for(user_id)
        for n, rec in enumerate(recs, start=already):
            if not active:
                await self._records.set_error(
                    rec, "사용자가 비활성화되어 시작하지 않았습니다 (user disabled)"
                )
            elif n >= allowed:
                await self._records.set_error(
                    rec,
                    f"등급 한도({allowed}개)를 넘어 재시작하지 않았습니다 "
                    f"(the tier allows {allowed} running strategies)",
                )
            else:
                await self.launch(rec)

    def status(self) -> dict[str, Any]:
        runs = list(self._runs.values())
        return {
            "running": len(runs),
            "by_kind": dict(Counter(r.rec.kind for r in runs)),
            "queued_events": sum(len(r.inbox) + len(r.ticks) for r in runs),
            "events_processed": sum(r.events for r in runs),
            "errors_since_start": self._records.errors,
            "catalog": self._catalog.kinds(),
        }

    # ------------------------------------------------------------------ for the service

    def is_running(self, strategy_id: int) -> bool:
        return strategy_id in self._runs

    def running_for(self, user_id: int) -> int:
        """How many of the user's strategies run here."""
        return sum(1 for r in self._runs.values() if r.rec.user_id == user_id)

    def recent_log(self, user_id: int, strategy_id: int) -> list[dict[str, Any]]:
        """The strategy's last published log lines, oldest first (its owner's only)."""
        return self._logs.recent(user_id, strategy_id)

    async def halt(self, strategy_id: int, mode: str) -> bool:
        """Stop the strategy's worker (``stop`` cancels its open orders; ``pause`` does not).
        False if it was not running here."""
        run = self._runs.get(strategy_id)
        if run is None:
            return False
        await self._halt(run, mode)
        return True

    async def cancel_open(self, rec: repo.StrategyRecord) -> None:
        """Cancel a strategy's open orders while it is not running."""
        await self._placer.cancel_open(rec)

    # ------------------------------------------------------------------ launching

    async def launch(self, rec: repo.StrategyRecord) -> None:
        """Start the strategy's worker; if it cannot start, record why as its error."""
        try:
            await self._launch(rec)
        except Failed as f:
            self._forget(self._runs.get(rec.id))
            await self._records.set_error(rec, describe(f.hook, f.exc))
        except HogaError as e:
            self._forget(self._runs.get(rec.id))
            await self._records.set_error(rec, e.message)

    async def _launch(self, rec: repo.StrategyRecord) -> None:
        cls = self._catalog.get(rec.kind)
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
        run = LiveRun(rec, ctx)
        run.wants_ticks = overrides(cls, "on_tick")
        today = day_key(self._clock.time())
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
            ctx._set_position(f.symbol, book_fill(ctx.position(f.symbol), fill_of(f)))
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
        run.saved_state = dump_state(ctx.state)
        try:
            run.strategy = cls(ctx, params)
        except Exception as e:
            raise Failed("__init__", e) from None
        run.sub = self._hub.subscribe(
            list(rec.symbols), self._tick_callback(run), owner=f"strategy:{rec.id}"
        )
        run.task = asyncio.get_running_loop().create_task(
            self._worker.work(run), name=f"strategy-{rec.id}"
        )

    def _forget(self, run: LiveRun | None) -> None:
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

    async def _halt(self, run: LiveRun, mode: str) -> None:
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

    # ------------------------------------------------------------------ event intake (must be quick)

    def _tick_callback(self, run: LiveRun) -> Callable[[Tick], None]:
        ctx, days, ticks = run.ctx, run.days, run.ticks

        def on_tick(tick: Tick) -> None:
            ctx._last[tick.symbol] = tick.price
            day = day_key(tick.ts)
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
