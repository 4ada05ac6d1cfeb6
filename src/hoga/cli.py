"""The ``hoga`` command: serve, users, the vault, the database, backtests, broker fakes.

Every failure a person can fix prints one line saying what to fix and exits non-zero; a
traceback appears only with ``--debug``.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer

from hoga import __version__
from hoga.config import ConfigError, Settings, load_settings
from hoga.ops import commands
from hoga.ops.console import fail

app = typer.Typer(
    help="hoga (호가): a self-hosted automated-trading server for Korean stocks.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
user_app = typer.Typer(
    help="Manage users and tiers (works while the server runs).", no_args_is_help=True
)
vault_app = typer.Typer(help="The credential vault.", no_args_is_help=True)
db_app = typer.Typer(help="The database.", no_args_is_help=True)
app.add_typer(user_app, name="user")
app.add_typer(vault_app, name="vault")
app.add_typer(db_app, name="db")
symbols_app = typer.Typer(help="The instrument master (every listed symbol).", no_args_is_help=True)
app.add_typer(symbols_app, name="symbols")

_state: dict[str, Any] = {"debug": False, "config": None}
T = TypeVar("T")

ConfigOpt = Annotated[
    Path | None, typer.Option("--config", "-c", help="TOML config file (or HOGA_CONFIG)")
]


def _settings(config: Path | None = None, **overrides: Any) -> Settings:
    try:
        return load_settings(
            config or _state["config"], **{k: v for k, v in overrides.items() if v is not None}
        )
    except ConfigError as e:
        raise fail(str(e)) from None


def _run(coro_fn: Callable[[], Awaitable[T]]) -> T:
    """Run a coroutine, turning known failures into one-line errors."""
    from hoga.domain.errors import HogaError
    from hoga.security.tokens import KeyFileError
    from hoga.security.vault import VaultError

    async def main() -> T:
        return await coro_fn()

    try:
        with contextlib.suppress(ImportError):
            import uvloop

            return uvloop.run(main())
        return asyncio.run(main())
    except typer.Exit:
        raise
    except (HogaError, VaultError, KeyFileError, ConfigError) as e:
        if _state["debug"]:
            raise
        message = e.message if isinstance(e, HogaError) else str(e)
        raise fail(message) from None
    except KeyboardInterrupt:
        raise typer.Exit(130) from None


@app.callback()
def main_callback(
    debug: Annotated[bool, typer.Option("--debug", help="show tracebacks")] = False,
    config: ConfigOpt = None,
) -> None:
    _state["debug"] = debug
    _state["config"] = config


@app.command()
def version() -> None:
    """Print the version."""
    typer.echo(f"hoga {__version__}")


# ------------------------------------------------------------------ serve


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="listen address (HOGA_HOST)")] = None,
    port: Annotated[int | None, typer.Option(help="listen port (HOGA_PORT)")] = None,
    config: ConfigOpt = None,
    paused: Annotated[
        bool,
        typer.Option(
            "--paused",
            help="start paused: strategies stopped and orders held until an admin resumes "
            "(`hoga resume`); use after a restore",
        ),
    ] = False,
) -> None:
    """Start the server: API, dashboard, feeds, brokers and strategies."""
    from hoga.ops import serving

    settings = _settings(config, host=host, port=port)
    serving.configure_logs(settings)
    _run(lambda: serving.serve(settings, paused=paused))


@app.command()
def healthcheck(
    ready: Annotated[
        bool, typer.Option("--ready", help="ask /ready (can trade now) instead of /health (alive)")
    ] = False,
    url: Annotated[
        str | None, typer.Option(help="base URL (default: this config's HOGA_HOST/HOGA_PORT)")
    ] = None,
    timeout: Annotated[float, typer.Option(help="seconds")] = 5.0,
) -> None:
    """Ask the local server whether it is up: exit 0 if it answers 200, else 1 (one line).

    For container health checks and service monitors; needs no token."""
    from hoga.net import local_url

    commands.healthcheck(url or local_url(_settings()), ready=ready, timeout=timeout)


# ------------------------------------------------------------------ users


@user_app.command("add")
def user_add(
    name: Annotated[str, typer.Argument(help="username")],
    password: Annotated[str, typer.Option(help="initial password", prompt=True, hide_input=True)],
    tier: Annotated[str, typer.Option(help="free, basic or premium")] = "free",
    admin: Annotated[bool, typer.Option("--admin", help="make an administrator")] = False,
) -> None:
    """Add a user (with a paper account)."""
    settings = _settings()
    _run(lambda: commands.user_add(settings, name, password, tier, admin))


@user_app.command("list")
def user_list() -> None:
    """List users."""
    settings = _settings()
    _run(lambda: commands.user_list(settings))


def _update_user(name: str, **changes: Any) -> None:
    settings = _settings()
    _run(lambda: commands.user_update(settings, name, **changes))


@user_app.command("set-tier")
def user_set_tier(
    name: str, tier: Annotated[str, typer.Argument(help="free, basic or premium")]
) -> None:
    """Change a user's tier."""
    _update_user(name, tier=tier)


@user_app.command("disable")
def user_disable(name: str) -> None:
    """Disable a user (signs them out everywhere; their data stays)."""
    _update_user(name, is_active=False)


@user_app.command("enable")
def user_enable(name: str) -> None:
    """Enable a disabled user again."""
    _update_user(name, is_active=True)


@user_app.command("tiers")
def user_tiers() -> None:
    """Show the tiers and their limits."""
    settings = _settings()
    _run(lambda: commands.user_tiers(settings))


# ------------------------------------------------------------------ pause and resume


def _set_paused(paused: bool, reason: str) -> None:
    settings = _settings()
    _run(lambda: commands.set_paused(settings, paused, reason))


@app.command()
def pause(
    reason: Annotated[
        str, typer.Option(help="why (shown in the admin status)")
    ] = "paused from the command line",
) -> None:
    """Pause trading: orders are held (not sent) and strategies stop until `hoga resume`.

    Reaches a running server through the database; without one, the next start is paused."""
    _set_paused(True, reason)


@app.command()
def resume() -> None:
    """Resume trading: held orders go out and strategies that were running start again."""
    _set_paused(False, "")


# ------------------------------------------------------------------ backup and restore


@app.command()
def backup(
    out: Annotated[
        Path | None,
        typer.Option(
            "--out", help="directory for the archive (default HOGA_BACKUP_DIR, else ./backups)"
        ),
    ] = None,
) -> None:
    """Write one archive (database, key files, paper journal, manifest) - while the server runs."""
    settings = _settings()
    _run(lambda: commands.backup(settings, out))


@app.command()
def restore(
    archive: Annotated[Path, typer.Argument(help="a hoga-backup-*.tar.gz archive")],
) -> None:
    """Restore an archive into an EMPTY data dir and database; the server then starts paused."""
    settings = _settings()
    _run(lambda: commands.restore(settings, archive))


# ------------------------------------------------------------------ vault and database


@vault_app.command("rotate")
def vault_rotate() -> None:
    """Re-encrypt every stored credential under a new master key, then retire the old key.

    Safe while the server runs: the server switches to the new key (it re-reads the key file)
    before the old one is retired, and never encrypts with a retired key."""
    settings = _settings()
    _run(lambda: commands.vault_rotate(settings))


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Apply database migrations (hoga serve also does this at start-up)."""
    settings = _settings()
    _run(lambda: commands.db_upgrade(settings))


# ------------------------------------------------------------------ instrument master


@symbols_app.command("sync")
def symbols_sync(
    url: Annotated[
        str | None,
        typer.Option(help="where kospi_code.mst.zip lives (default HOGA_KIS_MASTER_URL)"),
    ] = None,
) -> None:
    """Download KIS's master files and store every listed symbol (KOSPI, KOSDAQ, ETF, ETN).

    A running server with a broker feed applies the stored master at its next start or its
    daily sync (HOGA_SYMBOLS_SYNC_AT); with HOGA_FEED=kiwoom that sync reads ka10099."""
    settings = _settings()
    _run(lambda: commands.symbols_sync(settings, url))


# ------------------------------------------------------------------ backtests (strategies branch)


@app.command()
def backtest(
    strategy: Annotated[str, typer.Option("--strategy", "-s", help="catalog kind, e.g. sma_cross")],
    symbol: Annotated[str, typer.Option(help="symbol code, e.g. 005930")],
    data: Annotated[
        Path, typer.Option(help="bars: CSV (date,open,high,low,close,volume) or Parquet")
    ],
    param: Annotated[
        list[str] | None, typer.Option("--param", "-p", help="strategy parameter NAME=VALUE")
    ] = None,
    cash: Annotated[int, typer.Option(help="starting cash, won")] = 10_000_000,
    market: Annotated[
        str | None, typer.Option(help="KOSPI, KOSDAQ, ETF... (default: from the universe)")
    ] = None,
    commission_rate: Annotated[
        str, typer.Option(help="commission as a fraction (0.00015 = 0.015%)")
    ] = "0.00015",
    as_json: Annotated[bool, typer.Option("--json", help="print the figures as JSON")] = False,
    plot: Annotated[
        Path | None, typer.Option(help="write an equity/drawdown chart: out.svg or out.html")
    ] = None,
) -> None:
    """Backtest a catalog strategy over historical bars (the same code that trades live)."""
    from hoga.backtest.command import CommandError, run_command

    try:
        run_command(
            strategy=strategy,
            symbol=symbol,
            data=data,
            params=param or [],
            cash=cash,
            market=market,
            commission_rate=commission_rate,
            as_json=as_json,
            plot=plot,
            echo=typer.echo,
        )
    except CommandError as e:
        raise fail(str(e)) from None


# ------------------------------------------------------------------ broker fakes


@app.command("fake-broker")
def fake_broker(
    broker: Annotated[str, typer.Argument(help="kis or kiwoom")],
    port: Annotated[int, typer.Option(help="listen port (0 = any free port)")] = 0,
    host: Annotated[str, typer.Option(help="listen address")] = "127.0.0.1",
    app_key: Annotated[str | None, typer.Option(help="app key of the account")] = None,
    app_secret: Annotated[str | None, typer.Option(help="app secret of the account")] = None,
    account: Annotated[str | None, typer.Option(help="account number, e.g. 50123456-01")] = None,
    env: Annotated[
        str, typer.Option(help="mock or real (hosts, tr_ids and limits differ)")
    ] = "mock",
    cash: Annotated[int, typer.Option(help="starting cash of the account, won")] = 100_000_000,
    hts_id: Annotated[str, typer.Option(help="HTS user id (KIS execution notices)")] = "hogauser",
    accounts_file: Annotated[
        Path | None,
        typer.Option(help="TOML/JSON file with more accounts (account_no, app_key, ...)"),
    ] = None,
    seed: Annotated[int, typer.Option(help="simulated market seed")] = 1,
    latency: Annotated[float, typer.Option(help="added latency per request, seconds")] = 0.0,
    error_rate: Annotated[
        float, typer.Option(help="share of requests answered with HTTP 500")
    ] = 0.0,
    journal: Annotated[
        Path | None,
        typer.Option(help="JSON-lines journal: orders and balances survive a restart"),
    ] = None,
    fault: Annotated[
        list[str] | None,
        typer.Option(
            help="order-request fault KIND=RATE or KIND=every:N (repeatable); KIND: http500 "
            "(before booking), drop, truncate, hang (booked, answer lost); seeded by --seed"
        ),
    ] = None,
    rate: Annotated[
        float | None,
        typer.Option(help="requests/s per app key (default: the broker's published limit)"),
    ] = None,
    always_open: Annotated[
        bool,
        typer.Option(
            "--always-open",
            help="trade around the clock (demos); by default the fake follows the KRX "
            "calendar and refuses orders outside the session as the broker does",
        ),
    ] = False,
    token_interval: Annotated[
        float | None,
        typer.Option(help="KIS: seconds between access-token issues per key (default 60)"),
    ] = None,
) -> None:
    """Run a local server speaking the KIS or Kiwoom protocol (a sandbox for adapters)."""
    from hoga.fakes import FakeAccount, FakeOptions, run_fake
    from hoga.fakes.faults import FaultPlan
    from hoga.fakes.journal import JournalError

    if broker not in ("kis", "kiwoom"):
        raise fail("broker must be kis or kiwoom")
    if env not in ("mock", "real"):
        raise fail("env must be mock or real")
    accounts = []
    if account or app_key or app_secret:
        if not (account and app_key and app_secret):
            raise fail("--account, --app-key and --app-secret go together")
        accounts.append(FakeAccount(account, app_key, app_secret, cash, hts_id))
    if not accounts and accounts_file is None:
        raise fail("give --account/--app-key/--app-secret or --accounts-file")
    faults = tuple(fault or ())
    try:
        FaultPlan.parse(faults, seed=seed)
    except ValueError as e:
        raise fail(str(e)) from None
    if rate is not None and rate <= 0:
        raise fail("--rate must be above 0")
    from hoga import logs

    logs.configure("info")
    options = FakeOptions(
        broker=broker,
        host=host,
        port=port,
        env=env,
        accounts=accounts,
        accounts_file=accounts_file,
        seed=seed,
        latency=latency,
        error_rate=error_rate,
        journal=journal,
        faults=faults,
        rate=rate,
        always_open=always_open,
        token_interval=token_interval,
    )
    try:
        run_fake(options)
    except ModuleNotFoundError:
        raise fail(f"the {broker} fake is not available in this build") from None
    except JournalError as e:
        raise fail(f"the {broker} fake's journal cannot be read: {e}") from None
    except OSError as e:
        raise fail(f"cannot start the {broker} fake on {host}:{port}: {e.strerror or e}") from None


def main() -> None:
    try:
        app()
    except typer.Exit as e:
        sys.exit(e.exit_code)
