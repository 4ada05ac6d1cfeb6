"""The composition root: Settings in, a running hoga out.

``HogaApp`` is the only code that knows every room. It builds the parts from the settings and
runs DESIGN.md's start-up sequence - migrate, load users and accounts, connect brokers,
reconcile, start feeds, start strategies, open the API - and the reverse on shutdown. Start-up
after a crash is the same path.

The steps live in ``hoga/server/``, one module per job (market and feed choice, brokers,
start-up, shutdown, background tasks, listeners, operations); this class keeps every part under
its public attribute and the public methods the CLI, the API, the cluster node and tests call.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI

from hoga import __version__
from hoga.backtest.service import BacktestService
from hoga.brokers.base import Broker
from hoga.brokers.kis import KisFeed
from hoga.brokers.paper_book import PaperFaults
from hoga.composition import build_core
from hoga.config import Settings
from hoga.domain.clock import Clock, SystemClock
from hoga.domain.feed import Feed
from hoga.execution import risk
from hoga.execution.control import ServerControl
from hoga.execution.dispatcher import Dispatcher
from hoga.execution.events import EventBus
from hoga.execution.gate import SendGate, TradingHours
from hoga.execution.health import BrokerHealth, MonitoredBroker
from hoga.execution.history import HistoryService
from hoga.execution.queries import Queries
from hoga.execution.queue import OrderQueue
from hoga.execution.reconcile import Reconciler
from hoga.execution.resync import QueueResync
from hoga.execution.service import OrderPolicy, OrderService
from hoga.execution.token_store import VaultTokenStore
from hoga.execution.watchlist import WatchlistService
from hoga.marketdata.feeds.replay import ReplayFeed
from hoga.marketdata.instruments import InstrumentSource
from hoga.metrics import Metrics
from hoga.security.changes import AuthChangeWatcher
from hoga.server import background, feeds, listeners, ops, shutdown, startup
from hoga.server.brokers import build_brokers
from hoga.server.market import build_market
from hoga.store.instance_lock import ServerGuard, SingleServerGuard
from hoga.store.private import private_dir
from hoga.strategies.live import LiveDriver
from hoga.strategies.records import StrategyRecords
from hoga.strategies.registry import load_catalog
from hoga.strategies.service import StrategyService
from hoga.supervision import readiness

if TYPE_CHECKING:  # nats is imported only in cluster mode
    from hoga.cluster.limits import ClusterLimits
    from hoga.cluster.node import ClusterNode
    from hoga.notify.service import Notifier
    from hoga.ops.alerts import AlertWatch
    from hoga.ops.metrics import AppCollector
    from hoga.ops.watch import OpsWatch

log = logging.getLogger(__name__)


class HogaApp:
    """Every part of a hoga server, wired once. See the module docstring."""

    # Set by ``server/ops.py``'s ``init`` during construction.
    metrics_collector: AppCollector
    metrics_listener: Any
    notifier: Notifier
    alerts: AlertWatch
    ops_watch: OpsWatch

    def __init__(
        self,
        settings: Settings,
        *,
        clock: Clock | None = None,
        paper_faults: PaperFaults | None = None,
        extra_brokers: dict[str, Broker] | None = None,
        feed: Feed | None = None,
        drive_feed: bool = True,
        start_paused: bool = False,
    ) -> None:
        self.settings = s = settings
        self.start_paused = start_paused
        # Tests drive the simulated market themselves (``feed.pump``) for determinism.
        self.drive_feed = drive_feed
        self.clock = clock or SystemClock()
        self.version = __version__
        data = Path(s.data_dir)
        self.data_dir = data
        private_dir(data)  # 0700: key files, SQLite and the paper book live here
        # Database, vault, tokens, users and accounts: the same core the CLI's admin commands
        # build (composition.py); brokers join the account service below.
        core = build_core(s, self.clock)
        self.db = core.db
        # One server per database and data dir - or, in cluster mode (HOGA_CLUSTER_NATS_URL),
        # one per data dir with peers on the database (cluster/guard.py, docs/scaling.md).
        self.cluster: ClusterNode | None = None
        if s.cluster_nats_url:
            from hoga.cluster.node import ClusterNode

            self.cluster = ClusterNode(s)
        self.guard: ServerGuard = (
            self.cluster.guard(self) if self.cluster else SingleServerGuard(data, s.sqlalchemy_url)
        )
        self._guarded = False
        # Cluster mode (docs/scaling.md): limits shared with the other servers (``start``).
        self.cluster_limits: ClusterLimits | None = None
        self.vault = core.vault
        self.tokens = core.tokens
        self.throttle = core.throttle
        self.auth = core.auth

        # Market: the simulated market, the feed choice and the hub (server/market.py).
        m = build_market(s, self.clock, self.db, feed)
        self.market_mode = m.market_mode
        self.universe = m.universe
        self.market = m.market
        self.market_open: Callable[[], bool] = m.market_open
        self.replay: ReplayFeed | None = m.replay
        self.feed: Feed = m.feed
        self.bars = m.bars
        self.hub = m.hub
        self.quotes = quotes = m.quotes
        self.lookup = m.lookup
        self.live_feed = m.live_feed
        self.instruments = m.instruments

        # Brokers (server/brokers.py). Real-broker adapters keep their tokens in the
        # vault-backed store.
        self.token_store = VaultTokenStore(self.db, self.vault, self.clock)
        b = build_brokers(
            s,
            self.clock,
            self.token_store,
            data=data,
            paper_quotes=m.paper_quotes,
            market=self.market,
            replay=self.replay,
            market_open=self.market_open,
            market_mode=self.market_mode,
            paper_faults=paper_faults,
            extra_brokers=extra_brokers,
            instance_id=self.cluster.instance_id if self.cluster is not None else None,
        )
        self.paper, self.kis, self.kiwoom = b.paper, b.kis, b.kiwoom
        self.kiwoom_openapi = b.kiwoom_openapi
        self.brokers: dict[str, Broker] = b.brokers
        if s.feed == "kis":
            # Market data over the WebSocket sessions of the accounts the operator allows.
            self.feed = KisFeed(
                self.kis, self.clock, account_ids=s.kis_feed_accounts, book=s.kis_feed_book
            )
            self.hub.feed = self.feed
        # Every broker call's outcome feeds the health that /ready, the admin status and the
        # send gate read (execution/health.py).
        self.health = BrokerHealth(self.clock)
        self.health.realtime = partial(listeners.realtime_state, self)
        self.metrics = Metrics()
        self.health.on_call.append(self.metrics.broker_call)
        self.raw_brokers = dict(self.brokers)
        self.brokers = {n: MonitoredBroker(b, self.health) for n, b in self.brokers.items()}
        self.hours = TradingHours(
            self.clock, self.market_open, calendar=self.market_mode == "calendar"
        )
        self.gate = SendGate(self.clock, self.hours, self.health)
        self.accounts = core.accounts
        self.accounts.brokers = self.brokers
        self.auth.on_user_created.append(partial(listeners.on_user_created, self))

        # The order pipeline.
        self.queue = OrderQueue(max_wait=s.queue_max_wait)
        # Cluster mode: events also reach the user's sockets on the other servers.
        self.bus = self.cluster.events if self.cluster else EventBus()
        self.orders = OrderService(
            self.db,
            self.clock,
            self.auth,
            self.accounts,
            self.lookup,
            self.queue,
            self.bus,
            policy=OrderPolicy(
                designation_policy=risk.parse_designation_policy(s.designation_policy),
                max_order_value=s.max_order_value,
                daily_loss_limit=s.daily_loss_limit,
                duplicate_window=s.duplicate_window,
                submit_timeout=s.submit_timeout,
                max_quote_age=s.max_quote_age,
            ),
            market_open=self.market_open,
            account_open=self.hours.open_for,
            account_session=self.hours.session_for,
        )
        self.dispatcher = Dispatcher(
            self.queue,
            partial(listeners.send, self),
            self.orders.account_ref,
            global_rate=s.global_order_rate,
            time_slice=s.session_time_slice,
            hold=self.gate.hold_for,
        )
        self.health.on_recovered.append(lambda _account: self.dispatcher.wake_all())
        for name, broker in self.brokers.items():
            self.dispatcher.add_gateway(name, broker)
            broker.set_event_sink(self.orders.on_execution)
        self.resync = QueueResync(self.db, self.orders, self.clock)
        self.resync.handed = self.dispatcher.handed
        # The read side the routers ask (execution/queries.py).
        # The dashboard's read-side services (history, profit, watchlist): routers hold no
        # database handle of their own.
        self.history = HistoryService(self.db, self.quotes, self.clock)
        self.watchlist = WatchlistService(self.db, self.universe, self.clock)
        self.queries = Queries(
            self.db,
            self.clock,
            quotes,
            name_of=lambda symbol: i.name if (i := self.universe.get(symbol)) else None,
            recent_bars=lambda symbol: self.bars.recent(symbol, include_current=True),
        )
        self.reconciler = Reconciler(
            self.db,
            self.orders,
            self.accounts,
            self.clock,
            interval=s.reconcile_interval,
            unknown_grace=max(2 * s.submit_timeout, 5.0),
        )
        # --- strategies and backtests (strategies branch) ---
        self.catalog = load_catalog()
        records = StrategyRecords(self.db, self.clock, self.bus, self.hub, quotes)
        self.live_strategies = LiveDriver(
            records, self.auth, self.orders, self.hub, self.bus, quotes, self.catalog
        )
        self.strategies = StrategyService(
            records, self.live_strategies, self.auth, self.universe, self.catalog
        )
        self.backtests = BacktestService(
            self.db,
            self.clock,
            self.catalog,
            self.universe,
            commission_rate=s.commission_rate,
            # The simulated market has no past: a fresh server backtests on generated history.
            generated_history_seed=s.sim_seed if s.feed == "simulator" else None,
        )
        # --- end of strategies and backtests ---
        self.control = ServerControl(
            self.db,
            self.clock,
            self.gate,
            on_pause=self.live_strategies.suspend,
            on_resume=partial(listeners.resume, self),
        )
        ops.init(self)
        self._brokers_attached = False
        # Sign-in changes from any process (API, CLI) reach this server through the database.
        self.auth_watch = AuthChangeWatcher(self.db, self.auth, self.clock)
        self.auth_watch.listeners.append(partial(listeners.on_auth_change, self))
        self._background: list[asyncio.Task[None]] = []
        self._kiwoom_list_source: InstrumentSource | None = None
        self._started = False
        self.started_at: float | None = None
        self.admin_password_generated: str | None = None
        if self.cluster is not None:
            self.cluster.wire(self)
        from hoga.api.server import create_api

        self.api: FastAPI = create_api(self)

    def instrument_source(self) -> InstrumentSource | None:
        """Where the master comes from (``HOGA_SYMBOLS_SOURCE``): KIS's public master files,
        or Kiwoom's ``ka10099`` over the first Kiwoom feed key (None: no Kiwoom key)."""
        return feeds.instrument_source(self)

    async def admin_alert(self, event: str, title: str, body: str) -> None:
        """A server-wide alert to the admins' channels (logged whatever happens to it)."""
        log.warning("admin alert %s: %s", event, body)
        if self.notifier is not None:
            self.notifier.admin_alert(event, title, body)

    async def render_metrics(self) -> tuple[bytes, str]:
        """``/metrics``' body and content type (``ops/metrics.py``)."""
        from hoga.ops.metrics import render

        return await render(self)

    async def readiness(self) -> dict[str, Any]:
        """``GET /ready``'s answer (see ``supervision.readiness``)."""
        return await readiness(self)

    # --- lifecycle (server/startup.py, server/shutdown.py)

    async def acquire_guard(self) -> None:
        """Become the one server of this data dir and database, or raise ``ServerRunning``.

        The first step of ``start`` (before anything is migrated, read or written); ``hoga
        serve`` calls it even earlier, before binding its port, so a second server is told
        about the first rather than about the port."""
        if not self._guarded:
            await self.guard.acquire()
            self._guarded = True

    async def start(self) -> None:
        """Start-up, in DESIGN.md's order. Errors propagate with a clear message."""
        await startup.start(self)

    async def stop(self) -> None:
        """Shut down in reverse order within ``shutdown.STOP_DEADLINE`` seconds in all: each
        step gets at most 3 s and what is left of the deadline (a step cut short is logged and
        skipped)."""
        await shutdown.stop(self)

    async def _flush_bars(self) -> None:
        """Write the finished minute bars now (the shutdown step; tests call it too)."""
        await background.flush_bars(self)
