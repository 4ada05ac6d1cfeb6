"""What the chaos run kills besides ``hoga serve``: the broker fakes, and PostgreSQL sessions."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import asyncpg
import httpx
from tests.pg_support import PG_URL, raw_dsn

from benchmarks.server import LoggedProcess


class FakeProcess(LoggedProcess):
    """``hoga fake-broker kis|kiwoom`` as a process with a journal: kill -9 and start it again on
    the same port and journal (its books survive; its tokens and approval keys do not)."""

    def __init__(
        self,
        broker: str,
        port: int,
        workdir: Path,
        accounts: list[dict[str, Any]],
        *,
        seed: int,
        faults: list[str],
        latency: float = 0.0,
        rate: float | None = None,
    ) -> None:
        super().__init__(
            f"the {broker} fake", f"http://127.0.0.1:{port}", workdir / f"{broker}-fake.log"
        )
        self.broker = broker
        self.port = port
        self.journal = workdir / f"{broker}-journal.jsonl"
        self.accounts_file = workdir / f"{broker}-accounts.json"
        self.accounts_file.write_text(json.dumps({"accounts": accounts}), encoding="utf-8")
        self.seed = seed
        self.faults = faults
        self.latency = latency
        self.rate = rate
        self.env = {**os.environ, "PYTHONUNBUFFERED": "1"}

    def command(self) -> list[str]:
        args = [
            sys.executable, "-m", "hoga", "fake-broker", self.broker, "--always-open",
            "--port", str(self.port), "--accounts-file", str(self.accounts_file),
            "--journal", str(self.journal), "--seed", str(self.seed + self.starts),
            "--latency", str(self.latency),
        ]  # fmt: skip
        if self.rate is not None:
            args += ["--rate", str(self.rate)]
        for f in self.faults:
            args += ["--fault", f]
        return args

    async def wait_ready(self, within: float = 180.0) -> None:
        """Until the fake answers (it builds the KRX calendar before it listens)."""
        await self.wait_answering("/__fake__/faults", within)

    async def get(self, what: str) -> Any:
        """One of the fake's own records: ``orders``, ``accounts`` or ``faults``."""
        async with httpx.AsyncClient(timeout=10.0) as http:
            for attempt in range(3):
                try:
                    r = await http.get(f"{self.url}/__fake__/{what}")
                    r.raise_for_status()
                    return r.json()
                except httpx.HTTPError as e:
                    alive = self.proc is not None and self.proc.poll() is None
                    print(
                        f"  the {self.broker} fake did not answer /__fake__/{what} "
                        f"({type(e).__name__}, attempt {attempt + 1}, process alive: {alive})",
                        flush=True,
                    )
                    if attempt == 2:
                        raise
        raise AssertionError("unreachable")


async def terminate_backends(name: str, url: str = PG_URL) -> int:
    """``pg_terminate_backend`` every session of database ``name`` but our own: what a
    PostgreSQL restart or failover does to the server's pool. Returns how many."""
    admin = await asyncpg.connect(raw_dsn(url))
    try:
        rows = await admin.fetch(
            "select pg_terminate_backend(pid) as gone from pg_stat_activity "
            "where datname = $1 and pid <> pg_backend_pid()",
            name,
        )
    finally:
        await admin.close()
    return sum(1 for r in rows if r["gone"])
