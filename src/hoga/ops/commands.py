"""The bodies of the operator commands: users, pause and resume, backup and restore, the
vault, the database and the instrument master (``cli.py`` declares their options).

Contract: commands that change a server's data go through an ``AdminContext`` - the same core
``HogaApp`` builds, safe beside a running server: it checks the schema revision and never
migrates. Each prints one line of result; a failure the operator can fix raises ``fail``.
"""

from __future__ import annotations

import asyncio
import contextlib
import getpass
import socket
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import typer

from hoga.config import Settings
from hoga.ops.console import fail, warn


@asynccontextmanager
async def admin_context(settings: Settings) -> AsyncIterator[Any]:
    """An ``AdminContext`` for the length of one command."""
    from hoga.server.admin import AdminContext

    ctx = AdminContext(settings)
    await ctx.start()
    try:
        yield ctx
    finally:
        await ctx.close()


# ------------------------------------------------------------------ health


def healthcheck(base: str, *, ready: bool, timeout: float) -> None:
    """Ask the server at ``base`` for /health (or /ready); a non-200 answer or none fails."""
    import httpx

    target = base.rstrip("/") + ("/ready" if ready else "/health")
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


async def user_add(settings: Settings, name: str, password: str, tier: str, admin: bool) -> None:
    async with admin_context(settings) as ctx:
        user = await ctx.auth.create_user(
            name, password, tier, is_admin=admin, actor_id=None, ip="cli"
        )
    typer.echo(
        f"created user {user.username} (id {user.id}, tier {user.tier}{', admin' if admin else ''})"
    )


async def user_list(settings: Settings) -> None:
    from rich.console import Console
    from rich.table import Table

    async with admin_context(settings) as ctx:
        users = await ctx.auth.list_users()
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


async def user_update(settings: Settings, name: str, **changes: Any) -> None:
    async with admin_context(settings) as ctx:
        user = await ctx.auth.find_user(name)
        user = await ctx.auth.admin_update(user.id, actor_id=None, ip="cli", **changes)
    typer.echo(f"{user.username}: tier {user.tier}, {'active' if user.is_active else 'disabled'}")


async def user_tiers(settings: Settings) -> None:
    async with admin_context(settings) as ctx:
        tiers = await ctx.auth.list_tiers()
    for t in tiers:
        typer.echo(
            f"{t.name:8} trades/day {t.daily_trades:4}  strategies {t.max_strategies}  "
            f"positions {t.max_positions:3}  priority {t.priority}"
        )


# ------------------------------------------------------------------ orders


async def order_settle(
    settings: Settings,
    order_id: int,
    outcome: str,
    qty: int | None,
    price: int | None,
    reason: str,
) -> None:
    """Settle by hand an order stuck UNKNOWN (``execution/settling.py``). Beside a running
    server this is safe: the server keeps nothing of an UNKNOWN order in memory and re-reads
    it before any change (its reconciler no longer lists it once settled)."""
    from hoga.execution.settling import HandSettlement

    async with admin_context(settings) as ctx:
        settle = HandSettlement(ctx.db, ctx.clock, await _instruments(ctx.db))
        order = await settle.settle_by_hand(
            order_id,
            outcome,
            filled_qty=qty,
            avg_price=price,
            reason=reason,
            actor_id=None,
            ip="cli",
            by=f"hoga order settle ({getpass.getuser()}@{socket.gethostname()})",
        )
    typer.echo(
        f"order {order.id}: {order.status.value}, {order.filled_qty}/{order.qty} filled"
        + (f" at {order.avg_fill_price} won" if order.filled_qty else "")
        + f", reserve {order.reserved_cash} won"
    )


async def _instruments(db: Any) -> Callable[[str], Any]:
    """Symbol lookup outside the server (the CLI): the stored instrument master where one
    was synced, else the bundled universe - the same sources the server's quotes use."""
    from hoga.marketdata.universe import bundled_universe
    from hoga.store.db import SYSTEM
    from hoga.store.repos import instruments as instruments_repo

    async with db.tx(SYSTEM) as conn:
        listings = await instruments_repo.load_all(conn)
    known = {i.symbol: i for i in bundled_universe()}
    known.update({x.symbol: x.instrument() for x in listings})
    return known.get


# ------------------------------------------------------------------ pause and resume


async def set_paused(settings: Settings, paused: bool, reason: str) -> None:
    """Record the pause state and wait (15 s at most) for a running server to apply it."""
    from hoga.execution.control import applied_pause, write_pause
    from hoga.store.instance_lock import running_server

    async with admin_context(settings) as ctx:
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
    raise fail(
        f"recorded, but the running server ({holder.describe()}) has not applied it "
        "within 15 s; check its log"
    )


# ------------------------------------------------------------------ backup and restore


@contextlib.contextmanager
def _archive_failures() -> Iterator[None]:
    """A backup's or restore's ``BackupError`` as the command's one-line failure."""
    from hoga.ops.backup import BackupError

    try:
        yield
    except BackupError as e:
        raise fail(str(e)) from None


async def backup(settings: Settings, out: Path | None) -> None:
    from hoga.ops.backup import create_backup

    target = out or settings.backup_dir or Path("backups")
    with _archive_failures():
        result = await create_backup(settings, target)
    m = result.manifest
    typer.echo(
        f"backup written: {result.path} ({m['database']}, schema {m['schema_revision']}, "
        f"{len(m['files'])} files)"
    )
    if m["master_key"] == "environment":
        warn("  the vault key comes from HOGA_MASTER_KEY and is NOT in the archive: keep it safe")


async def restore(settings: Settings, archive: Path) -> None:
    from hoga.ops.restore import restore_backup

    with _archive_failures():
        result = await restore_backup(settings, archive)
    m = result.manifest
    typer.echo(
        f"restored {archive.name} (made {m['created_at']} by hoga {m['hoga_version']}): "
        f"{result.rows.get('users', 0)} users, {result.rows.get('orders', 0)} orders; "
        f"{result.credentials_verified} vault records decrypt"
    )
    warn("  the server starts PAUSED: check it, then `hoga resume` (or POST /api/admin/resume)")


# ------------------------------------------------------------------ vault, database, symbols


async def vault_rotate(settings: Settings) -> None:
    from hoga.execution.vault_rotation import rotate_vault_keys
    from hoga.store.instance_lock import running_server

    async with admin_context(settings) as ctx:
        holder = await running_server(Path(settings.data_dir), settings.sqlalchemy_url)
        done = await rotate_vault_keys(
            ctx.db, ctx.vault, ctx.accounts, ctx.clock, server_running=holder is not None
        )
    typer.echo(
        f"re-encrypted {done.reencrypted} secrets under key {done.new_key}"
        + (f"; retired {', '.join(done.retired)}" if done.retired else "")
    )
    if done.kept_in_env:
        typer.echo(
            f"remove {', '.join(done.kept_in_env)} from HOGA_MASTER_KEY when you next "
            "restart (nothing is encrypted with them any more)"
        )


async def db_upgrade(settings: Settings) -> None:
    from hoga.store.db import Database

    db = Database(settings.sqlalchemy_url, **settings.database_options())
    applied = await db.migrate()
    typer.echo(f"applied {', '.join(applied)}" if applied else "database is up to date")


async def symbols_sync(settings: Settings, url: str | None) -> None:
    from hoga.brokers.kis.master import KisMasterSource, MasterError
    from hoga.marketdata.instruments import InstrumentService, SyncRefused
    from hoga.marketdata.universe import Universe, bundled_universe

    async with admin_context(settings) as ctx:
        svc = InstrumentService(ctx.db, ctx.clock, Universe(bundled_universe()), apply=False)
        try:
            res = await svc.sync(KisMasterSource(url or settings.kis_master_url))
        except (MasterError, SyncRefused) as e:
            raise fail(f"symbols sync failed: {e}") from None
    typer.echo(
        f"stored {res.symbols} symbols from {res.source} "
        f"({res.halted} halted, {res.designated} designated)"
    )
