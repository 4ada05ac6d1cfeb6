"""The one NATS connection a clustered hoga server holds (docs/scaling.md).

Everything a cluster shares that is not in PostgreSQL travels here: leases (JetStream key-value
with a TTL), work handed to a user's owner, user events for WebSockets on other servers, market
data per symbol, cluster-wide limits. Modules that need NATS take a ``ClusterBus``; none opens a
connection of its own, so one ``connected`` flag says whether this server can still see the
cluster (the lease keeper stops owned work when it cannot renew).

Subjects all start with ``prefix`` (default ``hoga``) so two clusters - or two test runs - can
share one NATS server without hearing each other; key-value buckets are named
``<prefix>_<bucket>`` for the same reason.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from hoga.tasks import cancel_and_wait

if TYPE_CHECKING:  # nats-py is imported lazily: a single server never loads it
    from nats.aio.client import Client
    from nats.aio.subscription import Subscription
    from nats.js.kv import KeyValue

log = logging.getLogger(__name__)

Handler = Callable[[str, bytes], Awaitable[None]]


async def cancel(task: asyncio.Task[None] | None) -> None:
    """Cancel a cluster part's background loop and wait for it to end."""
    if task is not None:
        await cancel_and_wait([task])


def default_instance_id() -> str:
    """``<hostname>-<pid>``: unique among live servers, readable in logs and lease values."""
    host = socket.gethostname().split(".")[0] or "hoga"
    safe = "".join(c if c.isalnum() or c in "-_" else "-" for c in host)[:40]
    return f"{safe}-{os.getpid()}"


class ClusterBus:
    """A NATS connection with JetStream, named subjects and buckets, and a connected flag.

    Contract: ``start`` connects (raising if NATS is unreachable - a clustered server must not
    start alone); afterwards the client reconnects by itself forever and ``connected`` tells
    the truth at every moment. Handlers run on the event loop; one that raises is logged and
    does not end its subscription. ``stop`` drains nothing: what is in flight is lost, which
    every user of the bus tolerates because the database is the record.
    """

    def __init__(self, url: str, instance_id: str | None = None, *, prefix: str = "hoga") -> None:
        self.url = url
        self.instance_id = instance_id or default_instance_id()
        self.prefix = prefix
        self._nc: Client | None = None
        self._subs: list[Subscription] = []
        self._on_state: list[Callable[[bool], None]] = []

    # --- life
    async def start(self, connect_timeout: float = 5.0) -> None:
        import nats

        async def disconnected() -> None:
            if self._nc is None:
                return  # our own ``stop``: not a loss worth a warning
            log.warning("cluster: lost NATS at %s", self.url)
            self._tell(False)

        async def reconnected() -> None:
            log.info("cluster: NATS is back")
            self._tell(True)

        async def error(e: Exception) -> None:
            log.debug("cluster: NATS error: %s", type(e).__name__)

        self._nc = await nats.connect(
            self.url,
            name=f"hoga-{self.instance_id}",
            connect_timeout=connect_timeout,
            max_reconnect_attempts=-1,
            reconnect_time_wait=0.5,
            ping_interval=2,
            max_outstanding_pings=2,
            disconnected_cb=disconnected,
            reconnected_cb=reconnected,
            error_cb=error,
        )

    async def stop(self) -> None:
        nc, self._nc = self._nc, None
        self._subs.clear()
        if nc is not None and not nc.is_closed:
            await nc.close()

    @property
    def connected(self) -> bool:
        return self._nc is not None and self._nc.is_connected

    def on_state(self, callback: Callable[[bool], None]) -> None:
        """``callback(connected)`` on every loss and return of the connection."""
        self._on_state.append(callback)

    def _tell(self, up: bool) -> None:
        for cb in list(self._on_state):
            try:
                cb(up)
            except Exception:  # a listener's bug must not break the connection's callbacks
                log.exception("cluster: state listener failed")

    @property
    def client(self) -> Client:
        if self._nc is None:
            raise RuntimeError("cluster bus not started")
        return self._nc

    # --- naming
    def subject(self, *parts: str) -> str:
        """``hoga.<part>.<part>``; parts must not contain dots, spaces or wildcards."""
        for p in parts:
            if not p or any(c in p for c in ". *>\t\r\n"):
                raise ValueError(f"bad subject token {p!r}")
        return ".".join((self.prefix, *parts))

    def bucket_name(self, name: str) -> str:
        return f"{self.prefix}_{name}"

    # --- messaging
    async def publish(self, subject: str, data: bytes) -> None:
        await self.client.publish(subject, data)

    async def subscribe(self, subject: str, handler: Handler, queue: str = "") -> Subscription:
        """Call ``handler(subject, data)`` for each message; ``queue`` makes a queue group."""

        async def deliver(msg: Any) -> None:
            try:
                await handler(msg.subject, msg.data)
            except Exception:
                log.exception("cluster: handler for %s failed", subject)

        sub = await self.client.subscribe(subject, queue=queue, cb=deliver)
        self._subs.append(sub)
        return sub

    async def request(self, subject: str, data: bytes, wait: float = 2.0) -> bytes:
        """One answer to ``data`` within ``wait`` seconds (``nats.errors.TimeoutError``)."""
        msg = await self.client.request(subject, data, timeout=wait)
        return bytes(msg.data)

    async def flush(self, wait: int = 2) -> None:
        """Wait until the server has seen everything published so far."""
        await self.client.flush(timeout=wait)

    # --- key-value
    async def key_value(self, name: str, ttl: float | None = None, history: int = 1) -> KeyValue:
        """The bucket ``<prefix>_<name>``, created if missing (``ttl`` seconds per entry)."""
        from nats.js.errors import BucketNotFoundError

        js = self.client.jetstream()
        bucket = self.bucket_name(name)
        try:
            return await js.key_value(bucket)
        except BucketNotFoundError:
            return await js.create_key_value(bucket=bucket, ttl=ttl, history=history)
