"""Figures from a backtest run, and the equity/drawdown chart (SVG or HTML).

Definitions (also in ``docs/backtesting.md``):

* ``total_return`` = final equity / initial cash - 1.
* ``cagr`` = (final / initial) ^ (1 / years) - 1, years = (end of last bar - start of first
  bar) / 365.25 days; ``None`` when the data span less than a day.
* ``max_drawdown`` = the largest fall of equity from its running peak, as a fraction of that
  peak (0.25 = 25%), the initial cash counting as the first peak.
* ``sharpe`` = mean / sample standard deviation of daily returns x sqrt(252), daily returns
  being the change of end-of-day equity (KST days) from the previous day's end (the first from
  the initial cash), risk-free rate 0; ``None`` with fewer than two days or no variation.
* ``win_rate`` = round trips (flat -> holding -> flat, per symbol) whose realised P&L after
  costs is positive, over all round trips; ``None`` when there were none.
"""

from __future__ import annotations

import html
import math
from bisect import bisect_left
from datetime import datetime
from itertools import accumulate
from operator import truediv
from pathlib import Path
from typing import Any

from hoga.backtest.engine import BacktestResult
from hoga.backtest.svg import render_svg
from hoga.domain.clock import KST
from hoga.domain.fills import execution_terms

_DAY = 86_400
_KST = 9 * 3600
CURVE_POINTS = 2000


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, KST).isoformat()


def equity_ratios(initial: int, equity: list[int]) -> list[float]:
    """Equity after each sample over its running peak (1.0 at a new high); C-speed."""
    peaks = accumulate(equity, max, initial=initial)
    next(peaks)
    return list(map(truediv, equity, peaks))


def daily_returns(initial: int, equity: list[int], ts: list[int]) -> list[float]:
    """Returns of the last sample of each KST day (a bar ending at midnight counts for the
    day it covered), the first from the initial cash."""
    ends = []
    i, n = 0, len(ts)
    while i < n:
        day = (ts[i] - 1 + _KST) // _DAY
        nxt = bisect_left(ts, (day + 1) * _DAY - _KST + 1, i)
        ends.append(equity[nxt - 1])
        i = nxt
    rets = []
    prev = initial
    for e in ends:
        rets.append(e / prev - 1 if prev > 0 else 0.0)
        prev = e
    return rets


def sharpe(returns: list[float]) -> float | None:
    if len(returns) < 2:
        return None
    mean = sum(returns) / len(returns)
    var = sum((r - mean) ** 2 for r in returns) / (len(returns) - 1)
    if var <= 0:
        return None
    return mean / math.sqrt(var) * math.sqrt(252)


def summary(r: BacktestResult, *, curve_points: int = CURVE_POINTS) -> dict[str, Any]:
    """The figures of the API/CLI contract, plus a down-sampled equity curve."""
    ratios = equity_ratios(r.initial_cash, r.equity)
    max_dd = 1 - min(ratios, default=1.0)
    span = (r.last_ts - r.first_ts) / _DAY
    ratio = r.final_equity / r.initial_cash
    cagr = ratio ** (365.25 / span) - 1 if span >= 1 and ratio > 0 else None
    wins = sum(1 for p in r.round_trips if p > 0)
    return {
        "kind": r.kind,
        "symbols": list(r.symbols),
        "params": r.params,
        "initial_cash": r.initial_cash,
        "final_equity": r.final_equity,
        "cash": r.cash,
        "total_return": ratio - 1,
        "cagr": cagr,
        "max_drawdown": max_dd,
        "sharpe": sharpe(daily_returns(r.initial_cash, r.equity, r.equity_ts)),
        "win_rate": wins / len(r.round_trips) if r.round_trips else None,
        "num_fills": len(r.fills),
        "num_round_trips": len(r.round_trips),
        "commission": sum(f.commission for f in r.fills),
        "tax": sum(f.tax for f in r.fills),
        "bars": r.bars,
        "interval": r.interval,
        "start": _iso(r.first_ts),
        "end": _iso(r.last_ts - r.interval if r.equity else r.last_ts),
        "rejected_orders": r.rejected,
        "expired_orders": r.expired,
        "open_orders_at_end": r.open_orders_at_end,
        "positions": {
            s: {"qty": p.qty, "avg_price": p.avg_price, "realized_pnl": p.realized_pnl}
            for s, p in r.positions.items()
            if p.qty or p.realized_pnl
        },
        "fills": [{"ts": _iso(f.ts), **execution_terms(f)} for f in r.fills],
        "equity_curve": curve(r, ratios, curve_points),
    }


def curve(r: BacktestResult, ratios: list[float], points: int) -> list[dict[str, Any]]:
    """At most ``points`` samples: from each bucket the deepest drawdown, so troughs survive."""
    n = len(r.equity)
    if n == 0:
        return []
    step = max(1, math.ceil(n / points))
    out = []
    for start in range(0, n, step):
        end = min(n, start + step)
        k = min(range(start, end), key=ratios.__getitem__) if step > 1 else start
        if ratios[k] >= 1.0:
            k = end - 1
        out.append({"ts": _iso(r.equity_ts[k]), "equity": r.equity[k], "drawdown": 1 - ratios[k]})
    return out


# --- charts

_LABELS = [
    ("final_equity", "최종 자산 (final equity)", "{:,.0f}"),
    ("total_return", "총수익률 (total return)", "{:.2%}"),
    ("cagr", "연복리 수익률 (CAGR)", "{:.2%}"),
    ("max_drawdown", "최대 낙폭 (max drawdown)", "{:.2%}"),
    ("sharpe", "샤프 지수 (Sharpe)", "{:.2f}"),
    ("win_rate", "승률 (win rate)", "{:.1%}"),
    ("num_fills", "체결 수 (fills)", "{:,d}"),
    ("num_round_trips", "왕복 거래 (round trips)", "{:,d}"),
    ("commission", "수수료 (commission)", "{:,d}"),
    ("tax", "거래세 (tax)", "{:,d}"),
]


def figure_rows(s: dict[str, Any]) -> list[tuple[str, str]]:
    rows = []
    for key, label, fmt in _LABELS:
        v = s.get(key)
        rows.append((label, "-" if v is None else fmt.format(v)))
    return rows


def render_html(s: dict[str, Any]) -> str:
    """A self-contained page: the figures, the chart (inline SVG) and the fills."""
    chart = render_svg(s)
    rows = "".join(
        f"<tr><th>{html.escape(k)}</th><td>{html.escape(v)}</td></tr>" for k, v in figure_rows(s)
    )
    fills = "".join(
        "<tr>"
        + "".join(
            f"<td>{html.escape(str(f[c]))}</td>"
            for c in ("ts", "symbol", "side", "qty", "price", "commission", "tax")
        )
        + "</tr>"
        for f in s["fills"][:2000]
    )
    more = (
        f"<p>… {len(s['fills']) - 2000:,} more fills (see --json)</p>"
        if len(s["fills"]) > 2000
        else ""
    )
    title = html.escape(f"hoga backtest - {s['kind']} {', '.join(s['symbols'])}")
    params = html.escape(", ".join(f"{k}={v}" for k, v in s["params"].items()))
    return f"""<!doctype html>
<html lang="ko"><head><meta charset="utf-8"><title>{title}</title>
<style>
body{{font-family:system-ui,sans-serif;margin:2rem;color:#222}}
table{{border-collapse:collapse;margin:1rem 0}}
th,td{{border:1px solid #ddd;padding:.25rem .6rem;text-align:right;font-size:.9rem}}
th{{text-align:left;background:#f6f6f6}}
svg{{max-width:100%;height:auto}}
</style></head><body>
<h1>{title}</h1>
<p>{html.escape(s["start"])} – {html.escape(s["end"])} · {s["bars"]:,} bars · params: {params}
· initial cash {s["initial_cash"]:,}</p>
<table>{rows}</table>
<figure aria-label="equity and drawdown">{chart}</figure>
<h2>체결 (fills)</h2>
<table><tr><th>ts</th><th>symbol</th><th>side</th><th>qty</th><th>price</th><th>commission</th><th>tax</th></tr>
{fills}</table>{more}
</body></html>
"""


def write_plot(s: dict[str, Any], path: Path) -> None:
    """``.svg`` writes the chart; ``.html`` the self-contained report page."""
    suffix = path.suffix.lower()
    if suffix == ".svg":
        path.write_text(render_svg(s), encoding="utf-8")
    elif suffix in (".html", ".htm"):
        path.write_text(render_html(s), encoding="utf-8")
    else:
        # PNG went with matplotlib (issue 15: a lighter install); SVG opens in any browser.
        raise ValueError(f"--plot must end in .svg or .html, not {path.name!r}")
