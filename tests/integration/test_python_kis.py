"""python-kis (a public KIS client library) runs its ordinary domestic flows against the KIS
fake with nothing changed but the host names. Skipped unless python-kis is importable:
``make check-python-kis`` installs it beside (not into) hoga and runs this."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

# A mark, not a module-level importorskip: tests/conftest.py's summary reads the keywords of
# skipped reports, which a skipped collection report does not have.
pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("pykis") is None,
    reason="python-kis is not installed (make check-python-kis)",
)


def _script() -> ModuleType:
    path = Path(__file__).resolve().parents[2] / "scripts" / "check_python_kis.py"
    spec = importlib.util.spec_from_file_location("check_python_kis", path)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules["check_python_kis"] = mod
    spec.loader.exec_module(mod)
    return mod


def test_python_kis_domestic_flows_against_the_kis_fake() -> None:
    check = _script()
    with check.fake_in_thread() as fake:
        results = check.run_flows(fake)
    assert set(results) >= {
        "token", "balance", "stock search", "quote", "order book", "buyable amount",
        "limit buy", "market buy", "pending orders", "modify", "cancel", "daily orders",
        "realtime price", "realtime order book",
    }  # fmt: skip
    failed = {k: v for k, v in results.items() if v != "ok"}
    assert not failed, failed
