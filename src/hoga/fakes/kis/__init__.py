"""A local KIS-compatible server (``hoga fake-broker kis``); see ``server.py``."""

from __future__ import annotations

import asyncio

from hoga.fakes import FakeOptions
from hoga.fakes.kis.server import KisFake, KisFakeAccount, KisFaults, load_accounts_file

__all__ = ["KisFake", "KisFakeAccount", "KisFaults", "load_accounts_file", "serve"]


def serve(options: FakeOptions) -> None:
    """Serve the fake described by ``options`` until interrupted; the market trades itself."""
    fake = KisFake.from_options(options, drive=True)
    asyncio.run(fake.serve_forever())
