"""The chaos cycles: order bursts, kill -9 at a random moment, restart, settle, check.

One run per database (SQLite, PostgreSQL), each with its own ``hoga serve`` data, its own KIS
and Kiwoom fakes (journals, seeded fault plans) and users trading paper, KIS and Kiwoom
accounts. A cycle sends a burst of orders (and cancels of resting ones) and, at seeded random
moments inside it, may terminate the server's PostgreSQL sessions and kill -9 one fake (started
again on its journal a moment later), and always kills -9 the server. The server is started
again on the same data; the cycle then waits until nothing is in flight and the books stop
moving (bounded), and checks everything acknowledged so far (``books.py``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import socket
import tempfile
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.pg_support import create_database, drop_database

from benchmarks.chaos.books import BrokerBooks, Db, Findings, Snapshot, broker_books, check
from benchmarks.chaos.burst import Planner, Sent, chaos_symbols, send
from benchmarks.chaos.procs import FakeProcess, terminate_backends
from benchmarks.chaos.world import FAKE_CASH, World, fake_accounts
from benchmarks.server import HogaProcess, hoga_env

DEFAULT_FAULTS = ("http500=0.03", "drop=0.03", "truncate=0.02", "hang=0.02")


@dataclass
class Config:
    """What ``make chaos`` runs (``python -m benchmarks.chaos --help`` for the options)."""

    cycles: int = 20
    databases: tuple[str, ...] = ("sqlite", "postgres")
    brokers: tuple[str, ...] = ("paper", "kis", "kiwoom")
    per_broker: int = 2
    orders: int = 10
    rate: float = 15.0
    seed: int = 1
    faults: tuple[str, ...] = DEFAULT_FAULTS
    fake_kill: float = 0.4
    pg_terminate: float = 0.5
    settle: float = 150.0
    workdir: Path | None = None
    server_env: dict[str, str] = field(default_factory=dict)
    quiet: bool = False


@dataclass
class Totals:
    """Everything the run saw, for the summary line and the report."""

    cycles: int = 0
    clean_cycles: int = 0
    acked: int = 0
    sent: int = 0
    lost: dict[str, str] = field(default_factory=dict)
    duplicated: dict[str, str] = field(default_factory=dict)
    unmatched: dict[str, str] = field(default_factory=dict)
    stuck: dict[str, str] = field(default_factory=dict)
    books: dict[str, str] = field(default_factory=dict)
    reports: list[dict[str, Any]] = field(default_factory=list)

    @property
    def clean(self) -> bool:
        return not (self.lost or self.duplicated or self.unmatched or self.stuck or self.books)

    def summary(self, planned: int) -> str:
        books = "books equal" if not self.books else f"books differ ({len(self.books)} findings)"
        extra = f", {len(self.unmatched)} unmatched at the broker" if self.unmatched else ""
        return (
            f"{self.clean_cycles}/{planned} cycles clean ({self.cycles} run), {self.acked} orders "
            f"acknowledged, {len(self.lost)} lost, {len(self.duplicated)} duplicated, "
            f"{len(self.stuck)} stuck{extra}, {books}"
        )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class DatabaseRun:
    """The cycles on one database; see the module docstring."""

    def __init__(
        self, cfg: Config, db_kind: str, workdir: Path, rng: random.Random, totals: Totals
    ) -> None:
        self.cfg = cfg
        self.db_kind = db_kind
        self.workdir = workdir
        self.rng = rng
        self.totals = totals
        self.acked: list[Sent] = []
        self.fakes: dict[str, FakeProcess] = {}
        self.pg_name: str | None = None
        self.server: HogaProcess | None = None
        self.world: World | None = None
        self.reported: dict[str, str] = {}

    def say(self, text: str) -> None:
        if not self.cfg.quiet:
            print(text, flush=True)

    async def setup(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        for broker in self.cfg.brokers:
            if broker == "paper":
                continue
            self.fakes[broker] = FakeProcess(
                broker,
                free_port(),
                self.workdir,
                fake_accounts(broker, self.cfg.per_broker),
                seed=self.cfg.seed,
                faults=list(self.cfg.faults),
                latency=0.01,
                rate=20.0,
            )
        for fake in self.fakes.values():
            fake.start()
        for fake in self.fakes.values():
            await fake.wait_ready()
        data = self.workdir / "var"
        if self.db_kind == "postgres":
            self.pg_name, url = await create_database("hoga_chaos_")
        else:
            url = f"sqlite+aiosqlite:///{data / 'hoga.db'}"
        self.db = Db(url)
        env = hoga_env(
            data,
            free_port(),
            database_url=url,
            log_level="info",
            reconcile_interval="2",
            submit_timeout="5",
            kis_request_timeout="3",
            kis_mock_rate="15",
            kiwoom_rate="5",
            global_order_rate="40",
            duplicate_window="0",
            paper_initial_cash=str(FAKE_CASH),
            max_order_value=str(10**11),
        )
        env.update(self.cfg.server_env)
        self.server = HogaProcess(env, self.workdir / "server.log")
        self.server.start()
        await self.server.wait_ready()
        self.world = World(self.server, self.fakes)
        await self.world.build(self.cfg.per_broker, list(self.cfg.brokers))
        self.paper_journal = data / "paper" / "journal.jsonl"
        self.planner = Planner(self.rng, chaos_symbols(), run_tag=f"{self.db_kind}-{self.cfg.seed}")

    async def teardown(self) -> None:
        if self.world is not None:
            await self.world.close()
        if self.server is not None:
            self.server.stop()
        for fake in self.fakes.values():
            fake.stop()
        if self.pg_name is not None:
            with contextlib.suppress(Exception):
                await drop_database(self.pg_name)

    # ------------------------------------------------------------------ one cycle

    async def cycle(self, number: int, planned: int) -> None:
        assert self.world is not None and self.server is not None
        loop = asyncio.get_running_loop()
        began = loop.time()
        snap = await Snapshot.read(self.db)
        specs = self.planner.plan(self.world.accounts, self.cfg.orders, snap.positions)
        by_id = {a.account_id: a for a in self.world.accounts}
        resting = [
            (by_id[o["account_id"]], int(o["id"]))
            for o in snap.orders.values()
            if o["status"] == "ACCEPTED" and o["type"] == "limit" and o["account_id"] in by_id
        ]
        cancels = self.rng.sample(resting, min(3, len(resting)))
        # The faults strike after a seeded number of *answered* orders, not after a time: a
        # loaded machine answers slowly, and a kill before the first answer tests nothing.
        n = len(specs)
        kill_after = self.rng.randint(max(1, (3 * n) // 10), max(1, n))
        events: list[tuple[int, str]] = [(kill_after, "server")]
        victim: FakeProcess | None = None
        if self.fakes and self.rng.random() < self.cfg.fake_kill:
            victim = self.fakes[self.rng.choice(sorted(self.fakes))]
            events.append((self.rng.randint(0, kill_after - 1), "fake"))
        if self.pg_name and self.rng.random() < self.cfg.pg_terminate:
            events.append((self.rng.randint(0, kill_after - 1), "pg"))
        events.sort()
        notes: list[str] = []
        restarts: list[asyncio.Task[None]] = []
        answered = 0
        progress = asyncio.Event()
        done = asyncio.Event()

        def on_answer() -> None:
            nonlocal answered
            answered += 1
            progress.set()

        async def burst_then_done() -> Any:
            try:
                return await send(self.world, specs, self.cfg.rate, cancels, on_answer)
            finally:
                done.set()

        async def perturb() -> None:
            assert self.server is not None
            for after, what in events:
                while answered < after and not done.is_set():
                    progress.clear()
                    waits = {loop.create_task(progress.wait()), loop.create_task(done.wait())}
                    _, pending = await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
                    for task in pending:
                        task.cancel()
                at = f"after {answered} answers ({loop.time() - burst_began:.1f}s)"
                if what == "server":
                    self.server.kill()
                    notes.append(f"kill -9 server {at}")
                elif what == "fake" and victim is not None:
                    victim.kill()
                    down = self.rng.uniform(0.5, 3.0)
                    notes.append(f"kill -9 {victim.broker} fake {at} for {down:.1f}s")
                    restarts.append(loop.create_task(self._restart_fake(victim, down)))
                elif what == "pg" and self.pg_name:
                    gone = await terminate_backends(self.pg_name)
                    notes.append(f"pg_terminate_backend x{gone} {at}")

        await self._warm()
        burst_began = loop.time()
        burst, _ = await asyncio.gather(burst_then_done(), perturb())
        for task in restarts:
            await task
        self.server.start()
        await self.server.wait_ready()
        acked = burst.acked
        self.acked += acked
        self.totals.acked += len(acked)
        self.totals.sent += len(burst.sent)
        findings, snap, waited = await self.settle()
        self.totals.cycles += 1
        if findings.clean:
            self.totals.clean_cycles += 1
        refused = Counter(s.code or str(s.status) for s in burst.sent if s.status not in (0, 202))
        unanswered = sum(1 for s in burst.sent if s.status == 0)
        fired = await self._faults_fired()
        self.say(
            f"[{self.db_kind} {number}/{planned}] {'; '.join(notes)} | sent {len(burst.sent)}, "
            f"acked {len(acked)}, refused {sum(refused.values())}"
            + (f" {dict(refused)}" if refused else "")
            + f", unanswered {unanswered}, cancels "
            f"{burst.cancels} | lost {len(findings.lost)}, duplicated {len(findings.duplicated)}, "
            f"unmatched {len(findings.unmatched)}, stuck {len(findings.stuck)}, books "
            f"{'equal' if not findings.books else 'DIFFER'} | faults {fired} | settled in "
            f"{waited:.1f}s, cycle {loop.time() - began:.1f}s"
        )
        self._record(number, notes, burst.sent, findings, fired)

    async def _warm(self) -> None:
        """One cheap call per user first: the burst starts on a server that answers."""
        assert self.world is not None
        for account in self.world.accounts:
            await self.world.call(account, "GET", "/api/queue-status")

    async def _restart_fake(self, fake: FakeProcess, down: float) -> None:
        await asyncio.sleep(down)
        fake.start()
        await fake.wait_ready()

    async def settle(self) -> tuple[Findings, Snapshot, float]:
        """Wait until nothing is in flight and two readings a second apart agree (or the settle
        time is up), then check."""
        assert self.world is not None
        loop = asyncio.get_running_loop()
        start = loop.time()
        deadline = start + self.cfg.settle
        last: tuple[Any, ...] | None = None
        while True:
            snap = await Snapshot.read(self.db)
            brokers = await broker_books(self.world, self.paper_journal)
            state = _state(snap, brokers)
            quiet = not snap.stuck() and state == last
            if quiet or loop.time() > deadline:
                findings = check(self.world, self.acked, snap, brokers)
                # Books that differ may still be converging: reconciliation runs every few
                # seconds, far apart from two readings a second apart. Wait for it (bounded).
                if not findings.books or loop.time() > deadline:
                    return findings, snap, loop.time() - start
            last = state
            last = state
            await asyncio.sleep(1.0)

    async def _faults_fired(self) -> dict[str, dict[str, int]]:
        out: dict[str, dict[str, int]] = {}
        for broker, fake in self.fakes.items():
            with contextlib.suppress(Exception):
                out[broker] = (await fake.get("faults"))["plan"]["fired"]
        return out

    def _record(
        self,
        number: int,
        notes: list[str],
        sent: list[Sent],
        findings: Findings,
        fired: dict[str, dict[str, int]],
    ) -> None:
        t = self.totals
        for mine, found in (
            (t.lost, findings.lost),
            (t.duplicated, findings.duplicated),
            (t.unmatched, findings.unmatched),
            (t.stuck, findings.stuck),
            (t.books, findings.books),
        ):
            mine.update({f"{self.db_kind}:{key}": line for key, line in found})
        for key, line in findings.all():
            if self.reported.get(key) == line:
                continue  # said in an earlier cycle, unchanged
            self.say(f"    {line}")
            for log in self._log_lines(line):
                self.say(f"        log: {log}")
            self.reported[key] = line
        t.reports.append(
            {
                "database": self.db_kind,
                "cycle": number,
                "events": notes,
                "sent": len(sent),
                "acked": sum(1 for s in sent if s.status == 202),
                "findings": [line for _, line in findings.all()],
                "faults_fired": fired,
            }
        )

    def _log_lines(self, finding: str, limit: int = 4) -> list[str]:
        """Server log lines that name an order of a finding (by id or client order id)."""
        assert self.server is not None
        needles = [w.strip("(),:") for w in finding.split() if w.startswith(f"{self.db_kind}-")]
        if not needles:
            return []
        try:
            text = self.server.log_path.read_text(errors="replace").splitlines()
        except OSError:
            return []
        return [line[:300] for line in text if any(n in line for n in needles)][:limit]


def _state(snap: Snapshot, brokers: dict[int, BrokerBooks]) -> tuple[Any, ...]:
    orders = tuple(sorted((i, o["status"], o["filled_qty"]) for i, o in snap.orders.items()))
    ours = tuple(sorted((a, c) for a, c in snap.cash.items()))
    theirs = tuple(
        sorted((a, b.cash, tuple(sorted(b.positions.items()))) for a, b in brokers.items())
    )
    return orders, ours, theirs


async def run(cfg: Config) -> Totals:
    """Run the cycles over the databases; print a line per cycle and return the totals."""
    rng = random.Random(cfg.seed)
    totals = Totals()
    share, extra = divmod(cfg.cycles, len(cfg.databases))
    root = cfg.workdir or Path(tempfile.mkdtemp(prefix="hoga-chaos-"))
    print(
        f"chaos: {cfg.cycles} cycles over {', '.join(cfg.databases)}; brokers "
        f"{', '.join(cfg.brokers)} x{cfg.per_broker}; {cfg.orders} orders per account per "
        f"cycle at {cfg.rate:g}/s; fake faults {', '.join(cfg.faults) or 'none'}; seed "
        f"{cfg.seed}; work dir {root}",
        flush=True,
    )
    for n, db_kind in enumerate(cfg.databases):
        cycles = share + (1 if n < extra else 0)
        if cycles == 0:
            continue
        dbrun = DatabaseRun(cfg, db_kind, root / db_kind, rng, totals)
        try:
            await dbrun.setup()
            for c in range(1, cycles + 1):
                await dbrun.cycle(c, cycles)
        finally:
            await dbrun.teardown()
    (root / "report.json").write_text(
        json.dumps(
            {
                "config": {k: str(v) for k, v in cfg.__dict__.items()},
                "summary": totals.summary(cfg.cycles),
                "cycles": totals.reports,
            },
            ensure_ascii=False,
            indent=1,
        ),
        encoding="utf-8",
    )
    return totals
