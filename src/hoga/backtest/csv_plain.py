"""Bars from CSV without pyarrow: the same rules and messages as ``data.py``'s Arrow path,
over Python lists (a few times slower). ``data.py`` loads this module only when pyarrow is
not installed (or a test switches Arrow off).
"""

from __future__ import annotations

import csv
import io
import math
from datetime import datetime

from hoga.backtest.data import (
    COLUMNS,
    PRICE_COLUMNS,
    BarSeries,
    bad_data,
    bad_date,
    detect_interval,
    mixed_offsets,
    row_name,
)
from hoga.domain.clock import KST


def read_csv_plain(
    data: bytes, names: list[str], symbol: str, *, source: str, interval: int | None
) -> BarSeries:
    """CSV bytes (header ``names``, already checked) as a checked ``BarSeries``."""
    text = data.decode("utf-8", "replace").lstrip("\ufeff")
    reader = csv.reader(io.StringIO(text))
    next(reader, None)
    where = {c: names.index(c) for c in COLUMNS}
    raw: dict[str, list[str | None]] = {c: [] for c in COLUMNS}
    for row in reader:
        if not row:
            continue  # blank lines, as Arrow skips them
        if len(row) != len(names):
            raise bad_data(
                "data.bad_value",
                "csv",
                f"{source}: column 'csv' at line {reader.line_num}: expected {len(names)} "
                f"columns, got {len(row)}",
            )
        for c, i in where.items():
            raw[c].append(row[i].strip() or None)
    numbers: dict[str, list[float | None]] = {}
    for c in COLUMNS[1:]:
        out: list[float | None] = []
        for i, cell in enumerate(raw[c]):
            if cell is None:
                out.append(None)
                continue
            try:
                out.append(float(cell))
            except ValueError:
                raise bad_data(
                    "data.bad_value",
                    c,
                    f"{source}: column {c!r} at line {i + 2}: invalid value {cell!r}",
                ) from None
        numbers[c] = out
    n = len(raw["date"])
    if n == 0:
        raise bad_data("data.empty", "date", f"{source}: no bars (no rows with a date)")
    for c in COLUMNS:
        column = raw[c] if c == "date" else numbers[c]
        if None in column:
            raise bad_data(
                "data.missing_value", c, f"{source}: {c} is empty at {row_name(column.index(None))}"
            )
    ts = _plain_timestamps([d or "" for d in raw["date"]], source)
    ints: dict[str, list[int]] = {}
    for c in COLUMNS[1:]:
        vals: list[int] = []
        for i, v in enumerate(numbers[c]):
            assert v is not None
            if not (math.isfinite(v) and v.is_integer()):
                what = "whole won" if c in PRICE_COLUMNS else "whole shares"
                raise bad_data(
                    "data.bad_value", c, f"{source}: {c} {v!r} at {row_name(i)} is not {what}"
                )
            vals.append(int(v))
        ints[c] = vals
    check_plain(ts, ints, source)
    return BarSeries(
        symbol,
        interval or detect_interval(ts),
        ts,
        ints["open"],
        ints["high"],
        ints["low"],
        ints["close"],
        ints["volume"],
    )


def _plain_timestamps(dates: list[str], source: str) -> list[int]:
    out = []
    offsets = set()
    for i, s in enumerate(dates):
        try:
            d = datetime.fromisoformat(s)
            offsets.add(d.tzinfo is None)
            out.append(int((d if d.tzinfo else d.replace(tzinfo=KST)).timestamp()))
        except ValueError:
            raise bad_date(source, s, i) from None
    if len(offsets) > 1:
        raise mixed_offsets(source)
    return out


def check_plain(ts: list[int], cols: dict[str, list[int]], source: str) -> None:
    """Prices, volume, bar shape and order, as ``from_table`` checks them in Arrow."""
    for c in PRICE_COLUMNS:
        for i, v in enumerate(cols[c]):
            if v <= 0:
                raise bad_data(
                    "data.bad_price",
                    c,
                    f"{source}: {c} must be a positive price, got {v} at {row_name(i)}",
                )
    for i, v in enumerate(cols["volume"]):
        if v < 0:
            raise bad_data(
                "data.bad_volume", "volume", f"{source}: negative volume at {row_name(i)}"
            )
    op, hi, lo, cl = cols["open"], cols["high"], cols["low"], cols["close"]
    checks = (
        ("high", [i for i in range(len(hi)) if hi[i] < lo[i]]),
        ("high", [i for i in range(len(hi)) if hi[i] < max(op[i], cl[i])]),
        ("low", [i for i in range(len(hi)) if lo[i] > min(op[i], cl[i])]),
    )
    for field, bad in checks:
        if bad:
            i = bad[0]
            raise bad_data(
                "data.bad_bar",
                field,
                f"{source}: at {row_name(i)} high/low do not contain open and close "
                f"(o={op[i]} h={hi[i]} l={lo[i]} c={cl[i]})",
            )
    for i in range(1, len(ts)):
        if ts[i] < ts[i - 1]:
            raise bad_data(
                "data.unsorted",
                "date",
                f"{source}: dates must be in ascending order; {row_name(i)} is earlier than the "
                "row before it",
            )
    for i in range(1, len(ts)):
        if ts[i] == ts[i - 1]:
            raise bad_data(
                "data.duplicate",
                "date",
                f"{source}: duplicate date at {row_name(i)} (the same as the row before it)",
            )
