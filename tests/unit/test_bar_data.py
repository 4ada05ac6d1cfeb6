"""Bar files for backtests: the data checks that refuse bad files with the field named, Parquet,
and the plain-Python reader used where pyarrow is not installed."""

from __future__ import annotations

from pathlib import Path

import pytest

from hoga.backtest import data as data_mod
from hoga.backtest.data import BarSeries, read_csv_bytes
from hoga.domain.errors import InvalidInput
from tests.bars import CSV


@pytest.mark.parametrize(
    ("csv", "code", "field"),
    [
        ("date,open,high,low,volume\n2026-02-02,1,1,1,1\n", "data.missing_column", "close"),
        (
            "date,open,high,low,close,volume\n2026-02-03,1,1,1,1,1\n2026-02-02,1,1,1,1,1\n",
            "data.unsorted",
            "date",
        ),
        (
            "date,open,high,low,close,volume\n2026-02-02,1,1,1,1,1\n2026-02-02,1,1,1,1,1\n",
            "data.duplicate",
            "date",
        ),
        ("date,open,high,low,close,volume\n2026-02-02,1,1,0,1,1\n", "data.bad_price", "low"),
        ("date,open,high,low,close,volume\n2026-02-02,1,-2,1,1,1\n", "data.bad_price", "high"),
        ("date,open,high,low,close,volume\n2026-02-02,1.5,2,1,1,1\n", "data.bad_value", "open"),
        ("date,open,high,low,close,volume\n2026-02-02,1,x,1,1,1\n", "data.bad_value", "high"),
        ("date,open,high,low,close,volume\nyesterday,1,1,1,1,1\n", "data.bad_date", "date"),
        ("date,open,high,low,close,volume\n2026-02-02,5,4,3,5,1\n", "data.bad_bar", "high"),
        ("date,open,high,low,close,volume\n2026-02-02,5,5,5,5,\n", "data.missing_value", "volume"),
        ("date,open,high,low,close,volume\n", "data.empty", "date"),
    ],
)
@pytest.mark.parametrize("arrow", [True, False], ids=["arrow", "plain"])
def test_bad_data_is_refused_naming_the_field(
    csv: str, code: str, field: str, arrow: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Without pyarrow (hoga[parquet] not installed) the same rules give the same refusals.
    monkeypatch.setattr(data_mod, "ARROW", arrow)
    with pytest.raises(InvalidInput) as err:
        read_csv_bytes(csv.encode(), "005930")
    assert err.value.code == code
    assert err.value.details["field"] == field
    assert field in err.value.message or code in ("data.unsorted", "data.duplicate")


def test_parquet_and_times_with_offsets(tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    from hoga.backtest.data import read_file

    t = pa.table(
        {
            "date": ["2026-02-02T09:00:00+09:00", "2026-02-02T09:01:00+09:00"],
            "open": [100, 101],
            "high": [101, 102],
            "low": [99, 100],
            "close": [101, 102],
            "volume": [5, 6],
        }
    )
    path = tmp_path / "bars.parquet"
    pq.write_table(t, path)
    s = read_file(path, "005930")
    assert s.interval == 60 and s.close == [101, 102]
    assert s.ts[0] == 1769990400  # 2026-02-02 09:00 KST
    naive = read_csv_bytes(b"date,open,high,low,close,volume\n2026-02-02 09:00,1,1,1,1,0\n", "X")
    assert naive.ts == s.ts[:1]


INTRADAY = (
    "Date, Open,High,Low,Close,Volume,extra\n"
    "2026-02-02 09:00,70000,70500,69500,70000.0,1000,a\n"
    "\n"
    "2026-02-02 09:01:00,70100,70200,68800,69000,0,b\n"
    "2026-02-02T09:02,69000,69100,68900,69100,12,c\n"
)


@pytest.mark.parametrize("text", [CSV, INTRADAY], ids=["daily", "intraday"])
def test_plain_python_reader_matches_arrow(text: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Without pyarrow a CSV loads to exactly the series Arrow makes of it."""
    with_arrow = read_csv_bytes(text.encode(), "005930")
    monkeypatch.setattr(data_mod, "ARROW", False)
    plain = read_csv_bytes(text.encode(), "005930")
    assert plain == with_arrow
    data_mod.validate_series(plain)  # stored bars: the same checks, no Arrow
    mixed = text.replace("2026-02-02,", "2026-02-02T00:00+09:00,", 1)
    if mixed != text:
        with pytest.raises(InvalidInput, match="mix forms"):
            read_csv_bytes(mixed.encode(), "005930")


def test_parquet_without_pyarrow_names_the_extra(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "bars.parquet"
    path.write_bytes(b"PAR1")
    monkeypatch.setattr(data_mod, "ARROW", False)
    with pytest.raises(InvalidInput) as err:
        data_mod.read_file(path, "005930")
    assert err.value.code == "data.parquet_unavailable"
    assert "hoga[parquet]" in err.value.message


def test_bar_series_equality_is_by_value() -> None:
    a = BarSeries("X", 60, [1], [1], [1], [1], [1], [0])
    assert a == BarSeries("X", 60, [1], [1], [1], [1], [1], [0])
