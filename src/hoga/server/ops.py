"""The operations side of a server: the metrics collector, notifications, scheduled backups
and alerts, and the optional ``/metrics`` listener."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from hoga.app import HogaApp


def init(app: HogaApp) -> None:
    """Metrics collector, notifications, scheduled backups and alerts (the ops branch)."""
    from hoga.notify.service import Notifier
    from hoga.ops.alerts import AlertWatch
    from hoga.ops.metrics import AppCollector
    from hoga.ops.watch import OpsWatch

    app.metrics_collector = AppCollector(app)
    app.metrics.registry.register(app.metrics_collector)
    app.metrics_listener = None
    app.notifier = Notifier(
        app.db,
        app.vault,
        app.clock,
        on_result=lambda kind, result: app.metrics.notifications.labels(kind, result).inc(),
    )
    # Events reach the notifier through the bus (a put_nowait on its queue), never the
    # order path itself; broker health reports accounts going down and coming back.
    app.bus.add_hook(app.notifier.on_event)
    app.alerts = AlertWatch(app, app.notifier)
    app.health.on_down.append(app.alerts.on_broker_down)
    app.health.on_recovered.append(app.alerts.on_broker_up)
    app.ops_watch = OpsWatch(
        app.settings,
        app.clock,
        app.admin_alert,
        on_backup=lambda result: app.metrics.backups.labels(result).inc(),
    )


async def start(app: HogaApp) -> None:
    """Start the notifier, the backup and alert watches and the ``/metrics`` listener."""
    await app.notifier.start()
    loop = asyncio.get_running_loop()
    app._background.append(loop.create_task(app.ops_watch.run(), name="ops-watch"))
    app._background.append(loop.create_task(app.alerts.run(), name="alert-watch"))
    if app.settings.metrics_address:
        from hoga.ops.metrics import MetricsListener

        app.metrics_listener = MetricsListener(app, app.settings.metrics_address)
        await app.metrics_listener.start()


async def stop(app: HogaApp) -> None:
    """Stop the alert watch, the notifier and the ``/metrics`` listener."""
    await app.alerts.stop()
    await app.notifier.stop()
    if app.metrics_listener is not None:
        await app.metrics_listener.stop()
        app.metrics_listener = None
