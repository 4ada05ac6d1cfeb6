"""Historical bars for backtests: CSV or Parquet files, CSV text, or bars hoga stored itself.

Files have the columns ``date,open,high,low,close,volume`` (more columns are ignored). ``date``
is ISO 8601: a day (``2024-01-02``) or a time (``2024-01-02 09:01[:00]``); times without an
offset are KST. Prices are whole won (``70000`` or ``70000.0``).

Everything is checked before a backtest starts, and a refusal names the column and row:
missing columns or values, unparseable dates, timestamps out of order or repeated, prices that
are not positive whole won, bars whose high/low do not contain their open and close, negative
volume. With pyarrow installed (``hoga[parquet]``) checks run vectorised in Arrow, so a million
rows load in about a second; without it CSV is read and checked in plain Python (the same rules
and messages, a few times slower) and Parquet files are refused with the extra to install.
"""

from __future__ import annotations

import io
import itertools
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

try:
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq
except ImportError:  # the optional extra hoga[parquet]
    pa = pc = pacsv = pq = None

from hoga.domain.clock import KST
from hoga.domain.errors import InvalidInput
from hoga.domain.market import Bar

COLUMNS = ("date", "open", "high", "low", "close", "volume")
PRICE_COLUMNS = ("open", "high", "low", "close")
_KST_OFFSET = 9 * 3600
INTERVALS = {"1m": 60, "1d": 86_400}
#: Use Arrow when it is installed (tests switch it off to check the plain-Python path).
ARROW = pa is not None


@dataclass(slots=True)
class BarSeries:
    """One symbol's bars as columns (the engine's input): ``ts`` is each bar's start, POSIX s."""

    symbol: str
    interval: int
    ts: list[int]
    open: list[int]
    high: list[int]
    low: list[int]
    close: list[int]
    volume: list[int]

    def __len__(self) -> int:
        return len(self.ts)

    def bar(self, i: int) -> Bar:
        return Bar(
            self.symbol,
            float(self.ts[i]),
            self.interval,
            self.open[i],
            self.high[i],
            self.low[i],
            self.close[i],
            self.volume[i],
        )

    @classmethod
    def from_bars(cls, symbol: str, bars: Sequence[Bar], interval: int | None = None) -> BarSeries:
        rows = sorted(bars, key=lambda b: b.start)
        iv = interval or (rows[0].interval if rows else 60)
        series = cls(
            symbol,
            iv,
            [int(b.start) for b in rows],
            [b.open for b in rows],
            [b.high for b in rows],
            [b.low for b in rows],
            [b.close for b in rows],
            [b.volume for b in rows],
        )
        validate_series(series)
        return series


def bad_data(code: str, field: str, message: str) -> InvalidInput:
    """A refusal of the data, naming the column (``field``)."""
    return InvalidInput(message, code, field=field)


def row_name(i: int) -> str:
    """How a refusal names data row ``i`` (0-based; the header is line 1)."""
    return f"row {i + 1} (line {i + 2})"


def bad_date(source: str, s: object, i: int) -> InvalidInput:
    """The refusal of date ``s`` at data row ``i``: not an ISO date or time."""
    return bad_data(
        "data.bad_date",
        "date",
        f"{source}: date {s!r} at {row_name(i)} is not an ISO date or time "
        "(e.g. 2024-01-02 or 2024-01-02 09:01)",
    )


def mixed_offsets(source: str) -> InvalidInput:
    """The refusal of dates written some with a time-zone offset and some without."""
    return bad_data(
        "data.bad_date",
        "date",
        f"{source}: dates mix forms with and without a time-zone offset; use one form",
    )


def read_csv_bytes(
    data: bytes, symbol: str, *, source: str = "CSV", interval: int | None = None
) -> BarSeries:
    """Parse CSV bytes into a validated series."""
    if not data.strip():
        raise bad_data("data.empty", "csv", f"{source}: no data")
    header = data.split(b"\n", 1)[0].decode("utf-8", "replace").lstrip("\ufeff")
    names = [h.strip().lower() for h in header.split(",")]
    missing = [c for c in COLUMNS if c not in names]
    if missing:
        raise bad_data(
            "data.missing_column",
            missing[0],
            f"{source}: column {missing[0]!r} is missing (the header must name "
            f"{','.join(COLUMNS)}; found {','.join(names)})",
        )
    if not ARROW:
        from hoga.backtest.csv_plain import read_csv_plain  # loaded only without Arrow

        return read_csv_plain(data, names, symbol, source=source, interval=interval)
    types: dict[str, pa.DataType] = {c: pa.float64() for c in COLUMNS[1:]}
    types["date"] = pa.string()
    try:
        table = pacsv.read_csv(
            io.BytesIO(data),
            read_options=pacsv.ReadOptions(column_names=names, skip_rows=1),
            convert_options=pacsv.ConvertOptions(
                column_types=types, include_columns=list(COLUMNS), strings_can_be_null=True
            ),
        )
    except pa.ArrowInvalid as e:
        raise _csv_error(str(e), names, source) from None
    return from_table(table, symbol, source=source, interval=interval)


def _csv_error(text: str, names: list[str], source: str) -> InvalidInput:
    col = re.search(r"column #(\d+)", text)
    row = re.search(r"[Rr]ow #(\d+)", text)
    field = names[int(col.group(1))] if col and int(col.group(1)) < len(names) else "csv"
    value = re.search(r"invalid value '([^']*)'", text)
    where = f" at line {row.group(1)}" if row else ""
    what = f"invalid value {value.group(1)!r}" if value else text.splitlines()[0]
    return bad_data("data.bad_value", field, f"{source}: column {field!r}{where}: {what}")


def read_file(path: Path, symbol: str, *, interval: int | None = None) -> BarSeries:
    """A CSV (``.csv``, ``.txt``) or Parquet (``.parquet``, ``.pq``) file."""
    if not path.is_file():
        raise bad_data("data.not_found", "data", f"{path}: no such file")
    if path.suffix.lower() in (".parquet", ".pq"):
        if not ARROW:
            raise bad_data(
                "data.parquet_unavailable",
                "data",
                f"{path}: reading Parquet needs pyarrow: pip install 'hoga[parquet]' "
                "(or give the bars as CSV)",
            )
        try:
            table = pq.read_table(path)
        except (pa.ArrowInvalid, OSError) as e:
            raise bad_data(
                "data.unreadable", "data", f"{path}: not a readable Parquet file ({e})"
            ) from None
        cols = {c.lower(): c for c in table.column_names}
        missing = [c for c in COLUMNS if c not in cols]
        if missing:
            raise bad_data(
                "data.missing_column",
                missing[0],
                f"{path}: column {missing[0]!r} is missing (needs {','.join(COLUMNS)})",
            )
        table = pa.table({c: table.column(cols[c]) for c in COLUMNS})
        return from_table(table, symbol, source=str(path), interval=interval)
    return read_csv_bytes(path.read_bytes(), symbol, source=str(path), interval=interval)


def _timestamps(col: pa.ChunkedArray, source: str) -> pa.Array:
    """Seconds since the epoch for each bar's start (naive times are KST)."""
    arr = col.combine_chunks()
    if pa.types.is_timestamp(arr.type):
        ts = arr
        if arr.type.tz is None:
            return pc.subtract(pc.cast(pc.cast(ts, pa.timestamp("s")), pa.int64()), _KST_OFFSET)
        return pc.cast(pc.cast(ts, pa.timestamp("s", tz="UTC")), pa.int64())
    if pa.types.is_date(arr.type):
        days = pc.cast(pc.cast(arr, pa.date32()), pa.int32())
        return pc.subtract(pc.multiply(pc.cast(days, pa.int64()), 86_400), _KST_OFFSET)
    strings = pc.utf8_trim_whitespace(pc.cast(arr, pa.string()))
    try:
        naive = pc.cast(strings, pa.timestamp("s"))
        return pc.subtract(pc.cast(naive, pa.int64()), _KST_OFFSET)
    except pa.ArrowInvalid:
        pass
    try:
        return pc.cast(pc.cast(strings, pa.timestamp("s", tz="UTC")), pa.int64())
    except pa.ArrowInvalid:
        pass
    for i, s in enumerate(strings.to_pylist()):
        try:
            _parse_one(s)
        except ValueError:
            raise bad_date(source, s, i) from None
    raise mixed_offsets(source)


def _parse_one(s: str) -> datetime:
    d = datetime.fromisoformat(s)
    return d if d.tzinfo else d.replace(tzinfo=KST)


def _first(mask: pa.Array) -> int:
    return int(pc.index(mask, True).as_py())


def from_table(
    table: pa.Table, symbol: str, *, source: str = "data", interval: int | None = None
) -> BarSeries:
    """Validate an Arrow table with the six columns and turn it into a series."""
    n = table.num_rows
    if n == 0:
        raise bad_data("data.empty", "date", f"{source}: no bars (no rows with a date)")
    for c in COLUMNS:
        nulls = table.column(c).null_count
        if nulls:
            i = _first(pc.is_null(table.column(c).combine_chunks()))
            raise bad_data("data.missing_value", c, f"{source}: {c} is empty at {row_name(i)}")
    ts = _timestamps(table.column("date"), source)
    cols: dict[str, pa.Array] = {}
    for c in COLUMNS[1:]:
        raw = table.column(c).combine_chunks()
        if not (pa.types.is_integer(raw.type) or pa.types.is_floating(raw.type)):
            try:
                raw = pc.cast(raw, pa.float64())
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
                raise bad_data("data.bad_value", c, f"{source}: {c} must be numbers") from None
        if pa.types.is_floating(raw.type):
            whole = pc.equal(pc.floor(raw), raw)
            if not pc.all(whole).as_py():
                i = _first(pc.invert(whole))
                what = "whole won" if c in PRICE_COLUMNS else "whole shares"
                raise bad_data(
                    "data.bad_value",
                    c,
                    f"{source}: {c} {raw[i].as_py()!r} at {row_name(i)} is not {what}",
                )
        cols[c] = pc.cast(raw, pa.int64())
    for c in PRICE_COLUMNS:
        bad = pc.less_equal(cols[c], 0)
        if pc.any(bad).as_py():
            i = _first(bad)
            raise bad_data(
                "data.bad_price",
                c,
                f"{source}: {c} must be a positive price, got {cols[c][i].as_py()} at {row_name(i)}",
            )
    bad = pc.less(cols["volume"], 0)
    if pc.any(bad).as_py():
        i = _first(bad)
        raise bad_data("data.bad_volume", "volume", f"{source}: negative volume at {row_name(i)}")
    hi, lo = cols["high"], cols["low"]
    for c, mask in (
        ("high", pc.less(hi, lo)),
        ("high", pc.less(hi, pc.max_element_wise(cols["open"], cols["close"]))),
        ("low", pc.greater(lo, pc.min_element_wise(cols["open"], cols["close"]))),
    ):
        if pc.any(mask).as_py():
            i = _first(mask)
            raise bad_data(
                "data.bad_bar",
                c,
                f"{source}: at {row_name(i)} high/low do not contain open and close "
                f"(o={cols['open'][i].as_py()} h={hi[i].as_py()} l={lo[i].as_py()} "
                f"c={cols['close'][i].as_py()})",
            )
    if n > 1:
        diffs = pc.subtract(ts.slice(1), ts.slice(0, n - 1))
        same = pc.equal(diffs, 0)
        back = pc.less(diffs, 0)
        if pc.any(back).as_py():
            i = _first(back) + 1
            raise bad_data(
                "data.unsorted",
                "date",
                f"{source}: dates must be in ascending order; {row_name(i)} is earlier than the "
                "row before it",
            )
        if pc.any(same).as_py():
            i = _first(same) + 1
            raise bad_data(
                "data.duplicate",
                "date",
                f"{source}: duplicate date at {row_name(i)} (the same as the row before it)",
            )
    ts_list = ts.to_pylist()
    return BarSeries(
        symbol,
        interval or detect_interval(ts_list),
        ts_list,
        cols["open"].to_pylist(),
        cols["high"].to_pylist(),
        cols["low"].to_pylist(),
        cols["close"].to_pylist(),
        cols["volume"].to_pylist(),
    )


def detect_interval(ts: Sequence[int]) -> int:
    """The most common gap between the first thousand bars (a day for daily data)."""
    gaps = Counter(b - a for a, b in itertools.pairwise(ts))
    if not gaps:
        return 86_400
    gap = gaps.most_common(1)[0][0]
    return 86_400 if gap >= 86_400 else int(gap)


def validate_series(series: BarSeries) -> None:
    """The same checks for bars that did not come from a file (stored bars)."""
    if not ARROW:
        cols = {"open": series.open, "high": series.high, "low": series.low}
        cols |= {"close": series.close, "volume": series.volume}
        from hoga.backtest.csv_plain import check_plain  # loaded only without Arrow

        check_plain(list(series.ts), cols, "stored bars")
        return
    table = pa.table(
        {
            "date": pa.array([t + _KST_OFFSET for t in series.ts], pa.timestamp("s")),
            "open": series.open,
            "high": series.high,
            "low": series.low,
            "close": series.close,
            "volume": series.volume,
        }
    )
    if table.num_rows:
        from_table(table, series.symbol, source="stored bars", interval=series.interval)


def describe_span(series: BarSeries) -> dict[str, Any]:
    if not series.ts:
        return {"bars": 0}
    return {
        "bars": len(series),
        "first": datetime.fromtimestamp(series.ts[0], KST).isoformat(),
        "last": datetime.fromtimestamp(series.ts[-1], KST).isoformat(),
        "interval": series.interval,
    }
