"""The order pipeline when the database fails under it (a full SQLite disk, a terminated
PostgreSQL connection): the queue and the database never disagree, nothing is half-booked, the
API answers 503 with a code that says what happened, and everything resumes by itself."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from hoga.domain import krx
from hoga.domain.errors import StorageFull
from hoga.store.db import SYSTEM, Actor
from hoga.store.repos import ledger
from tests.faults import pg_kills, pg_terminate_on, sqlite_full_on_insert, sqlite_space_again
from tests.helpers import Harness, eventually, running, running_unanswered


@asynccontextmanager
async def _trading(
    tmp_path: Path, url: str, name: str
) -> AsyncIterator[tuple[Harness, dict[str, str]]]:
    """A running server, one basic user's headers, and a market that has traded a while."""
    async with running(tmp_path, url) as h:
        u = await h.user(name, "basic")
        h.pump(300)
        yield h, u


async def _accepted(h: Harness, u: dict[str, str], qty: int) -> dict[str, Any]:
    """Post a market order and return the accepted (202) answer."""
    r = await h.post_order(u, qty=qty)
    assert r.status_code == 202, r.text
    data: dict[str, Any] = r.json()
    return data


async def _fault(h: Harness, table: str, event: str, when: str) -> None:
    async with h.hoga.db.tx(SYSTEM) as conn:
        await sqlite_full_on_insert(conn, table, event=event, when=when)


async def _heal(h: Harness, table: str) -> None:
    async with h.hoga.db.tx(SYSTEM) as conn:
        await sqlite_space_again(conn, table)


async def _books(h: Harness, uid: int, account: int, oid: int) -> tuple[Any, Any, int, int]:
    """The order's fills, the account's positions, its cash and its ledger's sum."""
    async with h.hoga.db.tx(Actor.user(uid)) as conn:
        return (
            await ledger.fills(conn, uid, order_id=oid),
            await ledger.positions(conn, uid, account),
            await ledger.cash(conn, uid, account),
            await ledger.ledger_sum(conn, uid, account),
        )


async def _queue_status(h: Harness, headers: dict[str, str]) -> dict[str, Any]:
    return await h.get_json("/api/queue-status", headers)


async def test_sqlite_full_at_the_claim_keeps_the_order_queued_and_visible(
    tmp_path: Path, sqlite_url: str
) -> None:
    async with _trading(tmp_path, sqlite_url, "ann") as (h, u):
        await _fault(h, "orders", "UPDATE", "NEW.status = 'SUBMITTING'")
        oid = (await _accepted(h, u, qty=2))["id"]

        async def claim_failed() -> bool:
            return any(i.order_id == oid and i.attempts >= 1 for i in h.hoga.queue.items())

        await eventually(claim_failed, 10.0, "the claim to meet the full disk")
        # The database says QUEUED, and so does the queue: visible, and retried.
        status = await _queue_status(h, u)
        assert status["queue_size"] == 1
        assert [q["order_id"] for q in status["queued"]] == [oid]
        assert (await h.order(u, oid))["status"] == "QUEUED"
        await _heal(h, "orders")
        done = await h.wait_status(u, oid, "FILLED")
        assert done["filled_qty"] == 2
        assert h.hoga.paper.placements(done["account_id"]) == 1
        assert (await _queue_status(h, u))["queue_size"] == 0


@pytest.mark.postgres
async def test_postgres_connection_killed_at_the_claim_is_retried(
    tmp_path: Path, pg_url: str
) -> None:
    async with _trading(tmp_path, pg_url, "bea") as (h, u):
        await pg_terminate_on(
            pg_url, "orders", event="UPDATE", when="NEW.status = 'SUBMITTING'", times=2
        )
        done = await h.wait_status(u, (await _accepted(h, u, qty=3))["id"], "FILLED")
        assert await pg_kills(pg_url) >= 2  # the claim's connection really died, twice
        assert done["filled_qty"] == 3
        assert h.hoga.paper.placements(done["account_id"]) == 1
        assert h.hoga.queue.size() == 0


async def test_sqlite_full_while_booking_a_fill_books_all_or_nothing(
    tmp_path: Path, sqlite_url: str
) -> None:
    async with _trading(tmp_path, sqlite_url, "cal") as (h, u):
        uid = (await h.http.get("/api/me", headers=u)).json()["id"]
        # The fill's cash movement is the step that meets the full disk.
        await _fault(h, "cash_ledger", "INSERT", "NEW.kind = 'buy'")
        placed = await _accepted(h, u, qty=4)
        oid, account = placed["id"], placed["account_id"]

        async def held() -> bool:
            await h.hoga.paper.drain()
            if h.hoga.orders.held_events() > 0:
                return True
            h.pump(25)
            return False

        await eventually(held, 20.0, "a fill to meet the full disk")
        fills, positions, cash, booked = await _books(h, uid, account, oid)
        assert fills == [] and positions == []
        assert cash == booked == h.hoga.settings.paper_initial_cash
        assert (await h.order(u, oid))["filled_qty"] == 0
        await _heal(h, "cash_ledger")
        done = await h.wait_status(u, oid, "FILLED")
        fills, (pos,), cash, booked = await _books(h, uid, account, oid)
        assert sum(f.qty for f in fills) == done["filled_qty"] == pos.qty == 4
        cost = sum(f.qty * f.price + f.commission for f in fills)
        assert cash == booked == h.hoga.settings.paper_initial_cash - cost


async def test_api_answers_503_storage_full_and_keeps_serving_reads(
    tmp_path: Path, sqlite_url: str
) -> None:
    async with _trading(tmp_path, sqlite_url, "dan") as (h, u):
        await _fault(h, "orders", "INSERT", "1")
        r = await h.post_order(u, qty=1)
        assert r.status_code == 503, r.text
        assert r.headers["Retry-After"] == "30"
        err = r.json()["error"]
        assert err["code"] == "storage.full"
        assert "INSERT" not in err["message"] and "orders" not in err["message"]
        # Nothing half-written, and reads still work.
        r = await h.http.get("/api/orders", headers=u)
        assert r.status_code == 200 and r.json()["orders"] == []
        assert (await h.http.get("/api/portfolio", headers=u)).status_code == 200
        assert (await _queue_status(h, u))["queue_size"] == 0
        await _heal(h, "orders")
        await _accepted(h, u, qty=1)


@pytest.mark.postgres
async def test_api_answers_503_storage_unavailable_when_the_connection_dies(
    tmp_path: Path, pg_url: str
) -> None:
    async with _trading(tmp_path, pg_url, "eve") as (h, u):
        await pg_terminate_on(pg_url, "orders", event="INSERT", times=1)
        r = await h.post_order(u, qty=1)
        assert r.status_code == 503, r.text
        assert r.json()["error"]["code"] == "storage.unavailable"
        assert r.headers["Retry-After"] == "1"
        r = await h.http.get("/api/orders", headers=u)
        assert r.status_code == 200 and r.json()["orders"] == []
        await _accepted(h, u, qty=1)


async def test_resync_queues_an_order_the_queue_lost(tmp_path: Path, sqlite_url: str) -> None:
    """The backstop: an order QUEUED in the database but missing from the queue (however
    that happened) is queued again and sent once."""
    async with _trading(tmp_path, sqlite_url, "fay") as (h, u):
        await h.hoga.dispatcher.stop()
        oid = (await _accepted(h, u, qty=1))["id"]
        assert h.hoga.queue.remove(oid) is not None  # lost from memory
        assert (await h.hoga.resync.check()) == {"place": 1, "cancel": 0}
        assert (await h.hoga.resync.check()) == {"place": 0, "cancel": 0}
        await h.hoga.dispatcher.start()
        done = await h.wait_status(u, oid, "FILLED")
        assert h.hoga.paper.placements(done["account_id"]) == 1


async def test_resync_leaves_alone_an_order_sent_while_it_read(
    tmp_path: Path, sqlite_url: str
) -> None:
    """The backstop's read of the database can predate a send that finished before it
    looked at the queue: such an order is not "missing" (it used to be queued again with a
    false warning, on every busy round)."""
    async with _trading(tmp_path, sqlite_url, "fay") as (h, u):
        placed = await _accepted(h, u, qty=1)
        oid = placed["id"]
        stale = await h.hoga.resync._read()  # the order as it was: QUEUED
        assert [o.status.value for o in stale[0]] == ["QUEUED"]
        await h.wait_status(u, oid, "FILLED")
        reads = iter([stale])
        real_read = h.hoga.resync._read

        async def first_read_is_stale(user_id: int | None = None) -> Any:
            return next(reads, None) or await real_read(user_id)

        h.hoga.resync._read = first_read_is_stale  # type: ignore[method-assign]
        assert (await h.hoga.resync.check()) == {"place": 0, "cancel": 0}
        assert h.hoga.resync.requeued == 0
        assert h.hoga.paper.placements(placed["account_id"]) == 1


async def test_resync_leaves_alone_an_order_the_dispatcher_has_taken_but_not_yet_sent(
    tmp_path: Path, sqlite_url: str
) -> None:
    """Between the dispatcher's pop and the sender marking it in flight, a request is in
    neither the queue nor the sender's set; the backstop took it for lost, queued it again
    and warned (the second copy's claim then found it SUBMITTING). It asks the dispatcher too."""
    async with _trading(tmp_path, sqlite_url, "fay") as (h, u):
        taken = asyncio.Event()
        release = asyncio.Event()
        real_send = h.hoga.dispatcher._send

        async def slow_start(item: Any) -> None:
            taken.set()
            await release.wait()  # the sender has not started yet
            await real_send(item)

        h.hoga.dispatcher._send = slow_start  # type: ignore[method-assign]
        placed = await _accepted(h, u, qty=1)
        await asyncio.wait_for(taken.wait(), 30)
        assert not h.hoga.queue.contains(placed["id"])
        assert (await h.hoga.resync.check()) == {"place": 0, "cancel": 0}
        assert h.hoga.resync.requeued == 0
        release.set()
        await h.wait_status(u, placed["id"], "FILLED")
        assert h.hoga.paper.placements(placed["account_id"]) == 1


async def test_a_database_fault_raised_outside_a_transaction_is_still_a_503() -> None:
    """The last line of defence: a driver error that escaped Database.tx's translation."""
    import sqlite3

    import httpx
    from fastapi import FastAPI
    from sqlalchemy.exc import OperationalError

    from hoga.api.errors import install_error_handlers

    app = FastAPI()
    install_error_handlers(app)

    @app.get("/boom")
    async def boom() -> None:
        raise OperationalError(
            "INSERT ...", {}, sqlite3.OperationalError("database or disk is full")
        )

    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app, raise_app_exceptions=False),
        base_url="http://t",
    ) as client:
        r = await client.get("/boom")
    assert r.status_code == 503 and r.json()["error"]["code"] == "storage.full"
    assert "INSERT" not in r.text


async def test_background_work_survives_a_full_disk_and_catches_up(
    tmp_path: Path, sqlite_url: str
) -> None:
    """Bar persistence keeps the bars it could not write; day-end expiry leaves the queue and
    the database agreeing; a reconcile round ends with the fault named and tries again."""
    from datetime import datetime, timedelta

    from hoga.domain.clock import KST, ManualClock
    from hoga.domain.market import Tick
    from hoga.store import tables as t

    clock = ManualClock(datetime(2026, 11, 26, 10, 0, tzinfo=KST))
    async with running(tmp_path, sqlite_url, clock=clock) as h:
        u = await h.user("gus", "basic")
        h.pump(300)
        # Bars: the write fails, the bars wait, and go in once there is room.
        await _fault(h, "bars", "INSERT", "1")
        start = clock.time()
        h.hoga.bars.on_tick(Tick("005930", 70_000, 5, start))
        h.hoga.bars.on_tick(Tick("005930", 70_100, 5, start + 61))
        with pytest.raises(StorageFull):
            await h.hoga._flush_bars()
        await _heal(h, "bars")
        await h.hoga._flush_bars()
        async with h.hoga.db.tx(SYSTEM) as conn:
            rows = (await conn.execute(t.bars.select().where(t.bars.c.symbol == "005930"))).all()
        assert any(r.start == int(start // 60 * 60) for r in rows)

        # Day end: an order queued yesterday expires; if that cannot be recorded, it is still
        # queued in both the database and the queue.
        await h.hoga.dispatcher.stop()
        oid = (await _accepted(h, u, qty=1))["id"]
        uid = (await h.http.get("/api/me", headers=u)).json()["id"]
        clock.advance(timedelta(days=1))  # (the access token expires: read the service)
        await _fault(h, "orders", "UPDATE", "NEW.status = 'EXPIRED'")
        with pytest.raises(StorageFull):
            await h.hoga.orders.expire_stale(krx.trading_date(clock.now()))
        assert h.hoga.queue.contains(oid)
        assert (await h.hoga.orders.get(uid, oid)).status.value == "QUEUED"
        await _heal(h, "orders")
        assert await h.hoga.orders.expire_stale(krx.trading_date(clock.now())) == 1
        assert not h.hoga.queue.contains(oid)
        assert (await h.hoga.orders.get(uid, oid)).status.value == "EXPIRED"


async def test_a_reconcile_round_that_meets_a_full_disk_names_it_and_tries_again(
    tmp_path: Path, sqlite_url: str
) -> None:
    async with running_unanswered(tmp_path, sqlite_url) as h:
        u = await h.user("hal", "basic")
        h.pump(300)
        quote = (await h.http.get("/api/market/quotes?symbols=005930", headers=u)).json()
        price = krx.round_to_tick(int(quote["quotes"][0]["price"] * 0.8))
        await _fault(h, "orders", "UPDATE", "NEW.status = 'ACCEPTED'")
        r = await h.post_order(u, type="limit", qty=1, price=price)
        oid, account = r.json()["id"], r.json()["account_id"]

        async def unknown() -> bool:
            return (await h.order(u, oid))["status"] == "UNKNOWN"

        await eventually(unknown, 10.0, "the order to go UNKNOWN")

        async def round_failed() -> bool:
            last = h.hoga.reconciler.last.get(account)
            return last is not None and last.error == "storage.full"

        # Going UNKNOWN asked for a round; it meets the full disk and says so.
        await eventually(round_failed, 10.0, "a reconcile round to meet the full disk")
        assert (await h.order(u, oid))["status"] == "UNKNOWN"
        await _heal(h, "orders")

        async def settled() -> bool:
            return (await h.order(u, oid))["status"] == "ACCEPTED"

        # No periodic round runs here: the failed round scheduled its own retry.
        await eventually(settled, 15.0, "the retried round to settle the order")
        assert h.hoga.paper.placements(account) == 1
