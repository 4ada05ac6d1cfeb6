"""The CLI's admin context: the shared core without brokers, feeds or the API."""

from __future__ import annotations

from hoga.composition import build_core
from hoga.config import Settings
from hoga.domain.clock import Clock, SystemClock


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
