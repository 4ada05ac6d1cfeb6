"""Local servers that speak the brokers' wire protocols (KIS, Kiwoom).

They are stateful sandboxes: accounts and app keys, orders matched against the simulated
market, execution notices pushed over WebSocket, the brokers' documented limits enforced, and
fault knobs. Tests drive the adapters against them over loopback; users can point an account at
one (``base_url``) to rehearse before going live. ``hoga fake-broker kis|kiwoom`` starts one.

Both keep a journal (``--journal PATH``, ``journal.py``) so their books survive a restart, take
the same seeded fault plan for order requests (``--fault KIND=RATE``, ``faults.py``), and show
what reached them at ``GET /__fake__/orders`` and ``GET /__fake__/accounts`` (``admin.py``).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class FakeAccount:
    """One account a fake server knows: its number, the app key/secret that own it, its cash."""

    account_no: str
    app_key: str
    app_secret: str
    cash: int = 100_000_000
    hts_id: str = "hogauser"


@dataclass(frozen=True)
class FakeOptions:
    """What ``hoga fake-broker`` was asked for."""

    broker: str
    host: str = "127.0.0.1"
    port: int = 0
    env: str = "mock"
    accounts: list[FakeAccount] = field(default_factory=list)
    accounts_file: Path | None = None
    seed: int = 1
    ticks_per_second: float = 50.0
    latency: float = 0.0
    error_rate: float = 0.0
    journal: Path | None = None
    faults: tuple[str, ...] = ()
    rate: float | None = None
    #: Trade around the clock (demos, tests) instead of following the KRX calendar; the
    #: ``hoga fake-broker`` command follows the calendar unless ``--always-open``.
    always_open: bool = True
    #: KIS: seconds between access-token issues per key (None: KIS's one a minute).
    token_interval: float | None = None


def run_fake(options: FakeOptions) -> None:
    """Serve the fake for ``options.broker`` until interrupted."""
    module = importlib.import_module(f"hoga.fakes.{options.broker}")
    module.serve(options)
