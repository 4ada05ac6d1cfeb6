"""Backtests as background jobs for API users.

``submit`` checks everything a person can get wrong - kind, symbol, parameters, cash, the data
(CSV text or the bars hoga stored) - before anything is recorded, so a refusal leaves nothing
behind. Accepted jobs are stored in the ``backtests`` table (scoped by user) as ``queued`` and run
in a process pool: a long backtest never holds the event loop or the GIL of the server. A job's
data lives in memory until it runs, so jobs cut short by a restart are marked ``error`` at the
next start (run them again).
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
from collections.abc import Sequence
from concurrent.futures import Executor, ProcessPoolExecutor
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from hoga.backtest.data import INTERVALS, BarSeries, read_csv_bytes
from hoga.backtest.job import run_job, warnings_for
from hoga.backtest.series import (
    History,
    bound,
    broker_series,
    generated_series,
    to_interval,
    window,
)
from hoga.domain import krx
from hoga.domain.clock import Clock
from hoga.domain.errors import InvalidInput, NotFound
from hoga.domain.market import Bar
from hoga.marketdata.universe import Universe
from hoga.store import tables as t
from hoga.store.db import SYSTEM, Actor, Database
from hoga.store.repos import backtests as repo
from hoga.strategies.registry import Catalog
from hoga.tasks import cancel_and_wait

log = logging.getLogger(__name__)

MAX_BARS = 2_000_000


@dataclass(frozen=True, slots=True)
class BacktestRequest:
    """A user's request, as the API received it (values not yet checked)."""

    kind: str
    symbol: str
    params: dict[str, Any]
    cash: int = 10_000_000
    source: str = "stored"
    csv: str | None = None
    start: date | datetime | None = None
    end: date | datetime | None = None
    interval: str | None = None


class BacktestService:
    """See the module docstring."""

    def __init__(
        self,
        db: Database,
        clock: Clock,
        catalog: Catalog,
        universe: Universe,
        *,
        commission_rate: Decimal = krx.DEFAULT_COMMISSION_RATE,
        workers: int = 1,
        executor: Executor | None = None,
        generated_history_seed: int | None = None,
    ) -> None:
        self._db = db
        self._clock = clock
        self.catalog = catalog
        self._universe = universe
        self._rate = commission_rate
        self._workers = max(1, workers)
        self._executor = executor
        self._own_executor = executor is None
        self._slots = asyncio.Semaphore(self._workers)
        self._tasks: set[asyncio.Task[None]] = set()
        self._meta: dict[int, dict[str, Any]] = {}
        self.stats = {"submitted": 0, "done": 0, "error": 0}
        # The simulated market has no past of its own: there, source "generated" runs on
        # deterministic generated history (``marketdata/history.py``). None on real feeds.
        self._generated_seed = generated_history_seed
        #: The broker's chart history (``MarketLookup.history``), for a symbol with no stored
        #: bars on a fresh server; set by the app with a broker feed.
        self.history: History | None = None

    async def start(self) -> None:
        async with self._db.tx(SYSTEM) as conn:
            n = await repo.interrupted(conn, self._clock.now())
        if n:
            log.info("%d backtests interrupted by the restart were marked as errors", n)

    async def stop(self) -> None:
        await cancel_and_wait(self._tasks, swallow_errors=True)
        if self._executor is not None and self._own_executor:
            self._executor.shutdown(wait=False, cancel_futures=True)
            self._executor = None

    def _pool(self) -> Executor:
        if self._executor is None:
            # Spawned, not forked: the server process holds threads and an event loop.
            self._executor = ProcessPoolExecutor(
                self._workers, mp_context=multiprocessing.get_context("spawn")
            )
        return self._executor

    # --- requests

    async def submit(self, user_id: int, req: BacktestRequest) -> dict[str, Any]:
        cls = self.catalog.get(req.kind)
        symbol = krx.normalize_symbol(req.symbol) if isinstance(req.symbol, str) else ""
        inst = self._universe.get(symbol) if krx.is_valid_symbol(symbol) else None
        if inst is None:
            raise InvalidInput(
                f"알 수 없는 종목입니다: {req.symbol!r} (unknown symbol)",
                "strategy.unknown_symbol",
                field="symbol",
            )
        params = self.catalog.params(cls.kind, req.params, (symbol,))
        if isinstance(req.cash, bool) or not isinstance(req.cash, int) or req.cash <= 0:
            raise InvalidInput(
                "cash는 양의 정수(원)입니다 (cash must be positive won)",
                "backtest.bad_cash",
                field="cash",
            )
        if req.interval is not None and req.interval not in INTERVALS:
            raise InvalidInput(
                "interval은 1m 또는 1d입니다", "backtest.bad_interval", field="interval"
            )
        start, end = bound(req.start, end=False), bound(req.end, end=True)
        if start is not None and end is not None and start >= end:
            raise InvalidInput(
                "start는 end보다 앞서야 합니다 (start must precede end)",
                "backtest.bad_range",
                field="start",
            )
        series, data = await self._series(symbol, req, start, end)
        if len(series) == 0:
            raise InvalidInput(
                "기간 안에 봉이 없습니다 (no bars in the chosen period)",
                "backtest.no_data",
                field="start",
            )
        if len(series) > MAX_BARS:
            raise InvalidInput(
                f"봉이 너무 많습니다 ({len(series):,} > {MAX_BARS:,}) (too many bars)",
                "backtest.too_large",
                field=req.source,
            )
        async with self._db.tx(Actor.user(user_id)) as conn:
            rec = await repo.create(
                conn,
                user_id=user_id,
                kind=cls.kind,
                symbol=symbol,
                params=params.model_dump(mode="json"),
                now=self._clock.now(),
            )
        meta = {
            "cash": req.cash,
            "source": req.source,
            "interval": "1d"
            if series.interval >= 86_400
            else "1m"
            if series.interval == 60
            else f"{series.interval}s",
            "bars": len(series),
            "data": data,
            "warnings": warnings_for(len(series)),
        }
        self._meta[rec.id] = meta
        self.stats["submitted"] += 1
        task = asyncio.get_running_loop().create_task(
            self._run(rec, series, req.cash, inst.market), name=f"backtest-{rec.id}"
        )
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return self._view(rec)

    async def _series(
        self, symbol: str, req: BacktestRequest, start: float | None, end: float | None
    ) -> tuple[BarSeries, str]:
        """The bars to run on and where they came from: "csv", "stored", "broker" (chart
        history, when nothing is stored) or "generated"."""
        if req.source == "csv":
            if not req.csv or not req.csv.strip():
                raise InvalidInput(
                    "source=csv에는 csv 텍스트가 필요합니다 (csv text required)",
                    "data.empty",
                    field="csv",
                )
            data = req.csv.encode("utf-8")
            series = await asyncio.to_thread(read_csv_bytes, data, symbol, source="csv")
            series = await asyncio.to_thread(window, series, start, end)
        elif req.source == "stored":
            bars = await self._stored(symbol, start, end)
            if not bars and self.history is not None:
                series = await broker_series(
                    self.history, self._clock.time(), symbol, req.interval, start, end
                )
                return series, "broker"
            if not bars:
                raise InvalidInput(
                    f"{symbol}의 저장된 봉이 없습니다 (no stored bars for {symbol})",
                    "backtest.no_data",
                    field="symbol",
                )
            series = await asyncio.to_thread(BarSeries.from_bars, symbol, bars, 60)
        elif req.source == "generated":
            if self._generated_seed is None:
                raise InvalidInput(
                    "생성 시세는 모의 시장에서만 쓸 수 있습니다 "
                    "(generated history exists on the simulated market only)",
                    "backtest.bad_source",
                    field="source",
                )
            series = await asyncio.to_thread(
                generated_series,
                self._universe,
                self._generated_seed,
                krx.trading_date(self._clock.now()),
                symbol,
                req.interval,
                start,
                end,
            )
            return series, "generated"
        else:
            raise InvalidInput(
                "source는 stored, csv, generated 중 하나입니다 "
                "(source is stored, csv or generated)",
                "backtest.bad_source",
                field="source",
            )
        return await asyncio.to_thread(to_interval, series, req.interval), req.source

    async def _stored(self, symbol: str, start: float | None, end: float | None) -> Sequence[Bar]:
        q = t.bars.select().where(t.bars.c.symbol == symbol, t.bars.c.interval == 60)
        if start is not None:
            q = q.where(t.bars.c.start >= int(start))
        if end is not None:
            q = q.where(t.bars.c.start < int(end))
        async with self._db.tx(SYSTEM) as conn:
            rows = await conn.execute(q.order_by(t.bars.c.start).limit(MAX_BARS + 1))
            return [
                Bar(r.symbol, float(r.start), r.interval, r.open, r.high, r.low, r.close, r.volume)
                for r in rows
            ]

    async def _run(
        self, rec: repo.BacktestRecord, series: BarSeries, cash: int, market: str
    ) -> None:
        async with self._slots:
            await self._finish(rec, "running")
            loop = asyncio.get_running_loop()
            try:
                out = await loop.run_in_executor(
                    self._pool(),
                    run_job,
                    rec.kind,
                    rec.params,
                    series,
                    cash,
                    market,
                    str(self._rate),
                )
            except asyncio.CancelledError:
                raise
            except Exception as e:
                log.exception("backtest %s failed", rec.id)
                await self._finish(
                    rec, "error", error=f"백테스트 실패 (backtest failed): {type(e).__name__}: {e}"
                )
                return
            if "error" in out:
                await self._finish(rec, "error", error=str(out["error"]))
            else:
                meta = self._meta.get(rec.id, {})
                out["source"] = meta.get("source")
                # Kept with the result (the meta lives in memory only).
                out["data"] = meta.get("data")
                out["warnings"] = meta.get("warnings", [])
                await self._finish(rec, "done", result=out)

    async def _finish(
        self,
        rec: repo.BacktestRecord,
        status: str,
        *,
        result: dict[str, Any] | None = None,
        error: str | None = None,
    ) -> None:
        done = status in ("done", "error")
        async with self._db.tx(Actor.user(rec.user_id)) as conn:
            await repo.finish(
                conn,
                rec.user_id,
                rec.id,
                status=status,
                now=self._clock.now() if done else None,
                result=result,
                error=error,
            )
        if done:
            self.stats[status] += 1
            self._meta.pop(rec.id, None)

    async def get(self, user_id: int, job_id: int) -> dict[str, Any]:
        async with self._db.tx(Actor.user(user_id)) as conn:
            rec = await repo.get(conn, user_id, job_id)
        if rec is None:
            raise NotFound("백테스트를 찾을 수 없습니다 (no such backtest)", "backtest.not_found")
        return self._view(rec)

    async def list_jobs(self, user_id: int) -> list[dict[str, Any]]:
        async with self._db.tx(Actor.user(user_id)) as conn:
            recs = await repo.list_for_user(conn, user_id)
        return [self._view(r, full=False) for r in recs]

    def _view(self, rec: repo.BacktestRecord, *, full: bool = True) -> dict[str, Any]:
        view: dict[str, Any] = {
            "id": rec.id,
            "kind": rec.kind,
            "symbol": rec.symbol,
            "params": rec.params,
            "status": rec.status,
            "error": rec.error,
            "created_at": rec.created_at.isoformat(),
            "finished_at": rec.finished_at.isoformat() if rec.finished_at else None,
        }
        view.update(self._meta.get(rec.id, {}))
        if full:
            view["result"] = rec.result
            if rec.result:
                view.setdefault("cash", rec.result.get("initial_cash"))
                view.setdefault("bars", rec.result.get("bars"))
        return view
