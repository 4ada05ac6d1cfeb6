"""Start-up, in DESIGN.md's order: migrate, load users and accounts, connect brokers,
reconcile, start feeds, start strategies, open the API (the API itself is served by the caller
once ``start`` returns). Start-up after a crash is the same path. In cluster mode the per-user
steps (attaching accounts, recovery, reconciliation) run as each user's lease is taken."""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from hoga.domain import krx
from hoga.domain.errors import Conflict
from hoga.marketdata.feeds.replay import ReplayFeed
from hoga.marketdata.feeds.simulator import SimulatorFeed
from hoga.security import keystate
from hoga.server import background, feeds, ops
from hoga.store.db import SYSTEM
from hoga.supervision import warn_real_money, watch

if TYPE_CHECKING:
    from hoga.app import HogaApp

# The records keep the composition root's logger name (operators filter on it).
log = logging.getLogger("hoga.app")


async def start(app: HogaApp) -> None:
    """Start-up, in DESIGN.md's order. Errors propagate with a clear message."""
    s = app.settings
    app.data_dir.mkdir(parents=True, exist_ok=True)
    await app.acquire_guard()
    warm = asyncio.get_running_loop().run_in_executor(None, krx.warm_calendar)
    applied = await app.db.migrate()
    if applied:
        log.info("database migrated: %s", ", ".join(applied))
    await app.db.start()
    await sync_vault(app)
    for broker in app.brokers.values():
        await broker.start()
    try:
        app.admin_password_generated = await app.auth.bootstrap_admin(
            s.admin_username, s.admin_password.get_secret_value() if s.admin_password else None
        )
    except Conflict:
        if app.cluster is None:
            raise
        # Cluster mode: another server of a new cluster created the first admin just now.
        app.admin_password_generated = None
    await app.auth_watch.start()
    await app.orders.load_server_state()
    if app.start_paused:
        paused = await app.control.set(
            True, reason="started with --paused", by="hoga serve --paused"
        )
    else:
        paused = await app.control.load()
    app.live_strategies.suspended = paused.paused
    if s.cluster_nats_url:  # before the dispatcher and the API use the limits
        from hoga.cluster.limits import start_cluster_limits

        app.cluster_limits = await start_cluster_limits(app)
    # Paused (after a restore, or --paused): no broker session is opened - no realtime
    # socket, no reconciliation call - until an admin resumes, so a restored copy never
    # talks to a broker beside the original. ``listeners.resume`` attaches them then.
    if not paused.paused:
        if app.cluster is None:  # cluster mode: each owned user's, as it is taken
            await app.accounts.attach_all()
        app._brokers_attached = True
    else:
        app.accounts.attaching = False
    if s.feed == "kiwoom":
        await feeds.use_kiwoom_feed(app)
    if s.feed == "kiwoom_openapi":
        await feeds.use_kiwoom_openapi_feed(app)
    await feeds.start_instruments(app)
    await warn_real_money(app)
    if app.cluster is None:  # cluster mode: per user, as its lease is taken
        recovered = await app.orders.recover()
        if any(recovered.values()):
            log.info("recovered orders after restart: %s", recovered)
    await warm
    if app._brokers_attached and app.cluster is None:
        await app.reconciler.reconcile_all()
    await background.load_bars(app)
    if isinstance(app.feed, SimulatorFeed | ReplayFeed) and app.drive_feed:
        app.feed.start()
    if app.cluster is not None:  # the hub reads from NATS; the feed lease holder publishes
        await app.cluster.start_market(app)
    await app.hub.start()
    await app.dispatcher.start()
    await app.resync.start()
    if app._brokers_attached:
        await app.reconciler.start()
    # Strategies start after the feeds and the order pipeline, before the API opens.
    await app.backtests.start()
    await app.live_strategies.start()
    loop = asyncio.get_running_loop()
    app._background = [
        loop.create_task(background.persist_bars(app), name="bars-persist"),
        loop.create_task(background.day_roll(app), name="day-roll"),
        loop.create_task(watch(app), name="watch"),
    ]
    await ops.start(app)
    at = feeds.sync_at(app)
    if at is not None and app.live_feed:
        source = app.instrument_source()
        if source is not None:
            app._background.append(
                loop.create_task(app.instruments.run_daily(at, source), name="symbols-sync")
            )
    if app.cluster is not None:
        await app.cluster.start()  # users are taken (and their work started) from here
    app._started = True
    app.started_at = app.clock.time()
    log.info(
        "hoga %s started (%s, %s market, feed %s)",
        app.version,
        "PostgreSQL" if app.db.is_postgres else "SQLite",
        app.market_mode,
        app.feed.name,
    )


async def sync_vault(app: HogaApp) -> None:
    """Encrypt with the key the database names (a rotation may have run while we were
    down) - refusing to start without it - and record which keys this server holds."""
    now = app.clock.now()
    async with app.db.tx(SYSTEM) as conn:
        await keystate.register(conn, app.vault, now)
        await keystate.use_current(app.vault, conn, now)
        await keystate.record_server(conn, app.vault, now)
