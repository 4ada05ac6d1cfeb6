"""Issue 14's "done when" on Kiwoom: under ``HOGA_FEED=kiwoom`` the master comes from the
Kiwoom fake's ``ka10099`` (paged), and a symbol outside the bundle (095340) is quoted
(``ka10001``), shown with its book (``ka10004``), charted (``ka10081``) and traded on a
Kiwoom-fake account through the real API."""

from __future__ import annotations

from pathlib import Path

from hoga.brokers.kiwoom.market import KiwoomListSource
from hoga.domain import krx
from hoga.domain.clock import ManualClock
from tests.helpers import running
from tests.kiwoom_support import kiwoom_fake, kiwoom_user, pumping

OUTSIDE = "095340"


async def test_kiwoom_feed_syncs_ka10099_and_trades_a_symbol_outside_the_bundle(
    tmp_path: Path, sqlite_url: str, clock: ManualClock
) -> None:
    async with kiwoom_fake(page_size=500) as fake:
        async with running(tmp_path, sqlite_url, kiwoom_rate=50) as h:
            headers, _, account_id = await kiwoom_user(h, fake)
        async with running(
            tmp_path,
            sqlite_url,
            clock=clock,
            feed="kiwoom",
            kiwoom_feed_accounts=str(account_id),
            kiwoom_rate=50,
            symbols_sync_at="off",
            max_order_value=500_000_000,
        ) as h:
            headers = await h.login("kim")
            source = h.hoga.instrument_source()
            assert isinstance(source, KiwoomListSource)
            assert OUTSIDE not in h.hoga.universe
            result = await h.hoga.instruments.sync(source)
            assert result.symbols == len(fake.master) and result.source == "kiwoom"
            inst = h.hoga.universe.get(OUTSIDE)
            assert inst is not None and inst.name == "ISC"

            r = await h.http.get(f"/api/market/quotes?symbols={OUTSIDE}", headers=headers)
            (quote,) = r.json()["quotes"]
            assert quote["base_price"] == 61_200
            rules = (
                await h.http.get(f"/api/market/rules?symbol={OUTSIDE}", headers=headers)
            ).json()
            assert (rules["lower"], rules["upper"]) == krx.price_limits(61_200)

            r = await h.http.get(f"/api/market/orderbook?symbol={OUTSIDE}", headers=headers)
            book = r.json()
            assert r.status_code == 200 and len(book["asks"]) == 10 and len(book["bids"]) == 10
            ours = fake.market.orderbook(OUTSIDE)
            assert ours is not None
            assert [a["price"] for a in book["asks"]] == [p for p, _ in ours.asks]

            r = await h.http.get(f"/api/market/bars?symbol={OUTSIDE}&interval=1d", headers=headers)
            assert r.status_code == 200 and len(r.json()["bars"]) >= 15

            order = await h.submit(
                headers,
                symbol=OUTSIDE,
                type="limit",
                qty=2,
                price=book["asks"][0]["price"],
                account_id=account_id,
            )
            done = await h.until_status(
                headers, order["id"], "FILLED", step=pumping(fake), within=30.0
            )
            assert done["filled_qty"] == 2
