"""Backtest throughput: hoga's engine against backtrader, same data, same rules, one run.

``sma_cross`` (fast 5, slow 20, qty 10) over N one-minute bars (default 1,000,000; a seeded
random walk on the KRX tick grid). Each engine runs in its own process so its peak memory is
its own. Both are checked against an independent statement of the rules (integer SMA sums,
market orders at the next bar's open): hoga must match it exactly, fill for fill.

Figures: bars/s of the run (hoga: engine + report; backtrader: ``cerebro.run`` with preloading,
its fast path), load time, peak RSS, fills, and whether the fills match the rules.

backtrader is not a hoga dependency. Install it into the venv for this benchmark only::

    .venv/bin/pip install backtrader

Without it the script runs hoga alone.

    .venv/bin/python -m benchmarks.bench_backtest [--bars 1000000] [--seed 7] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

FAST, SLOW, QTY = 5, 20, 10
# Ample cash: the comparison is about signals and fills, so no buy may be refused for want of
# cash in either engine (their cost models differ: backtrader has no sell tax).
CASH = 1_000_000_000_000
T0 = 1_577_923_200  # 2020-01-02 09:00 KST


def make_csv(path: Path, n: int, seed: int) -> None:
    """A random walk on a 50-won grid between 20,000 and 80,000, one bar a minute."""
    rng = random.Random(seed)
    price = 50_000
    with path.open("w") as f:
        f.write("date,open,high,low,close,volume\n")
        for i in range(n):
            o = price
            for _ in range(3):
                price += rng.choice((-50, 0, 50))
            price = min(80_000, max(20_000, price))
            hi = max(o, price) + 50 * rng.randint(0, 2)
            lo = min(o, price) - 50 * rng.randint(0, 2)
            ts = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(T0 + 9 * 3600 + 60 * i))
            f.write(f"{ts},{o},{hi},{lo},{price},{rng.randint(1, 500)}\n")


def reference_fills(opens: list[int], closes: list[int]) -> list[tuple[int, str, int, int]]:
    """The stated rules, independently: (bar index, side, qty, price) of every fill."""
    out = []
    fs = ss = 0
    prev = None
    holding = False
    for i, c in enumerate(closes):
        fs += c
        ss += c
        if i >= FAST:
            fs -= closes[i - FAST]
        if i >= SLOW:
            ss -= closes[i - SLOW]
        if i + 1 < SLOW:
            continue
        diff = fs * SLOW - ss * FAST
        now = (diff > 0) - (diff < 0)
        if prev is not None and i + 1 < len(closes):
            if prev <= 0 < now and not holding:
                out.append((i + 1, "buy", QTY, opens[i + 1]))
                holding = True
            elif prev >= 0 > now and holding:
                out.append((i + 1, "sell", QTY, opens[i + 1]))
                holding = False
        prev = now
    return out


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_hoga(data: Path) -> dict[str, Any]:
    from hoga.backtest.data import read_file
    from hoga.backtest.engine import run_backtest
    from hoga.backtest.report import summary
    from hoga.domain import krx
    from hoga.strategies.catalog.sma_cross import SmaCross, SmaCrossParams

    t = time.perf_counter()
    krx.warm_calendar()
    calendar_s = time.perf_counter() - t
    rss_before = _rss_mb()
    t = time.perf_counter()
    series = read_file(data, "005930")
    load_s = time.perf_counter() - t
    t = time.perf_counter()
    result = run_backtest(
        SmaCross, SmaCrossParams(fast=FAST, slow=SLOW, qty=QTY), series, cash=CASH
    )
    figures = summary(result)
    run_s = time.perf_counter() - t
    index = {ts: i for i, ts in enumerate(series.ts)}
    fills = [(index[f.ts], f.side, f.qty, f.price) for f in result.fills]
    ref = reference_fills(series.open, series.close)
    return {
        "engine": "hoga",
        "bars": len(series),
        "load_s": load_s,
        "calendar_s": calendar_s,
        "run_s": run_s,
        "bars_per_s": len(series) / run_s,
        "fills": len(fills),
        "exact": fills == ref,
        "final_equity": figures["final_equity"],
        "peak_rss_mb": _rss_mb(),
        "rss_before_run_mb": rss_before,
    }


def run_backtrader(data: Path) -> dict[str, Any]:
    import backtrader as bt
    import pandas as pd

    t = time.perf_counter()
    df = pd.read_csv(data, parse_dates=["date"], index_col="date")
    load_s = time.perf_counter() - t
    fills: list[tuple[int, str, int, int]] = []

    class SmaCrossBT(bt.Strategy):  # type: ignore[misc]
        def __init__(self) -> None:
            # Integer sums (math.fsum over whole won is exact), compared cross-multiplied:
            # the same rule as hoga's, no floating-point averages.
            self.fsum = bt.ind.SumN(self.data.close, period=FAST)
            self.ssum = bt.ind.SumN(self.data.close, period=SLOW)
            self.prev: int | None = None
            self.pending = False

        def next(self) -> None:
            diff = self.fsum[0] * SLOW - self.ssum[0] * FAST
            now = (diff > 0) - (diff < 0)
            prev, self.prev = self.prev, now
            if prev is None:
                return
            if prev <= 0 < now and not self.position and not self.pending:
                self.buy(size=QTY)
                self.pending = True
            elif prev >= 0 > now and self.position and not self.pending:
                self.close()
                self.pending = True

        def notify_order(self, order: Any) -> None:
            if order.status in (order.Completed, order.Canceled, order.Margin, order.Rejected):
                self.pending = False
            if order.status == order.Completed:
                side = "buy" if order.isbuy() else "sell"
                fills.append(
                    (
                        len(self.data) - 1,
                        side,
                        abs(int(order.executed.size)),
                        int(order.executed.price),
                    )
                )

    rss_before = _rss_mb()
    t = time.perf_counter()
    cerebro = bt.Cerebro(stdstats=False)
    cerebro.adddata(bt.feeds.PandasData(dataname=df))
    cerebro.addstrategy(SmaCrossBT)
    cerebro.broker.setcash(CASH)
    cerebro.broker.setcommission(commission=0.00015)
    cerebro.run()
    run_s = time.perf_counter() - t
    opens = [int(x) for x in df["open"]]
    closes = [int(x) for x in df["close"]]
    return {
        "engine": "backtrader",
        "bars": len(df),
        "load_s": load_s,
        "run_s": run_s,
        "bars_per_s": len(df) / run_s,
        "fills": len(fills),
        "exact": fills == reference_fills(opens, closes),
        "final_equity": round(cerebro.broker.getvalue()),
        "peak_rss_mb": _rss_mb(),
        "rss_before_run_mb": rss_before,
    }


def _child(engine: str, data: Path) -> dict[str, Any] | None:
    proc = subprocess.run(
        [sys.executable, __file__, "--engine", engine, "--data", str(data)],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
    )
    if proc.returncode == 3:
        return None
    if proc.returncode != 0:
        raise SystemExit(f"{engine} run failed:\n{proc.stderr}")
    out: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bars", type=int, default=1_000_000)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--engine", choices=["hoga", "backtrader"], help=argparse.SUPPRESS)
    ap.add_argument("--data", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)

    if args.engine:
        if args.engine == "backtrader":
            try:
                import backtrader  # noqa: F401
            except ImportError:
                return 3
            print(json.dumps(run_backtrader(args.data)))
        else:
            print(json.dumps(run_hoga(args.data)))
        return 0

    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "bars.csv"
        t = time.perf_counter()
        make_csv(data, args.bars, args.seed)
        print(
            f"data: {args.bars:,} one-minute bars ({time.perf_counter() - t:.1f}s to write)",
            flush=True,
        )
        results = [r for r in (_child("hoga", data), _child("backtrader", data)) if r]
    if args.json:
        print(json.dumps(results, indent=2))
    else:
        print(
            f"{'engine':<11} {'bars/s':>10} {'run s':>7} {'load s':>7} {'peak RSS MB':>12} "
            f"{'fills':>7} {'exact':>6}"
        )
        for r in results:
            print(
                f"{r['engine']:<11} {r['bars_per_s']:>10,.0f} {r['run_s']:>7.2f} "
                f"{r['load_s']:>7.2f} {r['peak_rss_mb']:>12.0f} {r['fills']:>7,} "
                f"{'yes' if r['exact'] else 'NO':>6}"
            )
        if len(results) == 2:
            print(f"hoga / backtrader: {results[0]['bars_per_s'] / results[1]['bars_per_s']:.1f}x")
        else:
            print("backtrader is not installed: `.venv/bin/pip install backtrader` to compare")
        print(f"(hoga's KRX calendar build, once per process: {results[0]['calendar_s']:.1f}s)")
    return 0 if all(r["exact"] for r in results if r["engine"] == "hoga") else 1


if __name__ == "__main__":
    sys.exit(main())
