"""One backtest job as a pool process runs it, and what its report warns about.

Runs in a worker process (spawned, without database handles): it gets plain values and
returns the JSON summary, so nothing of the server crosses the process boundary.
"""

from __future__ import annotations

from typing import Any

from hoga.backtest.data import BarSeries
from hoga.backtest.engine import BacktestError, run_backtest
from hoga.backtest.report import summary
from hoga.strategies.registry import load_catalog

# Fewer bars than this make a backtest say so (a warning on the job, shown with its report).
MIN_BARS = 30
MAX_FILLS_STORED = 50_000


def run_job(
    kind: str,
    params: dict[str, Any],
    series: BarSeries,
    cash: int,
    market: str,
    commission_rate: str,
) -> dict[str, Any]:
    """Run one backtest (in a worker process): the summary, or ``{"error": message}``."""
    catalog = load_catalog()
    cls = catalog.get(kind)
    validated = cls.Params.model_validate(params)
    try:
        result = run_backtest(
            cls, validated, series, cash=cash, market=market, commission_rate=commission_rate
        )
    except BacktestError as e:
        return {"error": str(e)}
    out = summary(result)
    if len(out["fills"]) > MAX_FILLS_STORED:
        out["fills_truncated"] = len(out["fills"])
        out["fills"] = out["fills"][:MAX_FILLS_STORED]
    return out


def warnings_for(bars: int) -> list[dict[str, Any]]:
    """What a person must know before trusting the result (shown with the report)."""
    if bars >= MIN_BARS:
        return []
    return [
        {
            "code": "backtest.too_little_data",
            "bars": bars,
            "message": f"봉이 {bars}개뿐이라 의미 있는 결과가 아닙니다. 기간을 늘리거나 데이터를 더 모으세요 "
            f"(only {bars} bars: too few for a meaningful backtest)",
        }
    ]
