"""Run every benchmark in turn and print its figures: ``python -m benchmarks``."""

from __future__ import annotations

import importlib
import sys

BENCHMARKS = [
    "bench_scheduler",
    "bench_rest",
    "bench_latency",
    "bench_hub",
    "bench_fanout",
    "bench_orderbook",
    "bench_backtest",
    "bench_csv_load",
    "bench_kis",
    "bench_kiwoom",
    "bench_dashboard",
    "bench_cluster_feed",
    "bench_cluster_orders",
]


def main() -> int:
    for name in BENCHMARKS:
        print(f"\n=== {name} ===", flush=True)
        mod = importlib.import_module(f"benchmarks.{name}")
        rc = mod.main([])
        if rc:
            return int(rc)
    return 0


if __name__ == "__main__":
    sys.exit(main())
