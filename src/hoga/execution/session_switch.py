"""Switching a one-login gateway's session (``capacity == 1``, such as Kiwoom OpenAPI+ through
hoga-bridge) without starving URGENT requests: the dispatcher's session loop
(``Dispatcher._run_session``) decides *when* to switch, prepare or activate
(``execution/scheduling.py``); this module does the switch and the standby login themselves.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Protocol

from hoga.brokers.base import AccountRef
from hoga.domain.orders import Priority
from hoga.execution.queue import OrderQueue
from hoga.execution.scheduling import SessionState


class SessionBroker(Protocol):
    """A broker whose gateway holds one logged-in account at a time."""

    async def switch_session(self, account: AccountRef) -> None: ...

    async def prepare_session(self, account: AccountRef) -> None: ...

    async def activate_session(self, account: AccountRef) -> None: ...


async def switch(
    broker: SessionBroker, ref: AccountRef, queue: OrderQueue, gateway: str, wake: asyncio.Event
) -> bool:
    """Switch the session to ``ref``'s account, watching the queue meanwhile: a switch takes
    seconds, and an URGENT request of another account arriving during it would otherwise
    wait for this switch and then its own. Such a switch is abandoned (the task is
    cancelled; the adapter stops the login) and False returned, unless the account being
    switched to has an URGENT request itself. ``wake`` is set whenever the queue changes."""
    task = asyncio.get_running_loop().create_task(broker.switch_session(ref))
    try:
        while not task.done():
            wake.clear()
            waiter = asyncio.get_running_loop().create_task(wake.wait())
            try:
                await asyncio.wait({task, waiter}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                waiter.cancel()
            if not task.done() and urgent_elsewhere(queue, gateway, ref.account_id):
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
                return False
    except asyncio.CancelledError:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task
        raise
    task.result()
    return True


def urgent_elsewhere(queue: OrderQueue, gateway: str, target: int) -> bool:
    """Whether another account than ``target`` has an URGENT request at its head and
    ``target`` has none."""
    head = queue.peek(gateway, target)
    if head is not None and head.priority == Priority.URGENT:
        return False
    other = queue.best_account(gateway, exclude=target)
    other_head = queue.peek(gateway, other) if other is not None else None
    return other_head is not None and other_head.priority == Priority.URGENT


async def prepare(
    broker: SessionBroker, ref: AccountRef, s: SessionState, wake: asyncio.Event
) -> None:
    """Log the standby account in ahead of its turn; it is ready from now if still the
    standby."""
    await broker.prepare_session(ref)
    if s.standby == ref.account_id:
        s.standby_ready_at = asyncio.get_running_loop().time()
    wake.set()
