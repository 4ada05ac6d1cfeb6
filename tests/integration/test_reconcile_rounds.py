"""An UNKNOWN order settles within a couple of reconcile rounds once the broker knows it, even
when a round is long (many report pages at the broker's pace): a round reads each report
once, and an UNKNOWN raised during a round gets a round of its own right after it."""

from __future__ import annotations

import asyncio
import math
from pathlib import Path

from hoga.domain import krx
from tests.helpers import eventually, running
from tests.kiwoom_support import ACCOUNT_NO, APP_KEY, kiwoom_fake, kiwoom_user, traded

SYMBOL = "005930"


async def test_an_unknown_raised_mid_round_is_settled_right_after_it(
    tmp_path: Path, sqlite_url: str
) -> None:
    async with (
        kiwoom_fake(page_size=3) as fake,
        running(tmp_path, sqlite_url, kiwoom_rate=50, submit_timeout=1.0) as h,
    ):
        headers, _, account_id = await kiwoom_user(h, fake)
        tick = await traded(fake, SYMBOL)
        inst = fake.market.instrument(SYMBOL)
        assert inst is not None
        low = krx.round_to_tick(int(tick.price * 0.8), inst.kind)
        # A busy day: 21 orders resting at the broker, listed 3 to a report page.
        placed = [
            await h.submit(
                headers,
                type="limit",
                qty=1,
                price=krx.step_price(low, -n, inst.kind),
                account_id=account_id,
            )
            for n in range(21)
        ]
        for o in placed:
            await h.until_status(headers, o["id"], "ACCEPTED", within=30.0)
        fake.faults.latency = 0.35  # a round now outlasts the adapter's 2 s report cache
        fake.faults.push_executions = False  # only the reports can tell
        stats = fake.stats[APP_KEY].api_ids
        pages = math.ceil(len(fake.exchange.open_rows(fake.exchange.books[ACCOUNT_NO])) / 3)

        # One round reads each report once, however long its pages take.
        before = stats["ka10075"]
        await h.hoga.reconciler.reconcile_account(account_id)
        assert stats["ka10075"] - before == pages

        # An order's answer is lost while a (long) round is under way.
        before = stats["ka10075"]
        first = asyncio.create_task(h.hoga.reconciler.reconcile_account(account_id))

        async def reading() -> bool:
            return stats["ka10075"] > before

        await eventually(reading, 10.0, "the round to start reading reports")
        fake.inject("timeout", api_ids={"kt10000"})
        lost = await h.submit(headers, type="limit", qty=1, price=low, account_id=account_id)
        await h.until_status(headers, lost["id"], "UNKNOWN", within=10.0)
        await first
        # No periodic round (the interval is an hour): the request made when it went UNKNOWN
        # runs right after the round that was under way.
        done = await h.until_status(headers, lost["id"], "ACCEPTED", within=30.0)
        assert "UNKNOWN" in [x["status"] for x in done["history"]]
        assert fake.stats[APP_KEY].api_ids["kt10000"] == 22  # never resent
