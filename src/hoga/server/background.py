"""The server's periodic tasks: minute bars kept in the database (loaded at start-up, flushed
every 5 s and at shutdown) and the day roll that expires queued orders of earlier days."""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from hoga.domain import krx
from hoga.domain.errors import StorageUnavailable
from hoga.store.db import SYSTEM
from hoga.store.repos import bars as bars_repo

if TYPE_CHECKING:
    from hoga.app import HogaApp

# The records keep the composition root's logger name (operators filter on it).
log = logging.getLogger("hoga.app")


async def load_bars(app: HogaApp) -> None:
    """Seed the bar builder with the last six hours of stored minute bars."""
    since = int(app.clock.time()) - 6 * 3600
    async with app.db.tx(SYSTEM) as conn:
        app.bars.seed(await bars_repo.minute_bars_since(conn, since))


async def flush_bars(app: HogaApp) -> None:
    """Write the finished bars; on failure they stay pending for the next flush."""
    app.bars.flush(app.clock.time())
    pending = app.bars.take_pending()
    if not pending or not app.db._engine:
        return
    try:
        async with app.db.tx(SYSTEM) as conn:
            await bars_repo.insert(conn, pending)
    except BaseException:
        app.bars.restore_pending(pending)  # written next time
        raise


async def persist_bars(app: HogaApp) -> None:
    """Flush the bars every 5 s until cancelled; a failed flush is logged, never fatal."""
    while True:
        await asyncio.sleep(5.0)
        try:
            await flush_bars(app)
        except StorageUnavailable as e:
            log.warning("persisting bars postponed: storage fault (%s)", e.code)
        except Exception:
            log.exception("persisting bars failed")


async def day_roll(app: HogaApp) -> None:
    """Every 30 s: when the trading date has changed, expire the queued orders of earlier days
    (retried every 30 s until it succeeds)."""
    day = krx.trading_date(app.clock.now())
    while True:
        await asyncio.sleep(30.0)
        today = krx.trading_date(app.clock.now())
        if today == day:
            continue
        try:
            n = await app.orders.expire_stale(today)
        except StorageUnavailable as e:
            log.warning("day roll postponed: storage fault (%s)", e.code)
            continue  # the day is rolled again in 30 s
        except Exception:
            log.exception("day roll failed; trying again in 30 s")
            continue
        day = today
        if n:
            log.info("expired %d queued orders of earlier days", n)
