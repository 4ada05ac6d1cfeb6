"""The pool: N worker processes, each logged in as one Kiwoom user.

How many logins one PC may hold at once is unverified (kiwoom.md B6), so ``size`` is a
setting, default 1. Switching a slot to another user = ending its worker and logging a new one
in (``CommTerminate`` does not log out); the time from the decision to a logged-in worker is
measured and kept in ``switch_times``.

A *spare* process (started, control not yet created, nobody logged in) waits beside the slots
so a switch pays only for the login, not for starting Python and Qt. It never calls
``CommConnect`` before it takes a slot, so it does not count as a login.

A command for a user no slot holds switches a slot to that user first (reconciliation after a
restart needs that); the dispatcher's own ``switch``/``prepare`` calls make this the exception.
A worker is never ended while it has a command in flight (bounded wait), so a switch cannot
turn an order into an unknown one. A worker that dies on its own (crash, the control's
disconnect) fails its in-flight commands with ``worker_died`` and its user is logged in again.

Real-time codes registered through the pool live on one logged-in worker (the *feed* worker),
in screens of at most 100 codes, and are registered again on a new worker whenever the feed
worker ends - with one slot that is every switch, so quotes pause for the login time.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import time
from collections.abc import Callable
from typing import Any

from hoga_bridge.control import MAX_CODES_PER_SCREEN

log = logging.getLogger(__name__)

EventHandler = Callable[[str | None, dict[str, Any]], None]


class PoolError(Exception):
    """A command the pool could not carry out; ``kind`` is the protocol's error kind."""

    def __init__(self, kind: str, message: str, code: int = 0) -> None:
        super().__init__(message)
        self.kind, self.message, self.code = kind, message, code


class WorkerProc:
    """One worker process as the pool sees it: JSON lines over its stdin/stdout."""

    _ids = itertools.count(1)

    def __init__(
        self,
        cmd: list[str],
        on_event: Callable[[WorkerProc, dict[str, Any]], None],
        on_exit: Callable[[WorkerProc], None],
    ) -> None:
        self.cmd = cmd
        self.name = f"w{next(self._ids)}"
        self.user: str | None = None
        self.accounts: list[str] = []
        self.last_used = 0.0
        self.inflight = 0
        self.last_event = 0.0
        self.ending = False  # ended by the pool (not a crash)
        self._on_event, self._on_exit = on_event, on_exit
        self._proc: asyncio.subprocess.Process | None = None
        self._futures: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._seq = itertools.count(1)
        self._ready = asyncio.get_running_loop().create_future()
        self._idle = asyncio.Event()
        self._idle.set()
        self._reader: asyncio.Task[None] | None = None

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    @property
    def alive(self) -> bool:
        return self._proc is not None and self._proc.returncode is None

    async def start(self, within: float = 60.0) -> None:
        self._proc = await asyncio.create_subprocess_exec(
            *self.cmd,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            limit=1 << 22,
        )
        self._reader = asyncio.get_running_loop().create_task(self._read())
        await asyncio.wait_for(asyncio.shield(self._ready), within)

    async def _read(self) -> None:
        assert self._proc is not None and self._proc.stdout is not None
        try:
            while line := await self._proc.stdout.readline():
                try:
                    msg = json.loads(line)
                except json.JSONDecodeError:
                    continue
                if "id" in msg:
                    fut = self._futures.pop(int(msg["id"]), None)
                    if fut is not None and not fut.done():
                        fut.set_result(msg)
                elif msg.get("event") == "ready":
                    if not self._ready.done():
                        self._ready.set_result(None)
                else:
                    if msg.get("event") != "real":  # quotes never stop; notices do
                        self.last_event = time.monotonic()
                    self._on_event(self, msg)
        finally:
            with contextlib.suppress(ProcessLookupError):
                await self._proc.wait()
            died = PoolError("worker_died", "the worker process ended")
            for fut in self._futures.values():
                if not fut.done():
                    fut.set_exception(died)
            self._futures.clear()
            if not self._ready.done():
                self._ready.set_exception(died)
            self._on_exit(self)

    async def call(self, op: str, within: float, **args: Any) -> dict[str, Any]:
        """Send one command; its answer (``ok`` false answers raise ``PoolError``)."""
        if not self.alive or self._proc is None or self._proc.stdin is None:
            raise PoolError("worker_died", "the worker process ended")
        n = next(self._seq)
        fut: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._futures[n] = fut
        self.inflight += 1
        self._idle.clear()
        self.last_used = time.monotonic()
        try:
            self._proc.stdin.write(
                (json.dumps({"id": n, "op": op, **args}, ensure_ascii=False) + "\n").encode()
            )
            await self._proc.stdin.drain()
            try:
                msg = await asyncio.wait_for(fut, within)
            except TimeoutError:
                self._futures.pop(n, None)
                raise PoolError("timeout", f"no answer from the worker to {op}") from None
        except (ConnectionError, BrokenPipeError):
            raise PoolError("worker_died", "the worker process ended") from None
        finally:
            self.inflight -= 1
            if self.inflight == 0:
                self._idle.set()
        if not msg.get("ok"):
            raise PoolError(
                str(msg.get("kind", "error")), str(msg.get("message", "")), int(msg.get("code", 0))
            )
        return {k: v for k, v in msg.items() if k not in ("id", "ok")}

    async def wait_idle(self, within: float, quiet: float = 0.3) -> None:
        """Until no command is in flight and no event came for ``quiet`` seconds (a market
        order's executions arrive just after its answer; ending the login sooner would leave
        them to reconciliation), at most ``within`` seconds."""
        deadline = time.monotonic() + within
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._idle.wait(), within)
        while time.monotonic() < deadline:
            calm = time.monotonic() - self.last_event
            if calm >= quiet and self._idle.is_set():
                return
            await asyncio.sleep(max(0.01, min(quiet - calm, deadline - time.monotonic())))

    def kill(self) -> None:
        if self._proc is not None and self._proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self._proc.kill()

    async def end(self) -> None:
        """End the process (the only way to log its user out)."""
        self.ending = True
        if self._proc is not None and self._proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self._proc.kill()
        if self._reader is not None:
            with contextlib.suppress(Exception):
                await self._reader


class Pool:
    """See the module docstring. ``on_event(user, msg)`` receives workers' events."""

    def __init__(
        self,
        worker_cmd: list[str],
        *,
        size: int = 1,
        spare: bool = True,
        on_event: EventHandler | None = None,
        login_timeout: float = 60.0,
        drain_timeout: float = 15.0,
    ) -> None:
        if size < 1:
            raise ValueError("pool size must be at least 1")
        self.worker_cmd = worker_cmd
        self.size = size
        self.use_spare = spare
        self.on_event = on_event or (lambda user, msg: None)
        self.login_timeout = login_timeout
        self.drain_timeout = drain_timeout
        self.slots: list[WorkerProc | None] = [None] * size
        self.switch_times: list[float] = []
        self.relogins = 0
        self._spare: asyncio.Task[WorkerProc] | None = None
        self._lock = asyncio.Lock()
        self._logins: dict[str, asyncio.Task[WorkerProc]] = {}
        self._logging_in: tuple[str, WorkerProc] | None = None
        self._abandon: set[str] = set()
        self.aborted = 0
        self._closing = False
        self._real: list[str] = []
        self._feed: WorkerProc | None = None
        self._bg: set[asyncio.Task[Any]] = set()

    # --- lifecycle

    async def start(self) -> None:
        if self.use_spare:
            self._spare = asyncio.get_running_loop().create_task(self._new_proc())

    async def close(self) -> None:
        self._closing = True
        procs = [p for p in self.slots if p is not None]
        if self._spare is not None:
            self._spare.cancel()
            with contextlib.suppress(BaseException):
                procs.append(await self._spare)
        for task in list(self._bg):
            task.cancel()
        for p in procs:
            await p.end()

    async def _new_proc(self) -> WorkerProc:
        proc = WorkerProc(self.worker_cmd, self._worker_event, self._worker_exit)
        await proc.start()
        return proc

    async def _take_spare(self) -> WorkerProc:
        spare, self._spare = self._spare, None
        if self.use_spare and not self._closing:
            self._spare = asyncio.get_running_loop().create_task(self._new_proc())
        if spare is not None:
            with contextlib.suppress(Exception):
                proc = await spare
                if proc.alive:
                    return proc
        return await self._new_proc()

    # --- sessions

    def holder(self, user: str) -> WorkerProc | None:
        for p in self.slots:
            if p is not None and p.user == user and p.alive and not p.ending:
                return p
        return None

    async def session(self, user: str) -> WorkerProc:
        """A worker logged in as ``user``, switching a slot to it if none is."""
        proc = self.holder(user)
        if proc is not None:
            return proc
        return await self.switch(user)

    async def switch(self, user: str, *, keep_active: bool = False) -> WorkerProc:
        """Log a slot in as ``user`` (ending whoever held it). ``keep_active``: never take the
        most recently used slot (preparing the next session beside the working one)."""
        proc = self.holder(user)
        if proc is not None:
            return proc
        task = self._logins.get(user)
        if task is None:
            self._abandon.discard(user)  # an abort of an earlier login is not for this one
            task = asyncio.get_running_loop().create_task(self._switch(user, keep_active))
            self._logins[user] = task
            task.add_done_callback(lambda _t: self._logins.pop(user, None))
        return await asyncio.shield(task)

    async def _switch(self, user: str, keep_active: bool) -> WorkerProc:
        t0 = time.monotonic()
        async with self._lock:
            self._check_abandoned(user)
            i = self._victim(keep_active)
            old = self.slots[i]
            if old is not None:
                await old.wait_idle(
                    min(self.drain_timeout, 2.0) if not old.inflight else self.drain_timeout
                )
                self.slots[i] = None
                await old.end()
            proc = await self._take_spare()
            self._logging_in = (user, proc)
            try:
                self._check_abandoned(user)
                reply = await proc.call("login", self.login_timeout, user=user)
            except PoolError as e:
                await proc.end()
                if e.kind == "aborted" or (e.kind == "worker_died" and proc.ending):
                    self._abandon.discard(user)
                    raise PoolError("aborted", "the login was abandoned for another") from None
                raise PoolError(
                    "login_failed" if e.kind != "timeout" else "login_timeout", e.message, e.code
                ) from None
            finally:
                self._logging_in = None
            proc.user, proc.accounts = user, list(reply.get("accounts", []))
            proc.last_used = time.monotonic()
            self.slots[i] = proc
            self.switch_times.append(time.monotonic() - t0)
        self.on_event(user, {"event": "session", "state": "logged_in", "slot": i})
        if self._real and (self._feed is None or not self._feed.alive or self._feed.ending):
            await self._register_all(proc)
        return proc

    def _check_abandoned(self, user: str) -> None:
        if user in self._abandon:
            self._abandon.discard(user)
            self.aborted += 1
            raise PoolError("aborted", "the login was abandoned for another")

    def abort(self, user: str) -> bool:
        """Abandon a login of ``user`` that is waiting or in progress (its process ends; the
        slot stays free), so a more urgent user's login need not wait for it. True if one
        was pending."""
        current = self._logging_in
        if current is not None and current[0] == user:
            current[1].ending = True
            current[1].kill()
            self.aborted += 1
            return True
        if user in self._logins:
            self._abandon.add(user)  # not started yet: it gives up when its turn comes
            return True
        return False

    def _victim(self, keep_active: bool) -> int:
        free = [i for i, p in enumerate(self.slots) if p is None or not p.alive]
        if free:
            return free[0]
        order = sorted(range(self.size), key=lambda i: self.slots[i].last_used)  # type: ignore[union-attr]
        if keep_active:
            if self.size < 2:
                raise PoolError("cannot_prepare", "one login per PC: nothing can be prepared")
            return order[0]
        return order[0]

    # --- commands

    async def command(self, user: str, op: str, within: float, **args: Any) -> dict[str, Any]:
        proc = await self.session(user)
        return await proc.call(op, within, **args)

    async def fault(self, user: str, name: str) -> None:
        proc = self.holder(user)
        if proc is None:
            raise PoolError("not_logged_in", "no worker holds this user")
        if name == "die":
            proc.kill()  # a crash, as far as the pool can tell
            return
        await proc.call("fault", 5.0, name=name)

    # --- real time

    async def register(self, codes: list[str]) -> None:
        added = [x for x in codes if x not in self._real]
        if not added:
            return
        self._real.extend(added)
        proc = self._feed if self._feed is not None and self._feed.alive else self._any_worker()
        if proc is not None:
            await self._register_all(proc)

    def _any_worker(self) -> WorkerProc | None:
        live = [p for p in self.slots if p is not None and p.alive and not p.ending and p.user]
        return max(live, key=lambda p: p.last_used) if live else None

    async def _register_all(self, proc: WorkerProc) -> None:
        self._feed = proc
        for n, start in enumerate(range(0, len(self._real), MAX_CODES_PER_SCREEN)):
            chunk = self._real[start : start + MAX_CODES_PER_SCREEN]
            with contextlib.suppress(PoolError):
                await proc.call("real_reg", 10.0, screen=f"{5000 + n}", codes=chunk, opt="0")

    # --- worker callbacks

    def _worker_event(self, proc: WorkerProc, msg: dict[str, Any]) -> None:
        if msg.get("event") == "real":
            if proc is self._feed:
                self.on_event(None, msg)
            return
        self.on_event(proc.user, msg)

    def _worker_exit(self, proc: WorkerProc) -> None:
        if proc in self.slots:
            i = self.slots.index(proc)
            self.slots[i] = None
            if not proc.ending and proc.user and not self._closing:
                # Crashed or disconnected on its own: log the user in again (reconnect).
                log.warning("worker %s (slot %s) ended on its own; logging in again", proc.name, i)
                self.relogins += 1
                self.on_event(proc.user, {"event": "session", "state": "lost", "slot": i})
                task = asyncio.get_running_loop().create_task(self._relogin(proc.user))
                self._bg.add(task)
                task.add_done_callback(self._bg.discard)
        if proc is self._feed:
            self._feed = None
            other = self._any_worker()
            if other is not None and self._real and not self._closing:
                task = asyncio.get_running_loop().create_task(self._register_all(other))
                self._bg.add(task)
                task.add_done_callback(self._bg.discard)

    async def _relogin(self, user: str) -> None:
        with contextlib.suppress(PoolError):
            await self.switch(user)

    # --- views

    def status(self) -> dict[str, Any]:
        times = sorted(self.switch_times)
        return {
            "size": self.size,
            "slots": [None if p is None else {"user": p.user, "pid": p.pid} for p in self.slots],
            "switches": len(times),
            "switch_seconds_p50": times[len(times) // 2] if times else None,
            "switch_seconds_max": times[-1] if times else None,
            "relogins": self.relogins,
            "aborted_logins": self.aborted,
            "real_codes": len(self._real),
        }
