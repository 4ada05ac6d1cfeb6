"""The server's paused state: kept in the database, applied by the running server.

A paused server serves the API, accepts orders into its queue and keeps its books, but sends
nothing to any broker (the send gate holds every account) and runs no strategy (they are
stopped with their status kept, so resuming starts the same ones again). Use: after a restore,
the copy must not trade beside the original; for maintenance.

The state lives in ``system_state`` under ``server.paused`` so that anything with the database
can set it - ``hoga serve --paused``, ``hoga pause``/``hoga resume`` (CLI, no server needed),
``POST /api/admin/pause|resume``, and a restore (which writes ``paused: true`` into the restored
database before any server starts on it). The running server re-reads it every ``poll``
interval and records what it applied under ``server.paused.applied`` so the CLI can tell the
operator when the server has picked a change up.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from hoga.domain.clock import KST, Clock
from hoga.execution.gate import Pause, SendGate
from hoga.store.db import SYSTEM, Database
from hoga.store.repos import audit
from hoga.store.repos import system as system_repo

log = logging.getLogger(__name__)

PAUSE_KEY = "server.paused"
APPLIED_KEY = "server.paused.applied"


@dataclass(frozen=True, slots=True)
class PauseState:
    """What the database says: paused or not, why, by whom, since when."""

    paused: bool = False
    reason: str = ""
    by: str = ""
    since: float | None = None

    @staticmethod
    def from_doc(doc: dict[str, Any] | None) -> PauseState:
        if not doc:
            return PauseState()
        since = doc.get("since")
        return PauseState(
            paused=bool(doc.get("paused")),
            reason=str(doc.get("reason") or ""),
            by=str(doc.get("by") or ""),
            since=float(since) if isinstance(since, int | float) else None,
        )

    def doc(self) -> dict[str, Any]:
        return {"paused": self.paused, "reason": self.reason, "by": self.by, "since": self.since}

    def view(self) -> dict[str, Any]:
        return {
            "paused": self.paused,
            "reason": self.reason or None,
            "by": self.by or None,
            "since": None
            if self.since is None
            else datetime.fromtimestamp(self.since, KST).isoformat(timespec="seconds"),
        }


async def read_pause(db: Database) -> PauseState:
    async with db.tx(SYSTEM) as conn:
        return PauseState.from_doc(await system_repo.get(conn, PAUSE_KEY))


async def write_pause(
    db: Database,
    clock: Clock,
    paused: bool,
    *,
    reason: str,
    by: str,
    actor_id: int | None = None,
    ip: str | None = None,
) -> PauseState:
    """Record the paused state (and an audit entry); any running server applies it."""
    now = clock.now()
    state = PauseState(paused, reason if paused else "", by, clock.time())
    async with db.tx(SYSTEM) as conn:
        await system_repo.put(conn, PAUSE_KEY, state.doc(), now)
        await audit.record(
            conn,
            action="server.pause" if paused else "server.resume",
            now=now,
            user_id=None,
            actor_id=actor_id,
            ip=ip,
            detail={"reason": reason or None, "by": by},
        )
    return state


async def applied_pause(db: Database) -> dict[str, Any] | None:
    """What a running server last applied (``paused``, ``pid``, ``host``, ``at``), if any."""
    async with db.tx(SYSTEM) as conn:
        return await system_repo.get(conn, APPLIED_KEY)


class ServerControl:
    """Applies the database's paused state to the send gate and the strategies."""

    def __init__(
        self,
        db: Database,
        clock: Clock,
        gate: SendGate,
        *,
        on_pause: Callable[[], Awaitable[None]],
        on_resume: Callable[[], Awaitable[None]],
    ) -> None:
        self._db = db
        self._clock = clock
        self._gate = gate
        self._on_pause = on_pause
        self._on_resume = on_resume
        self.state = PauseState()
        self._applied: bool | None = None
        #: Called after this process wrote a change (cluster mode tells the other servers,
        #: which otherwise see it at their next poll).
        self.on_change_written: list[Callable[[], None]] = []

    @property
    def paused(self) -> bool:
        return self.state.paused

    async def load(self) -> PauseState:
        """Read the state at start-up and hold the gate accordingly (strategies are not
        started yet, so nothing else needs doing)."""
        self.state = await read_pause(self._db)
        self._set_gate()
        self._applied = self.state.paused
        await self._record_applied()
        if self.state.paused:
            log.warning(
                "server is PAUSED (%s, by %s): no orders go to brokers and no strategy runs "
                "until an admin resumes (hoga resume, or POST /api/admin/resume)",
                self.state.reason or "no reason given",
                self.state.by or "?",
            )
        return self.state

    async def set(
        self,
        paused: bool,
        *,
        reason: str,
        by: str,
        actor_id: int | None = None,
        ip: str | None = None,
    ) -> PauseState:
        """Pause or resume now (from the API or ``hoga serve --paused``)."""
        await write_pause(
            self._db, self._clock, paused, reason=reason, by=by, actor_id=actor_id, ip=ip
        )
        for hook in self.on_change_written:
            hook()
        if self._applied is None:
            await self.load()  # at start-up, before strategies or dispatch began
        else:
            await self.poll()
        return self.state

    async def poll(self) -> None:
        """Re-read the state and apply a change (the CLI or a restore may have written it)."""
        state = await read_pause(self._db)
        self.state = state
        if state.paused == self._applied:
            self._set_gate()  # reason or time may have changed
            return
        self._applied = state.paused
        self._set_gate()
        if state.paused:
            log.warning("server paused (%s, by %s)", state.reason or "-", state.by or "?")
            await self._on_pause()
        else:
            log.warning("server resumed (by %s)", state.by or "?")
            await self._on_resume()
        await self._record_applied()

    def _set_gate(self) -> None:
        s = self.state
        self._gate.pause = (
            Pause(s.reason or "-", s.by or "?", s.since or self._clock.time()) if s.paused else None
        )

    async def _record_applied(self) -> None:
        async with self._db.tx(SYSTEM) as conn:
            await system_repo.put(
                conn,
                APPLIED_KEY,
                {
                    "paused": self.state.paused,
                    "pid": os.getpid(),
                    "host": socket.gethostname(),
                    "at": self._clock.time(),
                },
                self._clock.now(),
            )
