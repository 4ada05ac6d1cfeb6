"""Login throttling across the servers of a cluster.

Every server keeps its own ``LoginThrottle`` and applies to it every failure and success any
server records: each one is published on ``hoga.control.throttle`` and the others replay it,
so a key locked on one server is locked on all of them within a NATS delivery (milliseconds).
A server that starts asks a peer for its state (``hoga.control.throttle.state``) so it does
not open a door the others keep shut.

Keys travel hashed (SHA-256 of the key, which names a username and an address): NATS carries
no account names. The local throttle is kept under the same hashed keys, so what every
server holds agrees.

What this does not give: two failures recorded at the same moment on two servers both pass
``locked_for`` before either hears of the other - as two concurrent attempts on one server
already do while their passwords are checked. The overshoot is the attempts in flight across
the cluster while the lock travels, a handful at worst (docs/scaling.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
from typing import TYPE_CHECKING, Any

from hoga.security.throttle import LoginThrottle

if TYPE_CHECKING:
    from hoga.cluster.bus import ClusterBus

log = logging.getLogger(__name__)


def _h(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()[:32]


class ReplicatedThrottle:
    """A ``Throttle`` whose failures and successes every server of the cluster applies.

    Contract: the same answers as the wrapped ``LoginThrottle`` for what this server saw,
    plus whatever its peers published (applied as it arrives, aged by delivery time only)."""

    def __init__(self, local: LoginThrottle, bus: ClusterBus) -> None:
        self.local = local
        self._bus = bus
        self._subject = bus.subject("control", "throttle")
        self._state_subject = bus.subject("control", "throttle", "state")
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def max_failures(self) -> int:
        return self.local.max_failures

    async def start(self) -> None:
        await self._bus.subscribe(self._subject, self._on_change)
        await self._bus.flush()
        with contextlib.suppress(Exception):  # no peer yet: nothing to learn
            rows = json.loads(await self._bus.request(self._state_subject, b"{}", wait=0.5))
            self.local.merge(rows)
        # Answer others only now, so our own (empty) answer is not the one we just took. The
        # raw client is the bus's one connection; a request needs its reply subject, which
        # ``ClusterBus.subscribe`` does not pass on.
        await self._bus.client.subscribe(self._state_subject, cb=self._on_state_request)

    # --- the Throttle face
    def locked_for(self, *keys: str) -> float:
        return self.local.locked_for(*map(_h, keys))

    def failure(
        self, *keys: str, limits: dict[str, int] | None = None, backoff: tuple[str, ...] = ()
    ) -> float:
        hk = [_h(k) for k in keys]
        hl = {_h(k): v for k, v in (limits or {}).items()}
        hb = [_h(k) for k in backoff]
        self._publish({"op": "failure", "keys": hk, "limits": hl, "backoff": hb})
        return self.local.failure(*hk, limits=hl, backoff=tuple(hb))

    def success(self, *keys: str) -> None:
        hk = [_h(k) for k in keys]
        self._publish({"op": "success", "keys": hk})
        self.local.success(*hk)

    # --- wire
    def _publish(self, change: dict[str, Any]) -> None:
        data = json.dumps({**change, "from": self._bus.instance_id}).encode()
        task = asyncio.get_running_loop().create_task(self._send(data))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _send(self, data: bytes) -> None:
        try:
            await self._bus.publish(self._subject, data)
        except Exception as e:  # NATS away: this server still counts; peers miss this one
            log.warning("login throttle change not shared: %s", type(e).__name__)

    async def _on_change(self, _subject: str, data: bytes) -> None:
        msg = json.loads(data)
        if msg.get("from") == self._bus.instance_id:
            return
        keys = [str(k) for k in msg.get("keys", [])]
        if msg.get("op") == "failure":
            limits = {str(k): int(v) for k, v in msg.get("limits", {}).items()}
            backoff = tuple(str(k) for k in msg.get("backoff", []))
            self.local.failure(*keys, limits=limits, backoff=backoff)
        elif msg.get("op") == "success":
            self.local.success(*keys)

    async def _on_state_request(self, msg: Any) -> None:
        with contextlib.suppress(Exception):
            await msg.respond(json.dumps(self.local.export()).encode())
