"""The ``hoga`` command: serve, users, the vault, the database, backtests, broker fakes.

Every failure a person can fix prints one line saying what to fix and exits non-zero; a
traceback appears only with ``--debug``.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import socket
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer

from hoga import __version__
from hoga.config import ConfigError, Settings, load_settings

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


def fail(message: str, code: int = 1) -> typer.Exit:
    typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)
    return typer.Exit(code)


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


def _bind(host: str, port: int) -> socket.socket:
    from hoga.net import bind_listener

    try:
        return bind_listener(host, port)
    except OSError as e:
        if e.errno == errno.EADDRINUSE:
            raise fail(
                f"port {port} on {host} is already in use; stop the other process or set HOGA_PORT"
            ) from None
        if e.errno in (errno.EADDRNOTAVAIL, errno.EAFNOSUPPORT):
            raise fail(f"cannot listen on {host}: no such local address; check HOGA_HOST") from None
        if e.errno == errno.EACCES:
            raise fail(f"no permission to listen on port {port}; use a port above 1023") from None
        raise fail(f"cannot listen on {host}:{port}: {e.strerror}") from None


def _configure_logs(settings: Settings) -> None:
    from hoga import logs

    logs.configure(
        settings.log_level,
        fmt=settings.log_format,
        file=settings.log_file,
        file_max_bytes=settings.log_file_max_bytes,
        file_keep=settings.log_file_keep,
        repeat_window=settings.log_repeat_window,
    )


def _quiet_exit_server() -> type:
    import uvicorn

    class QuietExitServer(uvicorn.Server):
        """uvicorn's server without re-raising the signal after a graceful shutdown: for hoga,
        Ctrl-C or SIGTERM is the normal way to stop, and it exits 0."""

        def handle_exit(self, sig: int, frame: Any) -> None:
            super().handle_exit(sig, frame)
            self._captured_signals.clear()

    return QuietExitServer


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
    settings = _settings(config, host=host, port=port)
    _configure_logs(settings)

    async def run() -> None:
        import uvicorn

        from hoga.app import HogaApp

        _QuietExitServer = _quiet_exit_server()

        from hoga.store.wait import retry_unreachable

        hoga = HogaApp(settings, start_paused=paused)
        # HOGA_DATABASE_WAIT: in a container the database may still be starting.
        await retry_unreachable(hoga.acquire_guard, settings.database_wait)
        try:
            sock = _bind(settings.host, settings.port)
        except BaseException:
            await hoga.stop()
            raise
        try:
            await hoga.start()
        except BaseException:
            sock.close()
            await hoga.stop()
            raise
        if hoga.admin_password_generated:
            typer.secho(
                f"\n  First start: created admin account '{settings.admin_username}' with password\n\n"
                f"      {hoga.admin_password_generated}\n\n"
                "  It is shown only this once. Sign in and change it (or set HOGA_ADMIN_PASSWORD next time).\n",
                fg=typer.colors.YELLOW,
            )
        shown_host = settings.host if ":" not in settings.host else f"[{settings.host}]"
        actual_port = sock.getsockname()[1]
        sim = (
            " - SIMULATED market (demo)"
            if settings.feed == "simulator" and settings.market_mode == "demo"
            else ""
        )
        typer.echo(
            f"hoga {__version__} serving on http://{shown_host}:{actual_port}{sim}", err=True
        )
        if hoga.control.paused:
            typer.secho(
                "  PAUSED: no order goes to a broker and no strategy runs until `hoga resume` "
                "(or POST /api/admin/resume)",
                fg=typer.colors.YELLOW,
                err=True,
            )
        server = _QuietExitServer(
            uvicorn.Config(
                hoga.api,
                log_level=settings.log_level,
                access_log=False,
                lifespan="off",
                timeout_graceful_shutdown=3,
                ws="websockets-sansio",
                log_config=None,
                # uvicorn would believe X-Forwarded-For from 127.0.0.1; hoga resolves client
                # addresses itself from HOGA_TRUSTED_PROXIES (security/proxies.py).
                proxy_headers=False,
                server_header=False,
                # Control messages are small JSON; a bigger frame closes the socket (1009).
                ws_max_size=64 * 1024,
            )
        )
        try:
            await server.serve(sockets=[sock])
        finally:
            await hoga.stop()
            typer.echo("hoga stopped", err=True)

    _run(run)


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

    base = url or local_url(_settings())
    target = base.rstrip("/") + ("/ready" if ready else "/health")
    import httpx

    try:
        r = httpx.get(target, timeout=timeout)
    except httpx.HTTPError as e:
        raise fail(f"{target}: {type(e).__name__}: {str(e) or 'no answer'}") from None
    if r.status_code != 200:
        status = ""
        with contextlib.suppress(ValueError, AttributeError):
            status = f" ({r.json().get('status')})"
        raise fail(f"{target}: HTTP {r.status_code}{status}")
    typer.echo(f"ok: {target}")


# ------------------------------------------------------------------ users


async def _admin_ctx(settings: Settings) -> Any:
    from hoga.app import AdminContext

    ctx = AdminContext(settings)
    await ctx.start()
    return ctx


@user_app.command("add")
def user_add(
    name: Annotated[str, typer.Argument(help="username")],
    password: Annotated[str, typer.Option(help="initial password", prompt=True, hide_input=True)],
    tier: Annotated[str, typer.Option(help="free, basic or premium")] = "free",
    admin: Annotated[bool, typer.Option("--admin", help="make an administrator")] = False,
) -> None:
    """Add a user (with a paper account)."""
    settings = _settings()

    async def run() -> None:
        ctx = await _admin_ctx(settings)
        try:
            user = await ctx.auth.create_user(
                name, password, tier, is_admin=admin, actor_id=None, ip="cli"
            )
        finally:
            await ctx.close()
        typer.echo(
            f"created user {user.username} (id {user.id}, tier {user.tier}{', admin' if admin else ''})"
        )

    _run(run)


@user_app.command("list")
def user_list() -> None:
    """List users."""
    settings = _settings()

    async def run() -> None:
        from rich.console import Console
        from rich.table import Table

        ctx = await _admin_ctx(settings)
        try:
            users = await ctx.auth.list_users()
        finally:
            await ctx.close()
        table = Table("id", "username", "tier", "admin", "active", "2FA", "trading")
        for u in users:
            table.add_row(
                str(u.id),
                u.username,
                u.tier,
                "yes" if u.is_admin else "",
                "yes" if u.is_active else "no",
                "on" if u.totp_enabled else "",
                u.trading_state,
            )
        Console().print(table)

    _run(run)


def _update_user(name: str, **changes: Any) -> None:
    settings = _settings()

    async def run() -> None:
        ctx = await _admin_ctx(settings)
        try:
            user = await ctx.auth.find_user(name)
            user = await ctx.auth.admin_update(user.id, actor_id=None, ip="cli", **changes)
        finally:
            await ctx.close()
        typer.echo(
            f"{user.username}: tier {user.tier}, {'active' if user.is_active else 'disabled'}"
        )

    _run(run)


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

    async def run() -> None:
        ctx = await _admin_ctx(settings)
        try:
            tiers = await ctx.auth.list_tiers()
        finally:
            await ctx.close()
        for t in tiers:
            typer.echo(
                f"{t.name:8} trades/day {t.daily_trades:4}  strategies {t.max_strategies}  "
                f"positions {t.max_positions:3}  priority {t.priority}"
            )

    _run(run)


# ------------------------------------------------------------------ pause and resume


def _set_paused(paused: bool, reason: str) -> None:
    settings = _settings()

    async def run() -> None:
        import getpass

        from hoga.execution.control import applied_pause, write_pause
        from hoga.store.instance_lock import running_server

        ctx = await _admin_ctx(settings)
        try:
            await write_pause(
                ctx.db,
                ctx.clock,
                paused,
                reason=reason,
                by=f"hoga {'pause' if paused else 'resume'} ({getpass.getuser()}@{socket.gethostname()})",
            )
            word = "paused" if paused else "resumed"
            holder = await running_server(Path(settings.data_dir), settings.sqlalchemy_url)
            if holder is None:
                typer.echo(
                    f"{word}: no server is running; the next `hoga serve` starts "
                    + ("paused" if paused else "normally")
                )
                return
            # The server re-reads the state every 2 s and records what it applied.
            for _ in range(150):
                applied = await applied_pause(ctx.db)
                if applied is not None and bool(applied.get("paused")) == paused:
                    typer.echo(f"{word}: the running server ({holder.describe()}) applied it")
                    return
                await asyncio.sleep(0.1)
        finally:
            await ctx.close()
        raise fail(
            f"recorded, but the running server ({holder.describe()}) has not applied it "
            "within 15 s; check its log"
        )

    _run(run)


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

    async def run() -> None:
        from hoga.ops.backup import BackupError, create_backup

        target = out or settings.backup_dir or Path("backups")
        try:
            result = await create_backup(settings, target)
        except BackupError as e:
            raise fail(str(e)) from None
        m = result.manifest
        typer.echo(
            f"backup written: {result.path} ({m['database']}, schema {m['schema_revision']}, "
            f"{len(m['files'])} files)"
        )
        if m["master_key"] == "environment":
            typer.secho(
                "  the vault key comes from HOGA_MASTER_KEY and is NOT in the archive: keep it safe",
                fg=typer.colors.YELLOW,
            )

    _run(run)


@app.command()
def restore(
    archive: Annotated[Path, typer.Argument(help="a hoga-backup-*.tar.gz archive")],
) -> None:
    """Restore an archive into an EMPTY data dir and database; the server then starts paused."""
    settings = _settings()

    async def run() -> None:
        from hoga.ops.backup import BackupError
        from hoga.ops.restore import restore_backup

        try:
            result = await restore_backup(settings, archive)
        except BackupError as e:
            raise fail(str(e)) from None
        m = result.manifest
        typer.echo(
            f"restored {archive.name} (made {m['created_at']} by hoga {m['hoga_version']}): "
            f"{result.rows.get('users', 0)} users, {result.rows.get('orders', 0)} orders; "
            f"{result.credentials_verified} vault records decrypt"
        )
        typer.secho(
            "  the server starts PAUSED: check it, then `hoga resume` (or POST /api/admin/resume)",
            fg=typer.colors.YELLOW,
        )

    _run(run)


# ------------------------------------------------------------------ vault and database


@vault_app.command("rotate")
def vault_rotate() -> None:
    """Re-encrypt every stored credential under a new master key, then retire the old key.

    Safe while the server runs: the server switches to the new key (it re-reads the key file)
    before the old one is retired, and never encrypts with a retired key."""
    settings = _settings()

    async def run() -> None:
        from hoga.execution.vault_rotation import rotate_vault_keys
        from hoga.store.instance_lock import running_server

        ctx = await _admin_ctx(settings)
        try:
            holder = await running_server(Path(settings.data_dir), settings.sqlalchemy_url)
            done = await rotate_vault_keys(
                ctx.db, ctx.vault, ctx.accounts, ctx.clock, server_running=holder is not None
            )
        finally:
            await ctx.close()
        typer.echo(
            f"re-encrypted {done.reencrypted} secrets under key {done.new_key}"
            + (f"; retired {', '.join(done.retired)}" if done.retired else "")
        )
        if done.kept_in_env:
            typer.echo(
                f"remove {', '.join(done.kept_in_env)} from HOGA_MASTER_KEY when you next "
                "restart (nothing is encrypted with them any more)"
            )

    _run(run)


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Apply database migrations (hoga serve also does this at start-up)."""
    settings = _settings()

    async def run() -> None:
        from hoga.store.db import Database

        db = Database(settings.sqlalchemy_url, **settings.database_options())
        applied = await db.migrate()
        typer.echo(f"applied {', '.join(applied)}" if applied else "database is up to date")

    _run(run)


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

    async def run() -> None:
        from hoga.brokers.kis.master import KisMasterSource, MasterError
        from hoga.marketdata.instruments import InstrumentService, SyncRefused
        from hoga.marketdata.universe import Universe, bundled_universe

        ctx = await _admin_ctx(settings)
        try:
            svc = InstrumentService(ctx.db, ctx.clock, Universe(bundled_universe()), apply=False)
            try:
                res = await svc.sync(KisMasterSource(url or settings.kis_master_url))
            except (MasterError, SyncRefused) as e:
                raise fail(f"symbols sync failed: {e}") from None
        finally:
            await ctx.close()
        typer.echo(
            f"stored {res.symbols} symbols from {res.source} "
            f"({res.halted} halted, {res.designated} designated)"
        )

    _run(run)


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
