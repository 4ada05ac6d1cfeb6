"""Installing test strategies as if they were plugins of the ``hoga.strategies`` group."""

from __future__ import annotations

from importlib import metadata
from typing import Any

import pytest


def plug_in(monkeypatch: pytest.MonkeyPatch, *plugins: tuple[str, str]) -> None:
    """Make ``(name, "module:Class")`` pairs the installed ``hoga.strategies`` entry points for
    the rest of the test; every other entry point group stays the real one."""
    installed = metadata.EntryPoints(
        metadata.EntryPoint(name=name, value=value, group="hoga.strategies")
        for name, value in plugins
    )
    real = metadata.entry_points

    def fake(**kw: Any) -> Any:
        return installed if kw.get("group") == "hoga.strategies" else real(**kw)

    monkeypatch.setattr(metadata, "entry_points", fake)
