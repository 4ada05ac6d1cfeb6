"""``python -m benchmarks.chaos``: the chaos suite from the command line (``make chaos``)."""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

from benchmarks.chaos.run import DEFAULT_FAULTS, Config, run


def parse(argv: list[str]) -> Config:
    p = argparse.ArgumentParser(
        prog="python -m benchmarks.chaos",
        description="kill -9 hoga serve mid-burst against paper, the KIS fake and the Kiwoom "
        "fake, on SQLite and PostgreSQL, and check every acknowledged order and the books",
    )
    p.add_argument("--cycles", type=int, default=20, help="cycles in all, split over databases")
    p.add_argument("--databases", default="sqlite,postgres", help="sqlite,postgres")
    p.add_argument("--brokers", default="paper,kis,kiwoom", help="paper,kis,kiwoom")
    p.add_argument("--accounts", type=int, default=2, help="accounts (users) per broker")
    p.add_argument("--orders", type=int, default=10, help="orders per account per cycle")
    p.add_argument("--rate", type=float, default=15.0, help="order requests per second")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument(
        "--fault",
        action="append",
        help=f"fake fault KIND=RATE|every:N (repeatable; default {' '.join(DEFAULT_FAULTS)})",
    )
    p.add_argument("--no-faults", action="store_true", help="run the fakes without faults")
    p.add_argument("--fake-kill", type=float, default=0.4, help="share of cycles killing a fake")
    p.add_argument(
        "--pg-terminate",
        type=float,
        default=0.5,
        help="share of PostgreSQL cycles terminating sessions",
    )
    p.add_argument("--settle", type=float, default=150.0, help="seconds to wait for settling")
    p.add_argument("--workdir", type=Path, help="keep logs, journals and data here")
    p.add_argument(
        "--server-env", action="append", default=[], help="extra HOGA_X=value for hoga serve"
    )
    a = p.parse_args(argv)
    databases = tuple(d for d in a.databases.split(",") if d)
    brokers = tuple(b for b in a.brokers.split(",") if b)
    if not set(databases) <= {"sqlite", "postgres"} or not databases:
        p.error("--databases: sqlite and/or postgres")
    if not set(brokers) <= {"paper", "kis", "kiwoom"} or not brokers:
        p.error("--brokers: paper, kis and/or kiwoom")
    env = {}
    for item in a.server_env:
        key, sep, value = item.partition("=")
        if not sep or not key.startswith("HOGA_"):
            p.error(f"--server-env {item!r}: write HOGA_NAME=value")
        env[key] = value
    faults = () if a.no_faults else tuple(a.fault or DEFAULT_FAULTS)
    return Config(
        cycles=a.cycles,
        databases=databases,
        brokers=brokers,
        per_broker=a.accounts,
        orders=a.orders,
        rate=a.rate,
        seed=a.seed,
        faults=faults,
        fake_kill=a.fake_kill,
        pg_terminate=a.pg_terminate,
        settle=a.settle,
        workdir=a.workdir,
        server_env=env,
    )


def main(argv: list[str] | None = None) -> int:
    cfg = parse(sys.argv[1:] if argv is None else argv)
    totals = asyncio.run(run(cfg))
    print(totals.summary(cfg.cycles), flush=True)
    return 0 if totals.clean and totals.cycles == cfg.cycles else 1


if __name__ == "__main__":
    sys.exit(main())
