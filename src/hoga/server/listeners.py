"""The callbacks the server's parts call back into it with: resuming after a pause (the server
control's ``on_resume``), sign-in changes and new users (the auth service), the dispatcher's
sender and the health monitor's question about realtime sessions."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from hoga.execution.queue import QueueItem

if TYPE_CHECKING:
    from hoga.app import HogaApp

# The records keep the composition root's logger name (operators filter on it).
log = logging.getLogger("hoga.app")


async def resume(app: HogaApp) -> None:
    """Resume sending and the strategies; a server started paused first opens its broker
    sessions and catches up with the brokers (in cluster mode: the owned users')."""
    if app.cluster is not None and not app._brokers_attached and app._started:
        app._brokers_attached = True
        app.accounts.attaching = True
        await app.cluster.resume()
        await app.reconciler.start()
    elif not app._brokers_attached and app._started:
        # Started paused: open the broker sessions and catch up with the brokers first.
        app._brokers_attached = True
        await app.accounts.attach_all()
        await app.reconciler.reconcile_all()
        await app.reconciler.start()
    await app.live_strategies.resume()
    app.dispatcher.wake_all()


async def on_auth_change(app: HogaApp, change: Any) -> None:
    """A user disabled (by any process): stop their strategies and withdraw their queue."""
    from hoga.store.repos.auth_changes import USER_DISABLED

    if change.kind == USER_DISABLED:
        await app.live_strategies.disable_user(
            change.user_id, "사용자가 비활성화되어 중지했습니다 (user disabled)"
        )
        withdrawn = await app.orders.withdraw_queued(change.user_id)
        if withdrawn:
            log.info("user %s disabled: %d queued orders withdrawn", change.user_id, withdrawn)


async def on_user_created(app: HogaApp, user: Any) -> None:
    """Every new user gets a paper account."""
    await app.accounts.create_paper_account(user)


async def send(app: HogaApp, item: QueueItem) -> None:
    """The dispatcher's sender: records the request's wait in the queue, then sends."""
    if app.cluster is not None and not app.cluster.may_send(item.user_id):
        return  # the user's owner changed: the request waits in the database for it
    app.metrics.queue_wait.labels(item.priority.label, item.kind.value).observe(
        max(0.0, app.clock.monotonic() - item.enqueued_at)
    )
    await app.orders.send(item)


def realtime_state(app: HogaApp, broker: str, account_id: int) -> bool | None:
    """Whether an account's realtime session (execution notices) is up; None when it has
    none to keep (the paper broker, an account without notices)."""
    state = getattr(app.raw_brokers.get(broker), "realtime_state", None)
    return state(account_id) if state is not None else None
