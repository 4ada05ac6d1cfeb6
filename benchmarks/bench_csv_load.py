"""Loading backtest bars from CSV with and without pyarrow (``hoga[parquet]``).

    python -m benchmarks.bench_csv_load [--rows 1000000]

The same file is read and checked by ``hoga.backtest.data.read_csv_bytes`` twice: through Arrow
(vectorised) and through the plain-Python path a base install uses. Prints rows/s for each.
"""

from __future__ import annotations

import argparse
import time

from hoga.backtest import data


def make_csv(rows: int) -> bytes:
    start = 1_700_000_000 - 1_700_000_000 % 60
    lines = ["date,open,high,low,close,volume"]
    price = 70_000
    for i in range(rows):
        price = max(1_000, price + (i * 7919 % 21 - 10) * 10)
        t = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(start + 60 * i))
        lines.append(f"{t},{price},{price + 100},{price - 100},{price + 50},{i % 1000}")
    return ("\n".join(lines) + "\n").encode()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    args = parser.parse_args(argv)
    raw = make_csv(args.rows)
    print(f"{args.rows:,} rows, {len(raw) / 1e6:.0f} MB of CSV")
    results = {}
    for arrow in (True, False) if data.pa is not None else (False,):
        data.ARROW = arrow
        t0 = time.perf_counter()
        series = data.read_csv_bytes(raw, "005930")
        dt = time.perf_counter() - t0
        results[arrow] = series
        name = "pyarrow" if arrow else "plain Python"
        print(f"{name:>13}: {dt:6.2f} s  {args.rows / dt:>10,.0f} rows/s")
    data.ARROW = data.pa is not None
    if len(results) == 2:
        assert results[True] == results[False], "the two paths disagree"
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
