"""Booking reads a position with a row lock (PostgreSQL): two processes booking the same
position one after the other must both count. Found with hand settlements: the CLI books
outside the server's in-process account lock (and in cluster mode an API call on another
server does too), so a read-modify-write without the lock lost the first booking."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from hoga.domain.portfolio import Position
from hoga.store.db import SYSTEM
from hoga.store.repos import accounts as accounts_repo
from hoga.store.repos import ledger
from tests.helpers import running

pytestmark = pytest.mark.postgres


async def test_a_second_booking_waits_for_the_first_and_sees_its_position(
    tmp_path: Path, pg_url: str
) -> None:
    async with running(tmp_path, pg_url) as h:
        await h.user("sue")
        uid = (await h.hoga.auth.find_user("sue")).id
        db, now = h.hoga.db, h.hoga.clock.now()
        async with db.tx(SYSTEM) as conn:
            paper = await accounts_repo.paper_account(conn, uid)
            assert paper is not None
            aid = paper.id
            await ledger.save_position(conn, uid, aid, "005930", Position(1, 70_000), now)

        first_read = asyncio.Event()
        release_first = asyncio.Event()

        async def book(qty: int, hold: bool) -> None:
            async with db.tx(SYSTEM) as conn:
                pos = await ledger.position(conn, uid, aid, "005930", for_update=True)
                if hold:
                    first_read.set()
                    await release_first.wait()
                new = Position(pos.qty + qty, pos.cost + qty * 70_000)
                await ledger.save_position(conn, uid, aid, "005930", new, now)

        first = asyncio.create_task(book(5, hold=True))
        await first_read.wait()
        second = asyncio.create_task(book(3, hold=False))
        # The second booking is blocked on the row lock while the first is open.
        done, _ = await asyncio.wait({second}, timeout=0.5)
        assert not done
        release_first.set()
        await asyncio.gather(first, second)
        async with db.tx(SYSTEM) as conn:
            final = await ledger.position(conn, uid, aid, "005930")
        assert final.qty == 1 + 5 + 3
