"""Issue 14's "done when" on KIS: a symbol outside the bundled 133 (095340) is synced from the
KIS fake's master files, quoted, charted, shown with its order book and traded through the
real API; halted and designated symbols meet the risk gate."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hoga.domain import krx
from hoga.domain.clock import ManualClock
from hoga.fakes.kis import KisFakeAccount
from hoga.marketdata.universe import bundled_universe
from tests.broker_support import fund
from tests.helpers import eventually, running
from tests.kis_support import ACCOUNT, HTS, KEY, SECRET, kis_fake, link_account, trade_until

OUTSIDE = "095340"


async def test_a_symbol_outside_the_bundle_is_synced_quoted_charted_booked_and_traded(
    tmp_path: Path, sqlite_url: str, clock: ManualClock
) -> None:
    accounts = [KisFakeAccount(ACCOUNT, KEY, SECRET, hts_id=HTS)]
    async with kis_fake("real", accounts) as fake:
        async with running(
            tmp_path,
            sqlite_url,
            clock=clock,
            feed="kis",
            hub_grace_seconds=0,
            kis_master_url=f"{fake.base_url}/common/master",
        ) as h:
            assert OUTSIDE not in {i.symbol for i in bundled_universe()}
            assert OUTSIDE not in h.hoga.universe
            admin = await h.admin()
            alice = await h.user("alice", "premium")
            before = (await h.http.get("/api/admin/symbols", headers=admin)).json()
            assert before["stored"] == 0 and before["applied"] is True
            r = await h.http.post("/api/admin/symbols/sync", headers=alice)
            assert r.status_code == 403
            r = await h.http.post("/api/admin/symbols/sync", headers=admin)
            assert r.status_code == 200, r.text
            result = r.json()
            assert result["symbols"] == len(fake.master) >= 2800 and result["source"] == "kis"
            assert result["halted"] > 0 and result["designated"] > 0
            after = (await h.http.get("/api/admin/symbols", headers=admin)).json()
            assert after["stored"] == after["universe"] == len(fake.master)
            inst = h.hoga.universe.get(OUTSIDE)
            assert inst is not None and inst.name == "ISC" and inst.market == "KOSDAQ"
            r = await h.http.get("/api/market/symbols?q=ISC", headers=alice)
            assert any(x["symbol"] == OUTSIDE for x in r.json()["symbols"])

            acct = (await link_account(h.http, alice, fake))["id"]
            await fund(h.hoga, await h.me(alice), acct, 50_000_000)

            # Quoted on demand (nobody subscribes to it): KIS inquire-price.
            r = await h.http.get(f"/api/market/quotes?symbols={OUTSIDE}", headers=alice)
            assert r.status_code == 200, r.text
            (quote,) = r.json()["quotes"]
            broker = fake.market.instrument(OUTSIDE)
            assert broker is not None and quote["base_price"] == broker.base_price == 61_200
            # A long list of unwatched symbols: a few fetched per request, not the key's budget.
            bundle = {i.symbol for i in bundled_universe()}
            others = [x.symbol for x in fake.master if x.symbol not in bundle][:15]
            asked = fake.paths["inquire-price"]
            r = await h.http.get(f"/api/market/quotes?symbols={','.join(others)}", headers=alice)
            assert r.status_code == 200, r.text
            assert len(r.json()["quotes"]) == 10 == fake.paths["inquire-price"] - asked
            rules = (await h.http.get(f"/api/market/rules?symbol={OUTSIDE}", headers=alice)).json()
            assert (rules["lower"], rules["upper"]) == krx.price_limits(61_200)
            assert rules["halted"] is False and rules["designation"] == ""

            # The order book: KIS inquire-asking-price-exp-ccn, 10 levels each side.
            r = await h.http.get(f"/api/market/orderbook?symbol={OUTSIDE}", headers=alice)
            assert r.status_code == 200, r.text
            book = r.json()
            assert len(book["asks"]) == 10 and len(book["bids"]) == 10
            assert book["bids"][0]["price"] < book["asks"][0]["price"]
            assert book["last"] == quote["price"]

            # Charted on a fresh server: the broker's daily history.
            r = await h.http.get(f"/api/market/bars?symbol={OUTSIDE}&interval=1d", headers=alice)
            assert r.status_code == 200, r.text
            bars = r.json()["bars"]
            assert len(bars) >= 15
            assert all(b["low"] <= min(b["open"], b["close"]) for b in bars)

            # Backtested on a fresh server: no stored bars, the broker's daily history.
            r = await h.http.post(
                "/api/backtests",
                json={"kind": "sma_cross", "symbol": OUTSIDE,
                      "params": {"fast": 3, "slow": 8, "qty": 1}},
                headers=alice,
            )  # fmt: skip
            assert r.status_code == 202, r.text
            job = r.json()["id"]
            me = (await h.http.get("/api/me", headers=alice)).json()["id"]

            async def backtested() -> bool:
                return (await h.hoga.backtests.get(me, job))["status"] in ("done", "error")

            await eventually(backtested, 90, "the 095340 backtest")
            done = await h.hoga.backtests.get(me, job)
            assert done["status"] == "done", done
            assert done["result"]["interval"] == 86400 and done["result"]["bars"] >= 15

            # Traded: a marketable limit buy fills at the KIS fake.
            ask = book["asks"][0]["price"]
            o = await h.submit(
                alice, symbol=OUTSIDE, type="limit", qty=3, price=ask, account_id=acct
            )

            async def filled() -> bool:
                return (await h.state(o["id"]))["status"] == "FILLED"

            await trade_until(h, fake, filled, "the 095340 buy fills")
            held = fake.account(ACCOUNT).positions.get(OUTSIDE)
            assert held is not None and held.qty == 3

            # A halted symbol is refused; so is a buy of a 투자위험 one (the default policy).
            async def limit_buy(inst: Any) -> Any:
                return await h.post_order(
                    alice, symbol=inst.symbol, type="limit", qty=1, price=inst.base_price,
                    account_id=acct,
                )  # fmt: skip

            halted = next(x for x in fake.master if x.halted and not x.designation)
            r = await limit_buy(halted)
            assert r.status_code == 422, r.text
            assert r.json()["error"]["code"] == "risk.symbol_halted"
            assert r.json()["order"]["status"] == "DENIED"
            risky = next(x for x in fake.master if x.warning == "risk" and not x.halted)
            r = await limit_buy(risky)
            assert r.json()["error"]["code"] == "risk.designated", r.text

        # The master survives a restart: the stored table is the universe again.
        async with running(
            tmp_path, sqlite_url, clock=clock, feed="kis", symbols_sync_at="off"
        ) as h2:
            assert OUTSIDE in h2.hoga.universe and len(h2.hoga.universe) >= 2800
