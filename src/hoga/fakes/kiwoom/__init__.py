"""A Kiwoom-compatible fake broker (REST + WebSocket on one port); see ``server.py``.

``hoga fake-broker kiwoom`` runs it (``serve``); tests start ``KiwoomFake`` in-process.
"""

from __future__ import annotations

import asyncio
import contextlib

from hoga.fakes import FakeOptions
from hoga.fakes.kiwoom.server import KeyStats, KiwoomFake, KiwoomFaults, load_accounts_file, run

__all__ = ["KeyStats", "KiwoomFake", "KiwoomFaults", "load_accounts_file", "serve"]


def serve(options: FakeOptions) -> None:
    """Serve the fake until interrupted (Ctrl+C)."""
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(run(options))
