"""The short version of ``make fuzz`` (issue 12): schemathesis against a live ``hoga serve``
with a signed-in user, every operation, ~300 requests (seeded); no server error, no response
that breaks its declared schema (every JSON endpoint declares one), no status or content type
the operation does not declare, and no traceback in the server's log."""

from __future__ import annotations

import pytest
from benchmarks.fuzz import run


@pytest.mark.timeout(900)
def test_short_fuzz_finds_no_server_error_or_schema_violation() -> None:
    result, log = run(300)
    failures = "\n".join(f"{k}: {v}" for k, v in sorted(result.failures.items()))
    assert result.ok, f"{result.summary()}\n{failures}"
    assert result.requests >= 300 and result.operations >= 40, result.summary()
    assert "Traceback" not in log and "unhandled" not in log, log
