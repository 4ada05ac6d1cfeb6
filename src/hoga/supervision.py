"""What keeps watch over a running server: readiness, the watch loop, start-up warnings.

Part of the composition root (like ``app.py``, it knows every room and nothing imports it but
``app.py``): it reads the parts ``HogaApp`` built and ties them together.

* ``readiness`` - ``GET /ready``: database ping, feed sessions, dispatcher, broker health
  (``execution/readiness.py`` decides the verdict).
* ``watch`` - every second, probe brokers that are down; every 2 s, re-read the paused state
  (``hoga pause``/``resume`` or a restore may have written it); every 5 s, check the one-server
  lock and hold every send while it is lost.
* ``warn_real_money`` - at start-up in demo mode, name the real-money accounts that follow the
  KRX calendar anyway.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

from hoga.execution.gate import real_money
from hoga.execution.health import probe
from hoga.execution.readiness import feed_part, overall
from hoga.store import tables as t
from hoga.store.db import SYSTEM

if TYPE_CHECKING:
    from hoga.app import HogaApp

log = logging.getLogger(__name__)


async def readiness(app: HogaApp) -> dict[str, Any]:
    db_error = await app.db.ping()
    dispatcher = app.dispatcher.health()
    hold = app.gate.server_hold()
    if hold is not None and dispatcher["status"] == "ok":
        dispatcher = {**dispatcher, "status": "degraded", "hold": hold.code}
    parts: dict[str, Any] = {
        "database": {"status": "down", "error": db_error} if db_error else {"status": "ok"},
        "feed": feed_part(
            app.hub.health(),
            trading=app.market_open(),
            stale_after=app.settings.hub_stale_seconds,
        ),
        "dispatcher": dispatcher,
        "brokers": app.health.brokers(app.brokers),
    }
    return {"status": overall(parts), "parts": parts}


async def watch(app: HogaApp) -> None:
    n = 0
    while True:
        await asyncio.sleep(1.0)
        n += 1
        try:
            await probe(app.health, app.brokers, app.orders.account_ref)
            if n % 2 == 0:
                await app.control.poll()
            if n % 5 == 0:
                await _check_lock(app)
        except Exception:
            log.exception("watch round failed")


async def _check_lock(app: HogaApp) -> None:
    if await app.guard.check():
        if app.gate.lock_lost_since is not None:
            app.gate.lock_lost_since = None
            app.dispatcher.wake_all()
    elif app.gate.lock_lost_since is None:
        app.gate.lock_lost_since = app.clock.time()


async def warn_real_money(app: HogaApp) -> None:
    if app.market_mode != "demo":
        return
    async with app.db.tx(SYSTEM) as conn:
        rows = (
            await conn.execute(
                t.broker_accounts.select().with_only_columns(
                    t.broker_accounts.c.id,
                    t.broker_accounts.c.broker,
                    t.broker_accounts.c.env,
                    t.broker_accounts.c.base_url,
                )
            )
        ).all()
    real = [r.id for r in rows if real_money(r.broker, r.env, r.base_url)]
    if real:
        log.warning(
            "demo mode (always open) with %d real-money account(s) (%s): their orders follow "
            "the KRX calendar - accepted and sent only while a KRX or Nextrade session takes "
            "orders",
            len(real),
            ", ".join(map(str, real)),
        )
