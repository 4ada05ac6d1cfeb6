"""The worker task of one running strategy: feeds its hooks from the inbox, one event at a time.

Contract:

* **Order of work.** ``on_start`` first; then inbox events in arrival order (bars, session
  opens, fills, order updates), and the latest tick per symbol when the inbox is empty. After
  every hook the context's outbox goes to ``OrderPlacer`` and its log lines are published.
* **State.** ``ctx.state`` is saved when it changed: after bars, session opens and fills, at
  most every 5 s otherwise, and always when the strategy stops. A state that is not JSON-able
  or larger than 64 kB fails the strategy; a storage fault leaves it due for the next event.
* **Isolation.** A hook that raises stops that strategy alone (``crash``): ``on_stop`` is still
  called, its open orders are cancelled, its error is stored and announced.
* **Ending.** ``stop_mode`` set by the driver ends the loop after the current hook
  (``wind_down``): ``on_stop``, the strategy's open orders cancelled on a ``stop`` (not on a
  pause or shutdown), its last requests placed, its state saved.
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import Callable
from datetime import datetime
from typing import Any

from hoga.domain.clock import Clock
from hoga.domain.errors import StorageUnavailable
from hoga.store.db import Actor, Database
from hoga.store.repos import ledger
from hoga.store.repos import strategies as repo
from hoga.strategies.base import Fill
from hoga.strategies.live_run import (
    MAX_STATE_BYTES,
    Failed,
    LiveRun,
    date_of,
    describe,
    dump_state,
)
from hoga.strategies.logs import StrategyLogs
from hoga.strategies.placing import SIDE_KO, OrderPlacer
from hoga.strategies.records import StrategyRecords

log = logging.getLogger(__name__)

_STATE_SAVE_EVERY = 5.0


class StrategyWorker:
    """Runs one strategy's worker loop and its end; see the module docstring.

    ``forget`` is the driver's: it takes a run out of the running set (and its subscriptions).
    """

    def __init__(
        self,
        db: Database,
        clock: Clock,
        records: StrategyRecords,
        placer: OrderPlacer,
        logs: StrategyLogs,
        forget: Callable[[LiveRun], None],
    ) -> None:
        self._db = db
        self._clock = clock
        self._records = records
        self._placer = placer
        self._logs = logs
        self._forget = forget

    async def work(self, run: LiveRun) -> None:
        ctx = run.ctx
        try:
            # The driver's own lines (start, orders, fills) go to the strategy's log too: a
            # strategy that logs nothing itself used to leave its live log empty.
            ctx.log.info(f"시작했습니다: {', '.join(run.rec.symbols)} (started)")
            run.call("on_start")
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
                        run.call("on_bar", payload)
                    elif kind == "session":
                        symbol, day = payload
                        run.call("on_session_open", symbol, date_of(day))
                    elif kind == "fill":
                        fill = self._fill_event(run, payload)
                        if fill is None:
                            continue
                        ctx._apply_fill(fill)
                        ctx.log.info(
                            f"체결 {fill.symbol} {SIDE_KO.get(fill.side, fill.side)} {fill.qty:,}주 "
                            f"@ {fill.price:,}원 (fill {fill.side} {fill.qty:,} @ {fill.price:,})"
                        )
                        run.call("on_fill", fill)
                    elif kind == "order":
                        self._order_event(run, payload)
                        save = False
                else:
                    symbol = next(iter(run.ticks))
                    tick = run.ticks.pop(symbol)
                    run.call("on_tick", tick)
                    save = False
                run.events += 1
                await self._after(run, save=save)
        except Failed as f:
            await self._crash(run, f.hook, f.exc)
            return
        except Exception as e:  # a bug of ours, not the strategy's: still contained to it
            log.exception("strategy %s worker failed", run.id)
            await self._crash(run, "runner", e)
            return
        await self._wind_down(run)

    def _fill_event(self, run: LiveRun, f: dict[str, Any]) -> Fill | None:
        fid = f.get("id")
        if isinstance(fid, int) and fid in run.seen_fills:
            run.seen_fills.discard(fid)
            return None
        oid = f.get("order_id")
        cid = next((o.client_order_id for o in run.ctx._orders.values() if o.order_id == oid), None)
        ts = f.get("ts")
        when = datetime.fromisoformat(ts).timestamp() if isinstance(ts, str) else self._clock.time()
        return Fill(
            symbol=str(f["symbol"]),
            side=str(f["side"]),
            qty=int(f["qty"]),
            price=int(f["price"]),
            commission=int(f["commission"]),
            tax=int(f["tax"]),
            client_order_id=cid,
            order_id=oid,
            ts=when,
        )

    def _order_event(self, run: LiveRun, o: dict[str, Any]) -> None:
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

    async def _refresh_cash(self, run: LiveRun) -> None:
        run.cash_stale = False
        async with self._db.tx(Actor.user(run.rec.user_id)) as conn:
            run.ctx.cash = await ledger.cash(conn, run.rec.user_id, run.rec.account_id)

    async def _after(self, run: LiveRun, *, save: bool) -> None:
        """After a hook: submit what it asked for, publish its log lines, maybe save state."""
        await self._placer.submit(run, run.ctx._take_outbox())
        self._logs.publish(run)
        if save:
            await self._save_state(run, force=False, due=True)

    async def _save_state(self, run: LiveRun, *, force: bool, due: bool = False) -> None:
        text = dump_state(run.ctx.state)
        if text == run.saved_state:
            return
        now = self._clock.monotonic()
        if not (force or due) and now - run.saved_at < _STATE_SAVE_EVERY:
            return
        if len(text) > MAX_STATE_BYTES:
            raise Failed(
                "state",
                ValueError(f"state is {len(text):,} bytes; the limit is {MAX_STATE_BYTES:,}"),
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

    async def _wind_down(self, run: LiveRun) -> None:
        """The worker's normal end: on_stop, orders it placed there, state, unsubscribe."""
        mode = run.stop_mode or "shutdown"
        self._forget(run)
        before = [o for o in run.ctx.open_orders() if o.order_id is not None]
        try:
            run.call("on_stop")
        except Failed as f:
            log.warning("strategy %s on_stop raised %s", run.id, type(f.exc).__name__)
            run.ctx.log.error(describe("on_stop", f.exc))
        requests = run.ctx._take_outbox()
        if mode == "stop":
            await self._placer.cancel(run.rec.user_id, [o.order_id for o in before if o.order_id])
        await self._placer.submit(run, requests)
        self._logs.publish(run)
        try:
            await self._save_state(run, force=True)
        except Failed as f:
            log.warning("strategy %s: %s", run.id, f.exc)

    async def _crash(self, run: LiveRun, hook: str, exc: BaseException) -> None:
        """A hook raised: stop this strategy alone and record why."""
        log.warning(
            "strategy %s (%s) stopped: %s in %s", run.id, run.rec.kind, type(exc).__name__, hook
        )
        self._forget(run)
        if hook != "on_stop" and run.strategy is not None:
            with contextlib.suppress(Exception):
                run.strategy.on_stop()
        run.ctx._take_outbox()
        await self._placer.cancel(
            run.rec.user_id, [o.order_id for o in run.ctx.open_orders() if o.order_id]
        )
        self._logs.publish(run)
        with contextlib.suppress(Exception):
            await self._save_state(run, force=True)
        await self._records.set_error(run.rec, describe(hook, exc))
