"""Waiting for a database that is not up yet (``HOGA_DATABASE_WAIT``).

In a container set-up the database often starts after hoga; ``hoga serve`` then retries the
first connection with back-off (0.5 s doubling to 5 s) until the wait is used up, and fails
with the database's last one-line error after that. Only "cannot reach it" is retried: a second
server holding the lock, a wrong schema or bad settings fail at once.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

from hoga.store.db import DatabaseUnavailable

log = logging.getLogger(__name__)
T = TypeVar("T")


async def retry_unreachable(
    attempt: Callable[[], Awaitable[T]],
    wait: float,
    *,
    first_delay: float = 0.5,
    max_delay: float = 5.0,
    monotonic: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> T:
    """Run ``attempt`` until it does not raise ``DatabaseUnavailable`` or ``wait`` s have passed.

    The last error propagates unchanged once the time is up (``wait`` = 0: at once)."""
    deadline = monotonic() + wait
    delay = first_delay
    tries = 0
    while True:
        tries += 1
        try:
            return await attempt()
        except DatabaseUnavailable as e:
            left = deadline - monotonic()
            if left <= 0:
                raise
            if tries == 1:
                log.warning("waiting up to %.0f s for the database: %s", wait, e.message)
            await sleep(min(delay, left))
            delay = min(delay * 2, max_delay)
