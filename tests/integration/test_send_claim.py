"""The send path's claim and acknowledgement: one compare-and-set each from the order in hand,
the row re-read only when it moved on; SUBMITTING is committed before the broker is called."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import event

from hoga.brokers.base import AccountRef, PlaceAck, PlaceRequest
from hoga.domain.orders import OrderStatus
from hoga.execution.queue import QueueItem
from hoga.store import tables as t
from hoga.store.db import SYSTEM
from tests.helpers import Harness, running


async def _status_in_db(h: Harness, order_id: int) -> tuple[str, Any]:
    async with h.hoga.db.tx(SYSTEM) as conn:
        row = (await conn.execute(t.orders.select().where(t.orders.c.id == order_id))).one()
    return row.status, row.submitted_at


async def _queued(h: Harness, headers: dict[str, str], **body: Any) -> tuple[int, QueueItem]:
    """An accepted limit buy, still in the queue (the dispatcher is stopped)."""
    order = await h.submit(headers, type="limit", price=60_000, **body)
    (item,) = [i for i in h.hoga.queue.items() if i.order_id == order["id"]]
    return order["id"], item


async def test_claim_and_acknowledgement_write_without_rereading(
    tmp_path: Path, db_url: str
) -> None:
    async with running(tmp_path, db_url) as h:
        await h.hoga.dispatcher.stop()
        u = await h.user("cla", "basic")
        h.pump(300)
        oid, item = await _queued(h, u)
        assert item.expected is not None and item.expected.status == OrderStatus.QUEUED

        seen_at_place: list[tuple[str, Any]] = []
        paper = h.hoga.paper
        real_place = paper.place

        async def place(account: AccountRef, request: PlaceRequest) -> PlaceAck:
            seen_at_place.append(await _status_in_db(h, oid))
            return await real_place(account, request)

        paper.place = place  # type: ignore[method-assign]
        statements: list[str] = []

        def record(_c: Any, _cur: Any, sql: str, *_: Any) -> None:
            statements.append(" ".join(sql.split()).upper())

        engine = h.hoga.db.engine.sync_engine
        event.listen(engine, "before_cursor_execute", record)
        try:
            await h.hoga.orders.send(item)
        finally:
            event.remove(engine, "before_cursor_execute", record)

        # Persist-before-send: the broker saw a committed SUBMITTING row.
        assert len(seen_at_place) == 1
        status, submitted_at = seen_at_place[0]
        assert status == "SUBMITTING" and submitted_at is not None
        assert (await _status_in_db(h, oid))[0] == "ACCEPTED"
        # Neither the claim nor the acknowledgement re-read the order (the place hook's own
        # read aside): each is one compare-and-set plus its history row.
        reads = [s for s in statements if s.startswith("SELECT") and "FROM ORDERS" in s]
        assert len(reads) == 1, reads
        assert sum(s.startswith("UPDATE ORDERS") for s in statements) == 2
        assert sum(s.startswith("INSERT INTO ORDER_EVENTS") for s in statements) == 2
        assert item.expected is None  # an item put back would re-read
        history = [x["status"] for x in (await h.order(u, oid))["history"]]
        assert history == ["QUEUED", "SUBMITTING", "ACCEPTED"]


async def test_a_claim_whose_order_moved_on_sends_nothing(tmp_path: Path, db_url: str) -> None:
    """The queued state the item carries is stale (the order was cancelled behind the queue's
    back): the compare-and-set fails, the claim re-reads, and nothing reaches the broker."""
    async with running(tmp_path, db_url) as h:
        await h.hoga.dispatcher.stop()
        u = await h.user("clb", "basic")
        h.pump(300)
        oid, item = await _queued(h, u)
        assert item.expected is not None
        cancelled = await h.hoga.orders.move(item.expected, OrderStatus.CANCELLED, detail="test")
        assert cancelled is not None
        account = cancelled.account_id
        await h.hoga.orders.send(item)
        assert h.hoga.paper.placements(account) == 0
        assert (await _status_in_db(h, oid))[0] == "CANCELLED"
        history = [x["status"] for x in (await h.order(u, oid))["history"]]
        assert "SUBMITTING" not in history


async def test_a_stale_but_queued_expectation_claims_the_current_row(
    tmp_path: Path, db_url: str
) -> None:
    """The row changed since the item was queued but is queued again (a requeue after the
    broker did not process it): the claim succeeds and sends what the row says now."""
    async with running(tmp_path, db_url) as h:
        await h.hoga.dispatcher.stop()
        u = await h.user("clc", "basic")
        h.pump(300)
        oid, item = await _queued(h, u)
        stale = item.expected
        assert stale is not None
        claimed = await h.hoga.orders.move(stale, OrderStatus.SUBMITTING, detail="test")
        assert claimed is not None
        back = await h.hoga.orders.move(
            claimed, OrderStatus.QUEUED, detail="test", reason="not processed"
        )
        assert back is not None and back.reason == "not processed"
        item.expected = stale
        await h.hoga.orders.send(item)
        assert h.hoga.paper.placements(back.account_id) == 1
        assert (await _status_in_db(h, oid))[0] == "ACCEPTED"
        done = await h.order(u, oid)
        assert done["reason"] == "not processed"  # the current row's fields were kept
        assert [x["status"] for x in done["history"]].count("SUBMITTING") == 2
