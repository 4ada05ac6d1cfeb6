"""``hoga backtest`` end to end (a real process per run), checked against a hand computation of
the stated rules; refusals are one line."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from xml.etree import ElementTree

import pytest

from tests.bars import CSV


def hoga(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "hoga", *args], capture_output=True, text=True, timeout=120
    )


def commission(amount: int) -> int:
    return amount * 15 // 100_000  # 0.015%, floored to the won


def sell_tax(amount: int) -> int:
    return amount * 20 // 10_000  # 0.20% for sells settling in 2026, floored to the won


def test_cli_json_matches_hand_computation(tmp_path: Path) -> None:
    data = tmp_path / "bars.csv"
    data.write_text(CSV)
    out = hoga(
        "backtest", "--strategy", "sma_cross", "--symbol", "005930", "--data", str(data),
        "--param", "fast=2", "--param", "slow=3", "--param", "qty=10",
        "--cash", "10000000", "--json",
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    got = json.loads(out.stdout)

    # By hand, closes 70000 69000 68000 71000 72000 69000 67000 68000 72000 73000:
    # 02-05: fast (68000+71000)/2 = 69500 > slow (69000+68000+71000)/3 = 69333 (was below on
    #        02-04: 68500 < 69000) -> buy 10 at 02-06's open, 71200.
    # 02-09: fast 70500 < slow 70667 (above on 02-06) -> sell 10 at 02-10's open, 68800.
    # 02-12: fast 70000 > slow 69000 (below on 02-11: 67500 < 68000) -> buy at 02-13's open 72500.
    buy1, sell1, buy2 = 10 * 71_200, 10 * 68_800, 10 * 72_500
    fills = [
        ("2026-02-06T00:00:00+09:00", "buy", 10, 71_200, commission(buy1), 0),
        ("2026-02-10T00:00:00+09:00", "sell", 10, 68_800, commission(sell1), sell_tax(sell1)),
        ("2026-02-13T00:00:00+09:00", "buy", 10, 72_500, commission(buy2), 0),
    ]
    assert [
        (f["ts"], f["side"], f["qty"], f["price"], f["commission"], f["tax"]) for f in got["fills"]
    ] == fills
    assert [f[4] for f in fills] == [106, 103, 108] and fills[1][5] == 1376
    cash = 10_000_000 - buy1 - 106 + sell1 - 103 - 1376 - buy2 - 108
    final = cash + 10 * 73_000  # marked to the last close
    assert got["final_equity"] == final == 9_979_307
    assert got["total_return"] == pytest.approx(final / 10_000_000 - 1)
    assert got["num_fills"] == 3
    assert got["num_round_trips"] == 1 and got["win_rate"] == 0.0
    assert got["commission"] == 106 + 103 + 108 and got["tax"] == 1376
    # Peak: after 02-06 (holding 10 at the 72,000 close); trough: after 02-10, sold and flat.
    peak = 10_000_000 - buy1 - 106 + 10 * 72_000
    trough = 10_000_000 - buy1 - 106 + sell1 - 103 - 1376
    assert got["max_drawdown"] == pytest.approx((peak - trough) / peak)
    for key in ("cagr", "sharpe"):
        assert isinstance(got[key], float)


def test_cli_plots_svg_and_html(tmp_path: Path) -> None:
    data = tmp_path / "bars.csv"
    data.write_text(CSV)
    svg, page = tmp_path / "out.svg", tmp_path / "out.html"
    base = ["backtest", "-s", "sma_cross", "--symbol", "005930", "--data", str(data),
            "-p", "fast=2", "-p", "slow=3"]  # fmt: skip
    assert hoga(*base, "--plot", str(svg)).returncode == 0
    root = ElementTree.fromstring(svg.read_text())  # noqa: S314 - our own output; well-formed XML
    assert root.tag == "{http://www.w3.org/2000/svg}svg"
    paths = root.findall(".//{http://www.w3.org/2000/svg}path")
    assert len(paths) == 3  # equity line, drawdown area and its edge
    assert hoga(*base, "--plot", str(tmp_path / "out.png")).returncode != 0
    out = hoga(*base, "--plot", str(page))
    assert out.returncode == 0, out.stderr
    text = page.read_text()
    assert "<svg" in text and "9,979,307" in text
    assert "최대 낙폭" in text and "2026-02-06" in text


def test_cli_refusals_are_one_line(tmp_path: Path) -> None:
    data = tmp_path / "bad.csv"
    data.write_text("date,open,high,low,volume\n2026-02-02,1,1,1,1\n")
    out = hoga("backtest", "-s", "sma_cross", "--symbol", "005930", "--data", str(data))
    assert out.returncode == 1
    assert "'close' is missing" in out.stderr and "Traceback" not in out.stderr
    good = tmp_path / "good.csv"
    good.write_text(CSV)
    out = hoga("backtest", "-s", "sma_cross", "--symbol", "005930", "--data", str(good),
               "-p", "fast=5", "-p", "slow=3")  # fmt: skip
    assert out.returncode == 1 and "fast" in out.stderr
    out = hoga("backtest", "-s", "nope", "--symbol", "005930", "--data", str(good))
    assert out.returncode == 1 and "unknown strategy kind" in out.stderr


def test_backtests_run_where_pyarrow_is_not_installed(tmp_path: Path) -> None:
    """The module imports and a CSV backtest runs with pyarrow (and matplotlib) unimportable."""
    data = tmp_path / "bars.csv"
    data.write_text(CSV)
    code = (
        "import sys; sys.modules['pyarrow'] = None; sys.modules['matplotlib'] = None\n"
        "from hoga.cli import main; sys.argv = ['hoga', 'backtest', '-s', 'sma_cross', "
        f"'--symbol', '005930', '--data', {str(data)!r}, '-p', 'fast=2', '-p', 'slow=3', "
        f"'--json', '--plot', {str(tmp_path / 'chart.svg')!r}]; main()"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["num_fills"] > 0
    assert (tmp_path / "chart.svg").read_text().startswith("<svg")
