"""The backtest chart as SVG: equity above, drawdown below, on one time axis.

A few hundred lines of plotting library would be overkill for two lines and an area; this writes
the SVG text directly (no dependency, any browser shows it, and it scales). Input is the report
summary's ``equity_curve`` (at most ``report.CURVE_POINTS`` points).
"""

from __future__ import annotations

import html
import math
from datetime import datetime
from typing import Any

WIDTH, HEIGHT = 1000, 600
LEFT, RIGHT, TOP = 96, 16, 40
EQUITY_H, GAP, DD_H = 360, 30, 130
BLUE, RED, GREY, GRID = "#1f4e9a", "#c0392b", "#999999", "#e5e5e5"


def nice_ticks(lo: float, hi: float, count: int = 5) -> list[float]:
    """Round tick values covering [lo, hi] (steps of 1, 2 or 5 times a power of ten)."""
    if not (math.isfinite(lo) and math.isfinite(hi)) or hi < lo:
        return []
    if hi == lo:
        return [lo]
    raw = (hi - lo) / max(1, count)
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 5, 10) if m * power >= raw)
    # Multiples of the step (not repeated addition, which drifts).
    first, last = math.ceil(lo / step - 1e-9), math.floor(hi / step + 1e-9)
    return [k * step for k in range(first, last + 1)]


def _fmt_won(v: float) -> str:
    return f"{v:,.0f}"


def _path(points: list[tuple[float, float]]) -> str:
    return " ".join(f"{'M' if i == 0 else 'L'}{x:.1f},{y:.1f}" for i, (x, y) in enumerate(points))


def render_svg(s: dict[str, Any]) -> str:
    """The equity/drawdown chart of a backtest summary as a standalone SVG document."""
    pts = s["equity_curve"]
    plot_w = WIDTH - LEFT - RIGHT
    dd_top = TOP + EQUITY_H + GAP
    out: list[str] = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {HEIGHT}" '
        f'width="{WIDTH}" height="{HEIGHT}" font-family="system-ui,sans-serif" font-size="12">',
        f'<rect width="{WIDTH}" height="{HEIGHT}" fill="#ffffff"/>',
    ]
    title = f"{s['kind']} {','.join(s['symbols'])}  {s['start'][:10]} - {s['end'][:10]}"
    out.append(f'<text x="{LEFT}" y="22" font-size="14">{html.escape(title)}</text>')
    if not pts:
        out.append(f'<text x="{LEFT}" y="{TOP + 40}">no bars</text></svg>')
        return "\n".join(out)
    times = [datetime.fromisoformat(p["ts"]).timestamp() for p in pts]
    equity = [float(p["equity"]) for p in pts]
    dds = [100.0 * float(p["drawdown"]) for p in pts]
    t0, t1 = times[0], times[-1]
    span = (t1 - t0) or 1.0
    e_lo = min([*equity, float(s["initial_cash"])])
    e_hi = max([*equity, float(s["initial_cash"])])
    if e_hi == e_lo:
        e_lo, e_hi = e_lo * 0.99 or -1.0, e_hi * 1.01 or 1.0
    d_hi = max(dds) or 1.0

    def x(t: float) -> float:
        return LEFT + (t - t0) / span * plot_w

    def ye(v: float) -> float:
        return TOP + (e_hi - v) / (e_hi - e_lo) * EQUITY_H

    def yd(v: float) -> float:
        return dd_top + v / d_hi * DD_H

    # Grid and labels.
    for v in nice_ticks(e_lo, e_hi):
        y = ye(v)
        out.append(
            f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y:.1f}" y2="{y:.1f}" stroke="{GRID}"/>'
        )
        out.append(f'<text x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end">{_fmt_won(v)}</text>')
    for v in nice_ticks(0.0, d_hi, 3):
        y = yd(v)
        out.append(
            f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y:.1f}" y2="{y:.1f}" stroke="{GRID}"/>'
        )
        out.append(f'<text x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end">-{v:g}%</text>')
    for i in range(5):
        t = t0 + span * i / 4
        label = datetime.fromtimestamp(t, datetime.fromisoformat(pts[0]["ts"]).tzinfo)
        anchor = "start" if i == 0 else "end" if i == 4 else "middle"
        out.append(
            f'<text x="{x(t):.1f}" y="{dd_top + DD_H + 18}" text-anchor="{anchor}">'
            f"{label:%Y-%m-%d}</text>"
        )
    out.append(
        f'<text x="14" y="{TOP + EQUITY_H / 2:.0f}" transform="rotate(-90 14 {TOP + EQUITY_H / 2:.0f})" '
        'text-anchor="middle">equity (KRW)</text>'
    )
    out.append(
        f'<text x="14" y="{dd_top + DD_H / 2:.0f}" transform="rotate(-90 14 {dd_top + DD_H / 2:.0f})" '
        'text-anchor="middle">drawdown (%)</text>'
    )
    # Initial cash, the equity line, the drawdown area.
    yc = ye(float(s["initial_cash"]))
    out.append(
        f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{yc:.1f}" y2="{yc:.1f}" stroke="{GREY}" '
        'stroke-dasharray="5,4"/>'
    )
    eq_pts = [(x(t), ye(v)) for t, v in zip(times, equity, strict=True)]
    out.append(f'<path d="{_path(eq_pts)}" fill="none" stroke="{BLUE}" stroke-width="1.3"/>')
    dd_pts = [(x(t), yd(v)) for t, v in zip(times, dds, strict=True)]
    area = _path([(x(t0), dd_top), *dd_pts, (x(t1), dd_top)]) + " Z"
    out.append(f'<path d="{area}" fill="{RED}" fill-opacity="0.35" stroke="none"/>')
    out.append(f'<path d="{_path(dd_pts)}" fill="none" stroke="{RED}" stroke-width="0.9"/>')
    summary = "   ".join(
        f"{k}: {v}"
        for k, v in (
            ("return", "-" if s["total_return"] is None else f"{s['total_return']:.2%}"),
            ("CAGR", "-" if s["cagr"] is None else f"{s['cagr']:.2%}"),
            ("max DD", f"{s['max_drawdown']:.2%}"),
            ("Sharpe", "-" if s["sharpe"] is None else f"{s['sharpe']:.2f}"),
            ("win", "-" if s["win_rate"] is None else f"{s['win_rate']:.0%}"),
            ("fills", s["num_fills"]),
        )
    )
    out.append(
        f'<text x="{LEFT + 6}" y="{TOP + EQUITY_H - 8}" font-size="11" fill="#333333">'
        f"{html.escape(summary)}</text>"
    )
    out.append("</svg>")
    return "\n".join(out)
