"""``hoga serve``: bind the port, start a ``HogaApp``, serve HTTP until a signal, stop cleanly.

Contract: the data dir's guard is acquired (waiting up to ``HOGA_DATABASE_WAIT`` for the
database) before the port is bound, and the port before anything starts, so a second server
or a busy port fails with one line and nothing half-started; whatever started is stopped on
every way out. Ctrl-C and SIGTERM are the normal way to stop and exit 0.
"""

from __future__ import annotations

import errno
import gc
import socket
from typing import Any

import typer

from hoga import __version__
from hoga.config import Settings
from hoga.ops.console import fail, warn


def bind(host: str, port: int) -> socket.socket:
    """The listening socket, or a one-line failure that says what to fix."""
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


def settle_heap() -> None:
    """Move everything start-up built (modules, routes, caches, the market, the books) out of
    the collector's reach (``gc.freeze``), so the full collections that the heap's growth
    triggers while serving scan only what was made since, not the whole process: a full
    collection of the started server's heap stalled the event loop for tens of milliseconds,
    every request queued behind it (issue 13). Objects frozen are still freed by reference
    counting; only cycles among them are left for good, and start-up makes few. The
    thresholds stay CPython's: young collections measured at a few milliseconds at most."""
    gc.collect()
    gc.freeze()


def configure_logs(settings: Settings) -> None:
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


async def serve(settings: Settings, *, paused: bool) -> None:
    """Run the server until it is told to stop; see the module docstring."""
    import uvicorn

    from hoga.app import HogaApp

    _QuietExitServer = _quiet_exit_server()

    from hoga.store.wait import retry_unreachable

    hoga = HogaApp(settings, start_paused=paused)
    # HOGA_DATABASE_WAIT: in a container the database may still be starting.
    await retry_unreachable(hoga.acquire_guard, settings.database_wait)
    try:
        sock = bind(settings.host, settings.port)
    except BaseException:
        await hoga.stop()
        raise
    try:
        await hoga.start()
    except BaseException:
        sock.close()
        await hoga.stop()
        raise
    settle_heap()
    if hoga.admin_password_generated:
        warn(
            f"\n  First start: created admin account '{settings.admin_username}' with password\n\n"
            f"      {hoga.admin_password_generated}\n\n"
            "  It is shown only this once. Sign in and change it (or set HOGA_ADMIN_PASSWORD next time).\n"
        )
    shown_host = settings.host if ":" not in settings.host else f"[{settings.host}]"
    actual_port = sock.getsockname()[1]
    sim = (
        " - SIMULATED market (demo)"
        if settings.feed == "simulator" and settings.market_mode == "demo"
        else ""
    )
    typer.echo(f"hoga {__version__} serving on http://{shown_host}:{actual_port}{sim}", err=True)
    if hoga.control.paused:
        warn(
            "  PAUSED: no order goes to a broker and no strategy runs until `hoga resume` "
            "(or POST /api/admin/resume)",
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
            # Compressing each small quote for each socket cost more CPU than building and
            # encoding it (docs/benchmarks.md, fan-out); HOGA_WS_COMPRESSION turns it on.
            ws_per_message_deflate=settings.ws_compression,
        )
    )
    try:
        await server.serve(sockets=[sock])
    finally:
        await hoga.stop()
        typer.echo("hoga stopped", err=True)
