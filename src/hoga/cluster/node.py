"""The cluster parts of one server, built from the settings and wired into the app's parts.

``HogaApp`` builds a ``ClusterNode`` only when ``HOGA_CLUSTER_NATS_URL`` is set; otherwise
none of this exists and nats is never imported. The node:

* supplies the guard (``guard.py``) and the event bus (``events.py``) the app is built with;
* narrows the app's global parts to the users this server owns - the queue admits only their
  requests (the others are handed to their owner, ``handoff.py``), the queue resync, the
  reconciler, the strategies and the broker sessions look at owned users only, and the send
  path asks ``may_send`` between the SUBMITTING claim and the broker call;
* runs the ownership rounds (``ownership.py``) whose gains start a user's work by the same
  recovery a restart runs (``start_user``) and whose losses stop it (``stop_user``).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from typing import TYPE_CHECKING, Any

from hoga.cluster.bus import ClusterBus
from hoga.cluster.events import ClusterEventBus
from hoga.cluster.guard import ClusterGuard
from hoga.cluster.handoff import Handoff
from hoga.cluster.leases import LeaseKeeper
from hoga.cluster.marketdata import ClusterMarket
from hoga.cluster.members import Members
from hoga.cluster.ownership import Ownership
from hoga.cluster.remote import RemoteModify
from hoga.config import Settings
from hoga.domain.orders import Order
from hoga.execution.queue import QueueItem
from hoga.store.db import SYSTEM
from hoga.store.repos import accounts as accounts_repo
from hoga.store.repos.accounts import AccountRecord

if TYPE_CHECKING:
    from hoga.app import HogaApp

log = logging.getLogger(__name__)


def broker_lease(app_key: str) -> str:
    """``broker-<sha256(app key)[:16]>``: the lease for one broker app key's sessions."""
    return "broker-" + hashlib.sha256(app_key.encode()).hexdigest()[:16]


class ClusterNode:
    """See the module docstring. ``build`` is called in ``HogaApp.__init__`` before the parts
    that take the event bus; ``wire`` after them; ``start``/``stop`` from the app's life."""

    def __init__(self, settings: Settings) -> None:
        assert settings.cluster_nats_url is not None
        self.settings = settings
        ttl = settings.cluster_lease_ttl
        self.bus = ClusterBus(
            settings.cluster_nats_url, settings.cluster_instance_id, prefix=settings.cluster_prefix
        )
        self.members = Members(self.bus, ttl)
        self.leases = LeaseKeeper(self.bus, ttl)
        self.events = ClusterEventBus()
        self.ownership = Ownership(self.leases, self.members, self)
        self.handoff = Handoff(self.bus, self.pickup, self.ownership.owns)
        self.remote = RemoteModify(self.bus, self._modify_here, self.ownership.owns)
        self.market: ClusterMarket | None = None
        self._app: HogaApp | None = None
        self._accounts: dict[int, list[AccountRecord]] = {}
        self._keys: dict[int, str | None] = {}  # account id -> broker lease (None: paper)

    @property
    def instance_id(self) -> str:
        return self.bus.instance_id

    def status(self) -> dict[str, Any]:
        """What the admin's status page shows of the cluster: this server, the ready members,
        the users it owns now and whether it carries the cluster's market-data feed."""
        return {
            "instance": self.instance_id,
            "connected": self.bus.connected,
            "members": sorted(self.members.members),
            "users": sorted(self.ownership.started),
            "feed_owner": self.market is not None and self.market.owner.owning,
        }

    def guard(self, app: HogaApp) -> ClusterGuard:
        return ClusterGuard(self.settings, app.data_dir, self.bus, self.members)

    def may_send(self, user_id: int) -> bool:
        return self.ownership.may_send(user_id)

    # --- wiring
    def wire(self, app: HogaApp) -> None:
        self._app = app
        owns = self.ownership.owns
        app.queue.admit = self._admit
        app.orders.core.may_send = self.may_send
        app.accounts.owns = owns
        app.resync.owns = owns
        app.reconciler.owns_account = self._owns_account
        app.live_strategies.owns = owns
        app.live_strategies.on_remote = self.handoff.notify
        app.orders.remote_modify = self._modify_remote

    def _admit(self, item: QueueItem) -> bool:
        if self.ownership.may_send(item.user_id):
            return True
        # Another server owns the user (or nobody does yet): the request is in the database;
        # tell the owner. With no owner it waits there for the next owner's recovery.
        self.handoff.notify(item.user_id)
        return False

    def _owns_account(self, account_id: int) -> bool:
        return any(
            a.id == account_id for u in self.ownership.started for a in self._accounts.get(u, ())
        )

    @property
    def app(self) -> HogaApp:
        assert self._app is not None
        return self._app

    # --- life (the guard has connected the bus and registered the member already)
    async def start(self) -> None:
        await self.events.attach(self.bus)
        await self.leases.start()
        await self.handoff.start()
        await self.remote.start()
        await self.members.ready()
        await self.ownership.start()
        log.info(
            "cluster: %s joined (%d live members, lease ttl %.1f s)",
            self.instance_id,
            len(self.members.members),
            self.leases.ttl,
        )

    async def start_market(self, app: HogaApp) -> None:
        """Put the hub on the cluster's market data (cluster/marketdata.py): once the app's
        feed is final (Kiwoom's is chosen at start-up), before the hub starts."""
        self.market = ClusterMarket(
            self.bus,
            self.leases,
            app.hub,
            app.clock,
            source=self.settings.feed,
            is_trading=app.market_open,
        )
        await self.market.start()

    async def stop(self) -> None:
        """Hand every user back (work stopped, leases deleted so others take over at once)."""
        if self.market is not None:  # upstream closed before its lease is deleted
            await self.market.stop()
        await self.ownership.stop()
        await self.handoff.stop()
        await self.leases.stop()

    async def resume(self) -> None:
        """The server resumes after a pause: open the owned users' broker sessions."""
        for user_id in list(self.ownership.started):
            for acct in self._accounts.get(user_id, ()):
                await self.app.accounts.attach_account(acct)
            await self._reconcile(user_id)

    # --- modify on the owner (remote.py)
    async def _modify_remote(
        self, user_id: int, order_id: int, price: int | None, qty: int | None, ip: str | None
    ) -> Order | None:
        if self.ownership.owns(user_id):
            return None  # ours: run it here
        modified = await self.remote.forward(user_id, order_id, price, qty, ip)
        return await self.app.orders.get(user_id, modified)

    async def _modify_here(
        self, user_id: int, order_id: int, price: int | None, qty: int | None, ip: str | None
    ) -> int:
        order = await self.app.orders.modifier.request(
            user_id, order_id, price=price, quantity=qty, ip=ip
        )
        return order.id

    # --- UserWork (ownership.py)
    async def users(self) -> dict[int, list[str]]:
        async with self.app.db.tx(SYSTEM) as conn:
            accts = await accounts_repo.all_active_accounts(conn)
        users: dict[int, list[str]] = {}
        for acct in accts:
            keys = users.setdefault(acct.user_id, [])
            lease = self._broker_lease(acct)
            if lease is not None and lease not in keys:
                keys.append(lease)
        return users

    def _broker_lease(self, acct: AccountRecord) -> str | None:
        if acct.id not in self._keys:
            lease = None
            if acct.broker != "paper":
                try:
                    key = self.app.accounts.ref(acct).app_key
                except Exception:  # undecryptable: the account cannot trade anywhere
                    key = None
                lease = broker_lease(key.reveal()) if key else None
            self._keys[acct.id] = lease
        return self._keys[acct.id]

    async def start_user(self, user_id: int) -> None:
        """The restart path for one user: broker sessions, recovery, reconciliation,
        strategies - in the order ``HogaApp.start`` runs them."""
        app = self.app
        accts = await app.accounts.user_accounts(user_id)
        self._accounts[user_id] = accts
        if not app.control.paused:
            for acct in accts:
                await app.accounts.attach_account(acct)
        recovered = await app.orders.recover(user_id)
        if any(recovered.values()):
            log.info("cluster: user %s recovered: %s", user_id, recovered)
        if not app.control.paused:
            await self._reconcile(user_id)
        await app.live_strategies.start_user(user_id)
        app.dispatcher.wake_all()

    async def _reconcile(self, user_id: int) -> None:
        for acct in self._accounts.get(user_id, ()):
            self.app.reconciler.request(acct.id, delay=0.0)

    async def stop_user(self, user_id: int) -> None:
        """Sending already stopped (``may_send`` is False); now the queue, strategies and
        broker sessions."""
        app = self.app
        dropped = app.queue.remove_user(user_id)
        if dropped:
            log.info(
                "cluster: user %s: %d queued requests left to the next owner", user_id, dropped
            )
        try:
            await asyncio.wait_for(app.live_strategies.stop_user(user_id), 6.0)
        except TimeoutError:
            log.warning("cluster: user %s: strategies did not stop in time", user_id)
        for acct in self._accounts.pop(user_id, []):
            await app.accounts.detach_account(acct)

    async def pickup(self, user_id: int) -> None:
        """Work handed over by another server: load the user's waiting requests and
        strategy changes from the database."""
        app = self.app
        await app.resync.check(user_id)
        await app.live_strategies.sync_user(user_id)
        app.dispatcher.wake_all()
