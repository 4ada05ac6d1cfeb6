"""``make fuzz``: schemathesis against a live ``hoga serve`` and its own OpenAPI document.

Starts ``hoga serve`` on a fresh data directory (SQLite), signs in a user (premium tier, API
budget lifted so the fuzzer measures the API, not the rate limiter) and sends generated
requests to every operation of ``/api/openapi.json`` - valid ones and, mostly, the edge cases
schemathesis builds from the schema (huge integers, odd strings, missing fields). Checks per
response: no server error (5xx); the status code is one the operation declares
(``status_code_conformance``); the content type and the body conform to what the operation
declares for that status (``content_type_conformance``, ``response_schema_conformance``: every
JSON endpoint declares a response model, issue 13). Prints the counts; exit status 1 on any
failure.

Operations that would end the fuzzer's own session are left out: ``POST /api/auth/logout``
and ``DELETE /api/me/sessions/{session_id}``. Everything else runs, admin operations included
(they answer 403 to the user; a second pass signs in as the admin for ``/api/admin``).

``python -m benchmarks.fuzz --requests 5000`` (make fuzz); the test suite runs a short pass.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from benchmarks.server import ADMIN_PASSWORD, HogaProcess, hoga_env

SKIP = {("POST", "/api/auth/logout"), ("DELETE", "/api/me/sessions/{session_id}")}
USER_PASSWORD = "fuzz-horse-battery-9"


@dataclass
class Result:
    """What a fuzz run saw: requests sent, per operation, and every failure (deduplicated)."""

    requests: int = 0
    operations: int = 0
    by_status: Counter[int] = field(default_factory=Counter)
    server_errors: int = 0
    schema_violations: int = 0
    #: Answers with a status (or content type) the operation does not declare.
    undeclared: int = 0
    failures: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return self.server_errors == 0 and self.schema_violations == 0 and self.undeclared == 0

    def summary(self) -> str:
        statuses = ", ".join(f"{k}: {v}" for k, v in sorted(self.by_status.items()))
        return (
            f"fuzz: {self.requests} requests over {self.operations} operations in "
            f"{self.seconds:.0f} s; {self.server_errors} server errors, "
            f"{self.schema_violations} schema violations, {self.undeclared} undeclared "
            f"statuses or content types\n  statuses: {statuses}"
        )


def _login(url: str, username: str, password: str) -> dict[str, str]:
    r = httpx.post(f"{url}/api/auth/login", json={"username": username, "password": password})
    r.raise_for_status()
    return {"Authorization": f"Bearer {r.json()['access_token']}"}


def _prepare(url: str) -> tuple[dict[str, str], dict[str, str]]:
    admin = _login(url, "admin", ADMIN_PASSWORD)
    r = httpx.post(
        f"{url}/api/admin/users",
        json={"username": "fuzzer", "password": USER_PASSWORD, "tier": "premium"},
        headers=admin,
    )
    r.raise_for_status()
    user_id = r.json()["id"]
    for who in (user_id, _me(url, admin)):
        r = httpx.patch(
            f"{url}/api/admin/users/{who}",
            json={"api_calls_per_minute": 100_000},
            headers=admin,
        )
        r.raise_for_status()
    return _login(url, "fuzzer", USER_PASSWORD), admin


def _me(url: str, headers: dict[str, str]) -> int:
    r = httpx.get(f"{url}/api/me", headers=headers)
    r.raise_for_status()
    return int(r.json()["id"])


def fuzz(url: str, total: int, *, progress: Callable[[str], None] | None = None) -> Result:
    """Fuzz every operation of the server at ``url`` until at least ``total`` requests went
    out: rounds over all operations, each with a new seed, each operation getting its share
    of what is still missing (operations without parameters have one case and give up early)."""
    import schemathesis

    user, admin = _prepare(url)
    schema = schemathesis.openapi.from_url(f"{url}/api/openapi.json")
    operations = []
    for op_result in schema.get_all_operations():
        operation = op_result.ok()
        method, path = operation.method.upper(), operation.path
        if (method, path) not in SKIP:
            operations.append((operation, f"{method} {path}", path))
    result = Result(operations=len(operations))
    started = time.monotonic()
    active = list(operations)
    round_no = 0
    while result.requests < total and active and round_no < 20:
        share = max(1, -(-(total - result.requests) // len(active)))
        productive = []
        for operation, name, path in active:
            before = result.requests
            headers = admin if path.startswith("/api/admin") else user
            _fuzz_operation(operation, name, headers, url, share, result, round_no)
            if result.requests - before >= share:
                productive.append((operation, name, path))
            if progress:
                progress(f"round {round_no} {name}: {result.requests} requests so far")
        active = productive
        round_no += 1
    result.seconds = time.monotonic() - started
    return result


def _fuzz_operation(
    operation: Any,
    name: str,
    headers: dict[str, str],
    url: str,
    n: int,
    result: Result,
    round_no: int,
) -> None:
    from hypothesis import HealthCheck, Phase, given, seed, settings
    from schemathesis.checks import not_a_server_error
    from schemathesis.specs.openapi.checks import (
        content_type_conformance,
        response_schema_conformance,
        status_code_conformance,
    )

    @seed(20261204 + round_no)
    @given(case=operation.as_strategy())
    @settings(
        max_examples=n,
        deadline=None,
        database=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    def run(case: Any) -> None:
        response = case.call(headers=headers, base_url=url, timeout=30)
        result.requests += 1
        result.by_status[response.status_code] += 1
        for check, kind in (
            (not_a_server_error, "server_errors"),
            (response_schema_conformance, "schema_violations"),
            (status_code_conformance, "undeclared"),
            (content_type_conformance, "undeclared"),
        ):
            try:
                case.validate_response(response, checks=[check])
            except (Exception, BaseExceptionGroup) as e:  # a FailureGroup per check
                setattr(result, kind, getattr(result, kind) + 1)
                key = f"{name} [{kind}]"
                if key not in result.failures:
                    result.failures[key] = (
                        f"{response.status_code} {response.text[:300]!r}\n"
                        f"    {str(e).strip().splitlines()[0][:300]}\n"
                        f"    reproduce: {case.as_curl_command()[:600]}"
                    )

    run()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


async def _serve(tmp: Path) -> HogaProcess:
    server = HogaProcess(
        hoga_env(tmp / "var", free_port(), sim_ticks_per_second="50"), tmp / "server.log"
    )
    server.start()
    await server.wait_ready(180)
    return server


def run(total_requests: int, *, verbose: bool = False) -> tuple[Result, str]:
    """Start a server, fuzz it with about ``total_requests`` requests, stop it; the result and
    the server's log tail (for diagnosis)."""
    with tempfile.TemporaryDirectory(prefix="hoga-fuzz-") as tmp:
        server = asyncio.run(_serve(Path(tmp)))
        try:
            result = fuzz(server.url, total_requests, progress=print if verbose else None)
        finally:
            server.stop()
        log = server.tail(80)
    return result, log


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--requests", type=int, default=5000, help="at least this many in total")
    ap.add_argument("--verbose", action="store_true")
    ap.add_argument("--json", type=Path, help="also write the figures here")
    a = ap.parse_args(argv)
    os.environ.setdefault("PYTHONHASHSEED", "0")
    result, log = run(a.requests, verbose=a.verbose)
    print(result.summary())
    for key, text in sorted(result.failures.items()):
        print(f"  FAIL {key}: {text}")
    if "Traceback" in log or "unhandled" in log:
        print("server log tail:\n" + log)
    if a.json:
        a.json.write_text(
            json.dumps(
                {
                    "requests": result.requests,
                    "operations": result.operations,
                    "server_errors": result.server_errors,
                    "schema_violations": result.schema_violations,
                    "undeclared": result.undeclared,
                    "seconds": round(result.seconds),
                    "statuses": dict(result.by_status),
                },
                indent=2,
            )
        )
    return 0 if result.ok and result.requests >= a.requests else 1


if __name__ == "__main__":
    sys.exit(main())
