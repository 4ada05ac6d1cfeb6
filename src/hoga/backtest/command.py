"""``hoga backtest``: check the command line, run a catalog strategy over a bars file, print.

The CLI (``cli.py``) only declares the options and turns ``CommandError`` into an exit code;
everything about a backtest run from the command line lives here, beside the engine.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any


class CommandError(Exception):
    """A bad option or a backtest that cannot run; the message is for the operator."""


def _param_value(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return text


def run_command(
    *,
    strategy: str,
    symbol: str,
    data: Path,
    params: list[str],
    cash: int,
    market: str | None,
    commission_rate: str,
    as_json: bool,
    plot: Path | None,
    echo: Callable[[str], Any],
) -> None:
    """Run one backtest and print its figures (a table, or JSON with ``as_json``)."""
    from hoga.backtest.data import read_file
    from hoga.backtest.engine import BacktestError, run_backtest
    from hoga.backtest.report import summary, write_plot
    from hoga.domain import krx
    from hoga.domain.errors import HogaError
    from hoga.marketdata.universe import Universe, bundled_universe
    from hoga.strategies.registry import load_catalog

    if plot is not None and plot.suffix.lower() not in (".png", ".html", ".htm"):
        raise CommandError(f"--plot must end in .png or .html, not {plot.name!r}")
    try:
        rate = Decimal(commission_rate)
        if not 0 <= rate < 1:
            raise InvalidOperation
    except InvalidOperation:
        raise CommandError(
            f"--commission-rate {commission_rate!r} is not a fraction in [0, 1)"
        ) from None
    if cash <= 0:
        raise CommandError("--cash must be a positive number of won")
    raw: dict[str, Any] = {}
    for item in params:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise CommandError(f"--param {item!r}: use NAME=VALUE")
        raw[key.strip()] = _param_value(value.strip())
    code = krx.normalize_symbol(symbol)
    if not krx.is_valid_symbol(code):
        raise CommandError(f"--symbol {symbol!r} is not a KRX code (six characters, e.g. 005930)")
    inst = Universe(bundled_universe()).get(code)
    mkt = (market or (inst.market if inst else "KOSPI")).upper()
    if mkt not in krx.MARKETS:
        raise CommandError(f"--market {market!r}: one of {', '.join(sorted(krx.MARKETS))}")
    try:
        catalog = load_catalog()
        cls = catalog.get(strategy)
        parsed = catalog.params(strategy, raw, (code,))
        series = read_file(data, code)
        krx.warm_calendar()
        progress_cm: Any = contextlib.nullcontext(None)
        if len(series) >= 200_000:
            from rich.console import Console
            from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

            progress_cm = Progress(
                TextColumn("backtest"),
                BarColumn(),
                TextColumn("{task.completed:,}/{task.total:,} bars"),
                TimeRemainingColumn(),
                console=Console(stderr=True),
                transient=True,
            )
        with progress_cm as bar:
            hook = None
            if bar is not None:
                task = bar.add_task("run", total=len(series))

                def hook(done: int, total: int) -> None:
                    bar.update(task, completed=done)

            result = run_backtest(
                cls, parsed, series, cash=cash, market=mkt, commission_rate=rate, progress=hook
            )
    except HogaError as e:
        field = e.details.get("field") if e.details else None
        raise CommandError(
            f"{e.message}" + (f" [{field}]" if field and field not in e.message else "")
        ) from None
    except BacktestError as e:
        raise CommandError(str(e)) from None
    figures = summary(result)
    if plot is not None:
        write_plot(figures, plot)
    if as_json:
        out = {k: v for k, v in figures.items() if k != "equity_curve"}
        echo(json.dumps(out, ensure_ascii=False, indent=2))
        return
    from rich.console import Console
    from rich.table import Table

    from hoga.backtest.report import figure_rows

    table = Table(title=f"{cls.kind} {code} ({figures['start'][:10]} - {figures['end'][:10]})")
    table.add_column("figure")
    table.add_column("value", justify="right")
    for label, value in figure_rows(figures):
        table.add_row(label, value)
    Console().print(table)
    if plot is not None:
        echo(f"chart written to {plot}")
