"""The composition root: Settings in, a running hoga out.

``HogaApp`` is the only code that knows every room. It builds the parts from the settings and
runs DESIGN.md's start-up sequence - migrate, load users and accounts, connect brokers,
reconcile, start feeds, start strategies, open the API - and the reverse on shutdown. Start-up
after a crash is the same path.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from datetime import time as dt_time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI

from hoga import __version__
from hoga.backtest.service import BacktestService
from hoga.brokers.base import Broker
from hoga.brokers.kis import KisBroker, KisFeed
from hoga.brokers.kis.market import KisMarketData
from hoga.brokers.kis.master import KisMasterSource
from hoga.brokers.kiwoom import KiwoomBroker
from hoga.brokers.kiwoom import Timeouts as KiwoomTimeouts
from hoga.brokers.kiwoom.feed import FeedCredentials, KiwoomFeed
from hoga.brokers.kiwoom.market import KiwoomListSource, KiwoomMarketData
from hoga.brokers.kiwoom_openapi import KiwoomOpenApiBroker, KiwoomOpenApiFeed
from hoga.brokers.paper import PaperBroker
from hoga.brokers.paper_book import PaperFaults, parse_faults
from hoga.composition import build_core
from hoga.config import ConfigError, Settings
from hoga.domain import krx
from hoga.domain.clock import Clock, SystemClock
from hoga.domain.errors import Conflict, StorageUnavailable
from hoga.domain.feed import Feed
from hoga.domain.market import QuoteSource
from hoga.execution import risk
from hoga.execution.control import ServerControl
from hoga.execution.dispatcher import Dispatcher
from hoga.execution.events import EventBus
from hoga.execution.gate import SendGate, TradingHours
from hoga.execution.health import BrokerHealth, MonitoredBroker
from hoga.execution.history import HistoryService
from hoga.execution.queries import Queries
from hoga.execution.queue import OrderQueue, QueueItem
from hoga.execution.reconcile import Reconciler
from hoga.execution.resync import QueueResync
from hoga.execution.service import OrderPolicy, OrderService
from hoga.execution.token_store import VaultTokenStore
from hoga.execution.watchlist import WatchlistService
from hoga.marketdata.bars import BarBuilder
from hoga.marketdata.feeds.replay import ReplayFeed
from hoga.marketdata.feeds.simulator import SimulatedMarket, SimulatorFeed
from hoga.marketdata.hub import Hub
from hoga.marketdata.instruments import InstrumentService, InstrumentSource
from hoga.marketdata.lookup import MarketLookup
from hoga.marketdata.universe import Universe, bundled_universe
from hoga.metrics import Metrics
from hoga.security import keystate
from hoga.security.changes import AuthChangeWatcher
from hoga.store.db import SYSTEM
from hoga.store.instance_lock import ServerGuard, SingleServerGuard
from hoga.store.private import private_dir
from hoga.store.repos import bars as bars_repo
from hoga.strategies.live import LiveDriver
from hoga.strategies.records import StrategyRecords
from hoga.strategies.registry import load_catalog
from hoga.strategies.service import StrategyService
from hoga.supervision import readiness, warn_real_money, watch

if TYPE_CHECKING:  # nats is imported only in cluster mode
    from hoga.cluster.limits import ClusterLimits
    from hoga.cluster.node import ClusterNode

log = logging.getLogger(__name__)

# HogaApp.stop() returns within this many seconds (plus 0.5 s for each part left once it has
# passed), so a service manager's stop timeout can be set from it: deploy/hoga.service uses
# 30 s for this, uvicorn's 3 s connection drain and a margin (tests/unit/test_deploy_files.py).
STOP_DEADLINE = 12.0


def _always_open() -> bool:
    return True


class HogaApp:
    """Every part of a hoga server, wired once. See the module docstring."""

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

        # Market: the simulated KRX market is both the default feed and the paper broker's book.
        # A broker feed carries the real market: demo mode's "always open" would let orders
        # out at any hour, so the KRX calendar governs (said at start-up and in the status).
        self.market_mode = s.market_mode
        if s.feed in ("kis", "kiwoom", "kiwoom_openapi") and s.market_mode == "demo":
            self.market_mode = "calendar"
            log.warning(
                "HOGA_FEED=%s carries the real market: following the KRX calendar "
                "(HOGA_MARKET_MODE=demo applies to the simulated market only)",
                s.feed,
            )
        self.universe = Universe(bundled_universe())
        self.market = SimulatedMarket(
            self.universe, seed=s.sim_seed, clock=self.clock, mode=self.market_mode
        )
        quotes: QuoteSource = self.market
        self.market_open: Callable[[], bool] = self.market.is_open
        self.replay: ReplayFeed | None = None
        self.feed: Feed
        if feed is not None:
            self.feed = feed
        elif s.feed == "replay":
            self.replay = self._replay_feed()
            quotes = self.feed = self.replay
            if self.market_mode == "demo":
                self.market_open = _always_open
        else:
            self.feed = SimulatorFeed(
                self.market,
                ticks_per_second=s.sim_ticks_per_second,
                symbols_per_session=s.sim_symbols_per_session or None,
                max_sessions=s.sim_max_sessions or None,
            )
        self.bars = BarBuilder()
        # With a broker feed the day's reference prices come from the broker's ticks, not the
        # simulator's: the hub answers quotes and instruments itself (no tick yet: no price).
        live = s.feed in ("kis", "kiwoom", "kiwoom_openapi") and feed is None
        self.hub = Hub(
            self.feed,
            self.universe,
            self.clock,
            grace=s.hub_grace_seconds,
            stale_after=s.hub_stale_seconds,
            is_trading=self.market_open,
            bars=self.bars,
            instruments=None if live else quotes.instrument,
        )
        # The paper broker keeps its own simulated (or replayed) book whatever the feed.
        paper_quotes = quotes
        if live:
            quotes = self.hub
        self.quotes = quotes
        # Any symbol's quote and order book: the hub or simulator first, the broker on demand
        # (the source is attached once the broker feed's accounts are known, at start-up).
        self.lookup = MarketLookup(self.hub, quotes, self.clock, ttl=s.quote_cache_seconds)
        # The instrument master: with a broker feed it becomes the universe (every listed
        # symbol tradable); the simulator keeps its bundled demo universe.
        self.live_feed = live
        self.instruments = InstrumentService(
            self.db, self.clock, self.universe, apply=live, bundle=bundled_universe()
        )
        # The paper book prices master symbols at their 기준가 when asked (live mode only:
        # otherwise the universe is the bundle and this adds nothing).
        self.market.set_catalog(self.universe.get)

        # Brokers. Real-broker adapters keep their tokens in the vault-backed store.
        self.token_store = VaultTokenStore(self.db, self.vault, self.clock)
        self.paper = PaperBroker(
            paper_quotes,
            self.clock,
            initial_cash=s.paper_initial_cash,
            journal_path=data / "paper" / "journal.jsonl",
            # Flushed per record (a killed process loses nothing); an fsync per order would
            # block the event loop for ~1 ms for a simulated book.
            fsync=False,
            is_open=self.market_open,
            # Calendar mode: orders go to the KRX/Nextrade session of the hour (auctions,
            # off-hours sessions, VI); demo mode trades continuously around the clock.
            calendar=self.market_mode == "calendar",
            faults=paper_faults or (parse_faults(s.paper_faults) if s.paper_faults else None),
        )
        self.market.add_listener(self.paper.on_tick)
        if self.replay is not None:
            self.replay.add_listener(self.paper.on_tick)
        self.brokers: dict[str, Broker] = {"paper": self.paper}
        # --- real-broker adapters (KIS, Kiwoom) register here ---
        self.kis = KisBroker(
            self.clock,
            self.token_store,
            real_rate=s.kis_real_rate,
            mock_rate=s.kis_mock_rate,
            timeout=s.kis_request_timeout,
        )
        self.brokers["kis"] = self.kis
        if s.feed == "kis":
            # Market data over the WebSocket sessions of the accounts the operator allows.
            self.feed = KisFeed(
                self.kis, self.clock, account_ids=s.kis_feed_accounts, book=s.kis_feed_book
            )
            self.hub.feed = self.feed
        # Kiwoom REST: one token, one request budget and one WebSocket per app key.
        self.kiwoom = KiwoomBroker(
            rate=s.kiwoom_rate,
            clock=self.clock,
            token_store=self.token_store,
            # Answer (or give up) before the order service's own submit timeout.
            timeouts=KiwoomTimeouts(order=max(0.5, s.submit_timeout * 0.8)),
        )
        self.brokers["kiwoom"] = self.kiwoom
        # Kiwoom OpenAPI+ through hoga-bridge: one login at a time, driven by the dispatcher's
        # session scheduling (capacity 1, switch cost) - docs/kiwoom-openapi.md.
        self.kiwoom_openapi = KiwoomOpenApiBroker(
            clock=self.clock,
            switch_cost=s.kiwoom_openapi_switch_cost,
            ca_file=str(s.kiwoom_openapi_ca_file) if s.kiwoom_openapi_ca_file else None,
            order_timeout=max(0.5, s.submit_timeout * 0.8),
        )
        self.brokers["kiwoom_openapi"] = self.kiwoom_openapi
        # --- end of real-broker adapters ---
        self.brokers.update(extra_brokers or {})
        # Every broker call's outcome feeds the health that /ready, the admin status and the
        # send gate read (execution/health.py).
        self.health = BrokerHealth(self.clock)
        self.health.realtime = self._realtime_state
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
        self.auth.on_user_created.append(self._on_user_created)

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
            self._send,
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
            on_resume=self._resume,
        )
        self._ops_init()
        self._brokers_attached = False
        # Sign-in changes from any process (API, CLI) reach this server through the database.
        self.auth_watch = AuthChangeWatcher(self.db, self.auth, self.clock)
        self.auth_watch.listeners.append(self._on_auth_change)
        self._background: list[asyncio.Task[None]] = []
        self._kiwoom_list_source: InstrumentSource | None = None
        self._started = False
        self.started_at: float | None = None
        self.admin_password_generated: str | None = None
        if self.cluster is not None:
            self.cluster.wire(self)
        self.api: FastAPI = self._build_api()

    async def _sync_vault(self) -> None:
        """Encrypt with the key the database names (a rotation may have run while we were
        down) - refusing to start without it - and record which keys this server holds."""
        now = self.clock.now()
        async with self.db.tx(SYSTEM) as conn:
            await keystate.register(conn, self.vault, now)
            await keystate.use_current(self.vault, conn, now)
            await keystate.record_server(conn, self.vault, now)

    def _ops_init(self) -> None:
        """Metrics collector, notifications, scheduled backups and alerts (the ops branch)."""
        from hoga.notify.service import Notifier
        from hoga.ops.alerts import AlertWatch
        from hoga.ops.metrics import AppCollector
        from hoga.ops.watch import OpsWatch

        self.metrics_collector = AppCollector(self)
        self.metrics.registry.register(self.metrics_collector)
        self.metrics_listener: Any = None
        self.notifier = Notifier(
            self.db,
            self.vault,
            self.clock,
            on_result=lambda kind, result: self.metrics.notifications.labels(kind, result).inc(),
        )
        # Events reach the notifier through the bus (a put_nowait on its queue), never the
        # order path itself; broker health reports accounts going down and coming back.
        self.bus.add_hook(self.notifier.on_event)
        self.alerts = AlertWatch(self, self.notifier)
        self.health.on_down.append(self.alerts.on_broker_down)
        self.health.on_recovered.append(self.alerts.on_broker_up)
        self.ops_watch = OpsWatch(
            self.settings,
            self.clock,
            self.admin_alert,
            on_backup=lambda result: self.metrics.backups.labels(result).inc(),
        )

    async def admin_alert(self, event: str, title: str, body: str) -> None:
        """A server-wide alert to the admins' channels (logged whatever happens to it)."""
        log.warning("admin alert %s: %s", event, body)
        if self.notifier is not None:
            self.notifier.admin_alert(event, title, body)

    async def _send(self, item: QueueItem) -> None:
        """The dispatcher's sender: records the request's wait in the queue, then sends."""
        if self.cluster is not None and not self.cluster.may_send(item.user_id):
            return  # the user's owner changed: the request waits in the database for it
        self.metrics.queue_wait.labels(item.priority.label, item.kind.value).observe(
            max(0.0, self.clock.monotonic() - item.enqueued_at)
        )
        await self.orders.send(item)

    async def render_metrics(self) -> tuple[bytes, str]:
        """``/metrics``' body and content type (``ops/metrics.py``)."""
        from hoga.ops.metrics import render

        return await render(self)

    async def _ops_start(self) -> None:
        await self.notifier.start()
        loop = asyncio.get_running_loop()
        self._background.append(loop.create_task(self.ops_watch.run(), name="ops-watch"))
        self._background.append(loop.create_task(self.alerts.run(), name="alert-watch"))
        if self.settings.metrics_address:
            from hoga.ops.metrics import MetricsListener

            self.metrics_listener = MetricsListener(self, self.settings.metrics_address)
            await self.metrics_listener.start()

    async def _ops_stop(self) -> None:
        await self.alerts.stop()
        await self.notifier.stop()
        if self.metrics_listener is not None:
            await self.metrics_listener.stop()
            self.metrics_listener = None

    def _realtime_state(self, broker: str, account_id: int) -> bool | None:
        """Whether an account's realtime session (execution notices) is up; None when it has
        none to keep (the paper broker, an account without notices)."""
        state = getattr(self.raw_brokers.get(broker), "realtime_state", None)
        return state(account_id) if state is not None else None

    async def readiness(self) -> dict[str, Any]:
        """``GET /ready``'s answer (see ``supervision.readiness``)."""
        return await readiness(self)

    async def _resume(self) -> None:
        if self.cluster is not None and not self._brokers_attached and self._started:
            self._brokers_attached = True
            self.accounts.attaching = True
            await self.cluster.resume()
            await self.reconciler.start()
        elif not self._brokers_attached and self._started:
            # Started paused: open the broker sessions and catch up with the brokers first.
            self._brokers_attached = True
            await self.accounts.attach_all()
            await self.reconciler.reconcile_all()
            await self.reconciler.start()
        await self.live_strategies.resume()
        self.dispatcher.wake_all()

    async def _use_kiwoom_feed(self) -> None:
        """Market data over the app keys of the Kiwoom accounts the operator named (their
        credentials are only readable once the database is open, hence at start-up)."""
        s = self.settings
        creds = []
        for account_id in s.kiwoom_feed_accounts:
            ref = await self.orders.account_ref(account_id)
            if (
                ref is None
                or ref.broker != "kiwoom"
                or ref.app_key is None
                or ref.app_secret is None
            ):
                raise ConfigError(
                    f"HOGA_KIWOOM_FEED_ACCOUNTS: account {account_id} is not a linked Kiwoom account"
                )
            creds.append(
                FeedCredentials(
                    ref.app_key,
                    ref.app_secret,
                    env=ref.env,
                    base_url=ref.base_url,
                    ws_url=ref.ws_url,
                )
            )
        if not creds:
            raise ConfigError(
                "HOGA_FEED=kiwoom needs HOGA_KIWOOM_FEED_ACCOUNTS (ids of linked Kiwoom accounts)"
            )
        first = creds[0]
        client = self.kiwoom.wire.client(
            first.env, first.app_key, first.app_secret, first.base_url, first.ws_url
        )
        self.lookup.source = KiwoomMarketData(client, self.clock)
        self._kiwoom_list_source = KiwoomListSource(client)
        self.feed = KiwoomFeed(
            self.kiwoom.wire,
            creds,
            clock=self.clock,
            symbols_per_session=s.kiwoom_feed_symbols_per_session,
        )
        self.hub.feed = self.feed

    def _sync_at(self) -> dt_time | None:
        at = self.settings.symbols_sync_at
        if at == "off":
            return None
        hh, mm = at.split(":")
        return dt_time(int(hh), int(mm))

    def instrument_source(self) -> InstrumentSource | None:
        """Where the master comes from (``HOGA_SYMBOLS_SOURCE``): KIS's public master files,
        or Kiwoom's ``ka10099`` over the first Kiwoom feed key (None: no Kiwoom key)."""
        s = self.settings
        use = s.symbols_source
        if use == "auto":
            use = "kiwoom" if s.feed == "kiwoom" else "kis"
        if use == "kis":
            return KisMasterSource(s.kis_master_url)
        return self._kiwoom_list_source

    async def _start_instruments(self) -> None:
        """Load the stored master (the universe with a broker feed) and attach the broker's
        on-demand quotes to the lookup."""
        count = await self.instruments.load()
        if self.live_feed:
            log.info(
                "instrument master: %d stored symbols%s",
                count,
                "" if count else " - run `hoga symbols sync` (the bundled list is used until then)",
            )
        if self.settings.feed == "kis" and self.lookup.source is None:
            self.lookup.source = KisMarketData(
                self.kis, self.clock, self.settings.kis_feed_accounts
            )
        if self.lookup.source is not None:
            # Backtests of a symbol with no stored bars read the broker's chart history.
            self.backtests.history = self.lookup.history

    async def _use_kiwoom_openapi_feed(self) -> None:
        """Market data from the bridge of the named kiwoom_openapi account."""
        account_id = self.settings.kiwoom_openapi_feed_account
        ref = await self.orders.account_ref(account_id) if account_id is not None else None
        if ref is None or ref.broker != "kiwoom_openapi":
            raise ConfigError(
                "HOGA_FEED=kiwoom_openapi needs HOGA_KIWOOM_OPENAPI_FEED_ACCOUNT "
                "(the id of a linked kiwoom_openapi account)"
            )
        self.feed = KiwoomOpenApiFeed(self.kiwoom_openapi, ref, self.clock)
        self.hub.feed = self.feed

    def _replay_feed(self) -> ReplayFeed:
        s = self.settings
        if s.replay_file is None:
            raise ConfigError(
                "HOGA_FEED=replay needs HOGA_REPLAY_FILE (a CSV or Parquet of ticks or bars)"
            )
        try:
            return ReplayFeed(
                Path(s.replay_file),
                speed=s.replay_speed,
                loop_forever=True,
                instruments={i.symbol: i for i in self.universe.instruments},
            )
        except FileNotFoundError:
            raise ConfigError(f"HOGA_REPLAY_FILE {s.replay_file} does not exist") from None
        except ValueError as e:
            raise ConfigError(f"HOGA_REPLAY_FILE: {e}") from None

    def _build_api(self) -> FastAPI:
        from hoga.api.server import create_api

        return create_api(self)

    async def _on_auth_change(self, change: Any) -> None:
        from hoga.store.repos.auth_changes import USER_DISABLED

        if change.kind == USER_DISABLED:
            await self.live_strategies.disable_user(
                change.user_id, "사용자가 비활성화되어 중지했습니다 (user disabled)"
            )
            withdrawn = await self.orders.withdraw_queued(change.user_id)
            if withdrawn:
                log.info("user %s disabled: %d queued orders withdrawn", change.user_id, withdrawn)

    async def _on_user_created(self, user: Any) -> None:
        await self.accounts.create_paper_account(user)

    # --- lifecycle

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
        s = self.settings
        self.data_dir.mkdir(parents=True, exist_ok=True)
        await self.acquire_guard()
        warm = asyncio.get_running_loop().run_in_executor(None, krx.warm_calendar)
        applied = await self.db.migrate()
        if applied:
            log.info("database migrated: %s", ", ".join(applied))
        await self.db.start()
        await self._sync_vault()
        for broker in self.brokers.values():
            await broker.start()
        try:
            self.admin_password_generated = await self.auth.bootstrap_admin(
                s.admin_username, s.admin_password.get_secret_value() if s.admin_password else None
            )
        except Conflict:
            if self.cluster is None:
                raise
            # Cluster mode: another server of a new cluster created the first admin just now.
            self.admin_password_generated = None
        await self.auth_watch.start()
        await self.orders.load_server_state()
        if self.start_paused:
            paused = await self.control.set(
                True, reason="started with --paused", by="hoga serve --paused"
            )
        else:
            paused = await self.control.load()
        self.live_strategies.suspended = paused.paused
        if s.cluster_nats_url:  # before the dispatcher and the API use the limits
            from hoga.cluster.limits import start_cluster_limits

            self.cluster_limits = await start_cluster_limits(self)
        # Paused (after a restore, or --paused): no broker session is opened - no realtime
        # socket, no reconciliation call - until an admin resumes, so a restored copy never
        # talks to a broker beside the original. ``_resume`` attaches them then.
        if not paused.paused:
            if self.cluster is None:  # cluster mode: each owned user's, as it is taken
                await self.accounts.attach_all()
            self._brokers_attached = True
        else:
            self.accounts.attaching = False
        if s.feed == "kiwoom":
            await self._use_kiwoom_feed()
        if s.feed == "kiwoom_openapi":
            await self._use_kiwoom_openapi_feed()
        await self._start_instruments()
        await warn_real_money(self)
        if self.cluster is None:  # cluster mode: per user, as its lease is taken
            recovered = await self.orders.recover()
            if any(recovered.values()):
                log.info("recovered orders after restart: %s", recovered)
        await warm
        if self._brokers_attached and self.cluster is None:
            await self.reconciler.reconcile_all()
        await self._load_bars()
        if isinstance(self.feed, SimulatorFeed | ReplayFeed) and self.drive_feed:
            self.feed.start()
        if self.cluster is not None:  # the hub reads from NATS; the feed lease holder publishes
            await self.cluster.start_market(self)
        await self.hub.start()
        await self.dispatcher.start()
        await self.resync.start()
        if self._brokers_attached:
            await self.reconciler.start()
        # Strategies start after the feeds and the order pipeline, before the API opens.
        await self.backtests.start()
        await self.live_strategies.start()
        loop = asyncio.get_running_loop()
        self._background = [
            loop.create_task(self._persist_bars(), name="bars-persist"),
            loop.create_task(self._day_roll(), name="day-roll"),
            loop.create_task(watch(self), name="watch"),
        ]
        await self._ops_start()
        sync_at = self._sync_at()
        if sync_at is not None and self.live_feed:
            source = self.instrument_source()
            if source is not None:
                self._background.append(
                    loop.create_task(
                        self.instruments.run_daily(sync_at, source), name="symbols-sync"
                    )
                )
        if self.cluster is not None:
            await self.cluster.start()  # users are taken (and their work started) from here
        self._started = True
        self.started_at = self.clock.time()
        log.info(
            "hoga %s started (%s, %s market, feed %s)",
            self.version,
            "PostgreSQL" if self.db.is_postgres else "SQLite",
            self.market_mode,
            self.feed.name,
        )

    async def stop(self) -> None:
        """Shut down in reverse order within ``STOP_DEADLINE`` seconds in all: each step gets at
        most 3 s and what is left of the deadline (a step cut short is logged and skipped)."""
        steps: list[tuple[str, Callable[[], Awaitable[None]]]] = [
            ("operations", self._ops_stop),
            ("auth changes", self.auth_watch.stop),
            ("strategies", self.live_strategies.stop),
            ("backtests", self.backtests.stop),
            ("reconciler", self.reconciler.stop),
            ("queue resync", self.resync.stop),
            ("dispatcher", lambda: self.dispatcher.stop(grace=3.0)),
            ("held events", self.orders.stop),
            # Quota shares go back to the cluster while the NATS connection is still open.
            *([("cluster limits", self.cluster_limits.stop)] if self.cluster_limits else []),
            *([("cluster", self.cluster.stop)] if self.cluster is not None else []),
            ("hub", self.hub.stop),
            ("feed", self.feed.close),
            ("background", self._stop_background),
            ("bars", self._flush_bars),
        ]
        steps += [(f"broker {n}", b.stop) for n, b in self.brokers.items()]
        steps.append(("database", self.db.close))
        if self._guarded:
            steps.append(("server lock", self._release_guard))
        deadline = time.monotonic() + STOP_DEADLINE
        for name, step in steps:
            # Later steps (the database, the server lock) always get a moment: a slow early step
            # must not leave the lock held until the process dies.
            budget = min(3.0, max(0.5, deadline - time.monotonic()))
            try:
                await asyncio.wait_for(step(), budget)
            except Exception as e:
                log.warning("shutdown step %s: %s", name, type(e).__name__)
        self._started = False

    async def _release_guard(self) -> None:
        self._guarded = False
        await self.guard.release()

    async def _stop_background(self) -> None:
        for task in self._background:
            task.cancel()
        for task in self._background:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._background = []

    # --- bars persistence

    async def _load_bars(self) -> None:
        since = int(self.clock.time()) - 6 * 3600
        async with self.db.tx(SYSTEM) as conn:
            self.bars.seed(await bars_repo.minute_bars_since(conn, since))

    async def _flush_bars(self) -> None:
        self.bars.flush(self.clock.time())
        pending = self.bars.take_pending()
        if not pending or not self.db._engine:
            return
        try:
            async with self.db.tx(SYSTEM) as conn:
                await bars_repo.insert(conn, pending)
        except BaseException:
            self.bars.restore_pending(pending)  # written next time
            raise

    async def _persist_bars(self) -> None:
        while True:
            await asyncio.sleep(5.0)
            try:
                await self._flush_bars()
            except StorageUnavailable as e:
                log.warning("persisting bars postponed: storage fault (%s)", e.code)
            except Exception:
                log.exception("persisting bars failed")

    async def _day_roll(self) -> None:
        day = krx.trading_date(self.clock.now())
        while True:
            await asyncio.sleep(30.0)
            today = krx.trading_date(self.clock.now())
            if today == day:
                continue
            try:
                n = await self.orders.expire_stale(today)
            except StorageUnavailable as e:
                log.warning("day roll postponed: storage fault (%s)", e.code)
                continue  # the day is rolled again in 30 s
            except Exception:
                log.exception("day roll failed; trying again in 30 s")
                continue
            day = today
            if n:
                log.info("expired %d queued orders of earlier days", n)


class AdminContext:
    """The parts the ``hoga user``/``vault`` commands need, without brokers, feeds or the API.

    Safe to use while a server runs on the same database: it never migrates (it refuses a
    schema that is not at this hoga's head instead), so it takes no exclusive lock, and it never
    touches the paper broker's journal (the server opens a new user's paper book on first use).
    """

    def __init__(self, settings: Settings) -> None:
        self.clock: Clock = SystemClock()
        core = build_core(settings, self.clock)
        self.db = core.db
        self.vault = core.vault
        self.auth = core.auth
        self.accounts = core.accounts
        self.auth.on_user_created.append(self.accounts.create_paper_account)

    async def start(self) -> None:
        # Never migrate here: migrations take exclusive locks that would stall the live
        # server behind any long reader. ``hoga db upgrade`` and ``hoga serve`` migrate.
        await self.db.require_schema()
        await self.db.start()

    async def close(self) -> None:
        await self.db.close()
