"""Write-ahead-log checkpoints for SQLite, off the event loop.

hoga runs SQLite statements inline on the event loop (``store/inline_sqlite.py``). SQLite's own
automatic checkpoint runs inside whichever commit crosses the WAL size threshold, so about one
commit in a hundred on the order path paid several milliseconds for copying pages - the whole
99th percentile of submit latency. The checkpointer copies them from a thread of its own (the
``sqlite3`` module releases the GIL while SQLite works), in PASSIVE mode, which never waits for
and never blocks readers or writers. The connection's automatic checkpoint stays on, at a larger
threshold, as a backstop should this thread fall behind.

Lifetime: a SQLite connection must never be used by two threads at once, and closing one while
another thread is inside a statement crashes the process. So one dedicated thread owns the
checkpoint connection from open to close - it opens it, runs every checkpoint on it and closes
it; no other thread ever holds a reference to it. ``stop()`` asks the thread to finish and
waits until it has (a checkpoint in progress completes first).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import sqlite3
import threading
from pathlib import Path

log = logging.getLogger(__name__)

#: Pages the WAL may reach before a commit checkpoints inline (the backstop; ~80 MB at 4 KiB).
BACKSTOP_PAGES = 20_000

# A request to the thread: a future to resolve after one checkpoint, or _STOP.
_STOP = object()


class WalCheckpointer:
    """Runs ``PRAGMA wal_checkpoint(PASSIVE)`` on ``path`` every ``interval`` seconds from a
    thread of its own that alone opens, uses and closes its connection.

    ``start``/``stop`` are idempotent and may alternate any number of times; ``stop`` returns
    once the thread has ended (after any checkpoint in progress). A failed checkpoint is logged
    and retried at the next interval, never raised - except by ``checkpoint()``, which runs one
    now and reports its outcome to the caller.
    """

    def __init__(self, path: Path, interval: float = 1.0) -> None:
        self.path = path
        self.interval = interval
        self.runs = 0
        self.failures = 0
        self._thread: threading.Thread | None = None
        self._requests: queue.SimpleQueue[object] | None = None
        self._done: asyncio.Future[None] | None = None
        #: The id of the thread that owns the connection while it runs (tests check it).
        self.thread_ident: int | None = None

    def start(self) -> None:
        if self._thread is not None:
            return
        loop = asyncio.get_running_loop()
        requests: queue.SimpleQueue[object] = queue.SimpleQueue()
        done: asyncio.Future[None] = loop.create_future()
        thread = threading.Thread(
            target=self._run, args=(loop, requests, done), name="sqlite-checkpoint", daemon=True
        )
        self._thread, self._requests, self._done = thread, requests, done
        thread.start()

    async def stop(self) -> None:
        thread, requests, done = self._thread, self._requests, self._done
        self._thread = self._requests = self._done = None
        if thread is None or requests is None or done is None:
            return
        requests.put(_STOP)
        # Wait without blocking the loop: the thread resolves ``done`` as its very last act.
        await asyncio.shield(done)
        # Resolving ``done`` was the thread's last act: this join returns at once.
        thread.join(timeout=5.0)

    async def checkpoint(self) -> None:
        """One PASSIVE checkpoint now, on the checkpoint thread; raises if it failed."""
        if self._requests is None:
            raise RuntimeError("the checkpointer is not running")
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._requests.put(fut)
        await fut

    # --- the thread

    def _run(
        self,
        loop: asyncio.AbstractEventLoop,
        requests: queue.SimpleQueue[object],
        done: asyncio.Future[None],
    ) -> None:
        self.thread_ident = threading.get_ident()
        conn: sqlite3.Connection | None = None
        try:
            while True:
                try:
                    item = requests.get(timeout=max(self.interval, 0.0005))
                except queue.Empty:
                    item = None
                if item is _STOP:
                    return
                try:
                    if conn is None:
                        # timeout=0: never wait for a lock; PASSIVE takes what it can get.
                        conn = sqlite3.connect(self.path, timeout=0)
                    conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
                    self.runs += 1
                    error: BaseException | None = None
                except sqlite3.Error as e:
                    self.failures += 1
                    error = e
                    if item is None:
                        log.warning("SQLite checkpoint failed (will retry): %s", e)
                if isinstance(item, asyncio.Future):
                    _resolve(loop, item, error)
        finally:
            if conn is not None:
                conn.close()
            self.thread_ident = None
            # Anyone still waiting for a checkpoint learns it will not run.
            while True:
                try:
                    left = requests.get_nowait()
                except queue.Empty:
                    break
                if isinstance(left, asyncio.Future):
                    _resolve(loop, left, RuntimeError("the checkpointer stopped"))
            _resolve(loop, done, None)


def _resolve(
    loop: asyncio.AbstractEventLoop, fut: asyncio.Future[None], error: BaseException | None
) -> None:
    def settle() -> None:
        if fut.done():
            return
        if error is None:
            fut.set_result(None)
        else:
            fut.set_exception(error)

    # The loop may already be closed when a process exits with the thread still running.
    with contextlib.suppress(RuntimeError):
        loop.call_soon_threadsafe(settle)
