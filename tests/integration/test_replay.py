"""The replay feed: recorded ticks or bars through the same interface as live feeds."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from hoga.domain.clock import ManualClock
from hoga.domain.market import Tick
from hoga.marketdata.feeds.replay import ReplayFeed, ReplayFormatError
from hoga.marketdata.hub import Hub
from hoga.marketdata.universe import Universe, bundled_universe
from tests.helpers import eventually, running

UNIVERSE = Universe(bundled_universe())
INSTRUMENTS = {i.symbol: i for i in UNIVERSE.instruments}

TICKS = """ts,symbol,price,volume
2026-11-26T09:00:00,005930,71500,10
2026-11-26T09:00:01,000660,198000,5
2026-11-26T09:00:02,005930,71600,7
2026-11-26T09:00:03,005930,71700,3
"""


async def test_ticks_play_in_order_through_hub_sessions(tmp_path: Path, clock: ManualClock) -> None:
    f = tmp_path / "ticks.csv"
    f.write_text(TICKS)
    feed = ReplayFeed(f, speed=0, instruments=INSTRUMENTS)
    hub = Hub(feed, UNIVERSE, clock, grace=0)
    got: list[Tick] = []
    hub.subscribe(["005930"], got.append, owner="t")
    await hub.rebalance()
    feed.start()
    await asyncio.wait_for(feed.done.wait(), 5)
    assert [t.price for t in got] == [71500, 71600, 71700]
    assert feed.last("000660").price == 198000  # type: ignore[union-attr]
    assert all(t.bid < t.ask for t in got)
    await feed.close()


async def test_bars_from_parquet_play_as_four_trades_each(tmp_path: Path) -> None:
    f = tmp_path / "bars.parquet"
    pq.write_table(
        pa.table(
            {
                "date": ["2026-11-25", "2026-11-26"],
                "open": [70000, 71000],
                "high": [72000, 71500],
                "low": [69500, 70500],
                "close": [71000, 70800],
                "volume": [400, 800],
            }
        ),
        f,
    )
    feed = ReplayFeed(f, speed=0, symbol="005930", instruments=INSTRUMENTS)
    prices = [e.tick.price for e in feed.events]
    assert prices == [70000, 69500, 72000, 71000, 71000, 71500, 70500, 70800]
    assert sum(e.tick.volume for e in feed.events) == 1200


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("a,b\n1,2\n", "need columns"),
        ("ts,symbol,price,volume\nyesterday,005930,100,1\n", "row 2: ts"),
        ("ts,symbol,price,volume\n2026-01-02,5930,100,1\n", "not a KRX code"),
        ("ts,symbol,price,volume\n2026-01-02,005930,-5,1\n", "price must be positive"),
        ("date,open,high,low,close,volume\n2026-01-02,100,90,80,95,1\n", "low <= open"),
    ],
)
def test_bad_files_name_the_problem(tmp_path: Path, content: str, message: str) -> None:
    f = tmp_path / "bad.csv"
    f.write_text(content)
    with pytest.raises(ReplayFormatError, match=message):
        ReplayFeed(f, symbol="005930" if "date" in content else None)


async def test_the_whole_server_trades_on_a_replay(tmp_path: Path, sqlite_url: str) -> None:
    f = tmp_path / "ticks.csv"
    rows = ["ts,symbol,price,volume"] + [
        f"{1_800_000_000 + i},005930,{71500 + (i % 5) * 100},50" for i in range(400)
    ]
    f.write_text("\n".join(rows) + "\n")
    async with running(tmp_path, sqlite_url, feed="replay", replay_file=f, replay_speed=200) as h:
        assert h.hoga.replay is not None
        h.hoga.replay.start()
        u = await h.user("rep", "basic")

        async def has_quote() -> bool:
            return h.hoga.quotes.last("005930") is not None

        await eventually(has_quote, what="replayed quote")
        r = await h.post_order(u, qty=3)
        oid = r.json()["id"]

        async def filled() -> bool:
            return (await h.order(u, oid))["status"] == "FILLED"

        await eventually(filled, within=15, what="fill on replayed prices")
        fills = (await h.order(u, oid))["fills"]
        assert {f["price"] for f in fills} <= {71500 + k * 100 for k in range(6)}
