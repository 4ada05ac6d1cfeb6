"""The instrument master: every listed symbol, kept in the database and refreshed daily.

``InstrumentService.sync`` reads the whole listing from a broker (KIS's master files or
Kiwoom's ``ka10099``, through an ``InstrumentSource``), replaces the ``instruments`` table in
one transaction and - with a broker feed (``apply``) - makes it the server's universe, so any
listed symbol can be quoted, charted and traded; halts and designations reach the risk gate
through ``Instrument.halted`` / ``Instrument.designation``. Without a broker feed the bundled
universe stays (the simulator can only price its own demo symbols).

A listing that looks broken (fewer than ``min_symbols`` rows, or not one stock) is refused and
the table is left as it was: a truncated download must not delist the market.

``run_daily`` syncs once a day at a KST time before the session (``HOGA_SYMBOLS_SYNC_AT``) on
trading days; a failure is logged and tried again 10 minutes later, up to the session open.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Protocol

from hoga.domain import krx
from hoga.domain.clock import KST, Clock
from hoga.domain.market import Instrument, Listing
from hoga.marketdata.universe import Universe
from hoga.store.db import SYSTEM, Database
from hoga.store.repos import instruments as repo

log = logging.getLogger(__name__)


def _trading_day(day: date) -> bool:
    try:
        return krx.is_trading_day(day)
    except ValueError:  # beyond the calendar's range: weekdays
        return day.weekday() < 5


class InstrumentSource(Protocol):
    """A broker's whole listing (adapters implement it)."""

    name: str

    async def listings(self) -> list[Listing]: ...


class SyncRefused(Exception):
    """The source's listing looks broken; nothing was written."""


@dataclass(frozen=True, slots=True)
class SyncResult:
    source: str
    symbols: int
    halted: int
    designated: int
    applied: bool


class InstrumentService:
    """See the module docstring."""

    def __init__(
        self,
        db: Database,
        clock: Clock,
        universe: Universe,
        *,
        apply: bool,
        bundle: tuple[Instrument, ...] = (),
        min_symbols: int = 100,
    ) -> None:
        self._db = db
        self._clock = clock
        self.universe = universe
        self.apply = apply
        self._bundle = bundle
        self.min_symbols = min_symbols
        self.last_sync: SyncResult | None = None
        self.last_error: str | None = None

    def _use(self, listings: list[Listing]) -> None:
        # Bundled symbols the master does not list (renamed, delisted) stay quotable for
        # history; the master wins for everything it lists.
        merged = {i.symbol: i for i in self._bundle}
        merged.update((x.symbol, x.instrument()) for x in listings)
        self.universe.replace(sorted(merged.values(), key=lambda i: i.symbol))

    async def summary(self) -> tuple[int, datetime | None, str | None]:
        """(symbols stored, when they were synced, from which source)."""
        async with self._db.tx(SYSTEM) as conn:
            return await repo.summary(conn)

    async def load(self) -> int:
        """At start-up: the stored master becomes the universe (when ``apply``)."""
        async with self._db.tx(SYSTEM) as conn:
            listings = await repo.load_all(conn)
        if listings and self.apply:
            self._use(listings)
        return len(listings)

    async def sync(self, source: InstrumentSource) -> SyncResult:
        listings = await source.listings()
        unique = list({x.symbol: x for x in listings if krx.is_valid_symbol(x.symbol)}.values())
        if len(unique) < self.min_symbols or not any(x.kind == "stock" for x in unique):
            raise SyncRefused(
                f"{source.name} listed only {len(unique)} symbols (fewer than "
                f"{self.min_symbols}); keeping the stored master"
            )
        async with self._db.tx(SYSTEM) as conn:
            await repo.replace_all(conn, unique, source.name, self._clock.now())
        if self.apply:
            self._use(unique)
        result = SyncResult(
            source=source.name,
            symbols=len(unique),
            halted=sum(1 for x in unique if x.halted),
            designated=sum(1 for x in unique if x.designation),
            applied=self.apply,
        )
        self.last_sync, self.last_error = result, None
        log.info(
            "instrument master synced from %s: %d symbols (%d halted, %d designated)",
            result.source,
            result.symbols,
            result.halted,
            result.designated,
        )
        return result

    def next_run(self, at: time, now: datetime) -> datetime:
        """The next trading day's ``at`` (KST) strictly after ``now``."""
        now = now.astimezone(KST)
        day = now.date()
        for _ in range(30):
            when = datetime.combine(day, at, tzinfo=KST)
            if when > now and _trading_day(day):
                return when
            day += timedelta(days=1)
        return datetime.combine(day, at, tzinfo=KST)

    async def run_daily(self, at: time, source: InstrumentSource, *, retry: float = 600) -> None:
        """Sync at ``at`` KST every trading day (see the module docstring); runs until
        cancelled."""
        while True:
            when = self.next_run(at, self._clock.now())
            await asyncio.sleep(max(0.0, when.timestamp() - self._clock.time()))
            give_up = datetime.combine(when.date(), time(9, 0), tzinfo=KST).timestamp()
            while True:
                try:
                    await self.sync(source)
                    break
                except Exception as e:
                    self.last_error = f"{type(e).__name__}: {e}"[:300]
                    log.warning("instrument master sync failed: %s", self.last_error)
                    if self._clock.time() + retry > give_up:
                        break
                    await asyncio.sleep(retry)
