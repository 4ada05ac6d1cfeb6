"""``HOGA_FEED=kis`` on a running hoga: market data and execution notices share one session."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from hoga.brokers.kis import KisFeed
from hoga.config import Settings
from hoga.domain import krx
from hoga.domain.clock import ManualClock
from hoga.fakes.kis import KisFake
from tests.helpers import Harness, eventually
from tests.kis_support import KEY, kis_running, link_account


async def _ticks(h: Harness, fake: KisFake, arrived: Callable[[], bool]) -> None:
    """Trade the fake's market until the hub has delivered what ``arrived`` waits for."""

    async def check() -> bool:
        return arrived()

    await eventually(
        check, 15, lambda: f"ticks: {h.hoga.hub.health()}", step=lambda: fake.pump(50), pause=0.01
    )


def test_feed_accounts_setting_takes_a_comma_separated_list(tmp_path: Path) -> None:
    s = Settings(data_dir=tmp_path, feed="kis", kis_feed_accounts="3, 4,7")
    assert s.kis_feed_accounts == [3, 4, 7] and s.feed == "kis"
    assert Settings(data_dir=tmp_path).kis_feed_accounts == []


async def test_kis_market_data_reaches_the_hub_of_a_running_app(
    tmp_path: Path, sqlite_url: str
) -> None:
    async with kis_running(tmp_path, sqlite_url, feed="kis", hub_grace_seconds=0) as (fake, h):
        feed = h.hoga.feed
        assert isinstance(feed, KisFeed) and h.hoga.hub.feed is feed
        alice = await h.user("alice", "basic")
        acct = (await link_account(h.http, alice, fake))["id"]
        assert feed.max_sessions == 0  # not allowed for market data yet
        feed.account_ids.add(acct)
        assert feed.max_sessions == 1 and feed.symbols_per_session == 40
        got: list[str] = []
        sub = h.hoga.hub.subscribe(["005930", "000660"], lambda t: got.append(t.symbol), owner="t")
        await _ticks(h, fake, lambda: bool({"005930", "000660"} <= set(got)))
        tick = h.hoga.hub.last("005930")
        real = fake.market.last("005930")
        assert tick is not None and real is not None and tick.price == real.price
        # One WebSocket session for the key: its notice registration plus two symbols.
        assert fake.open_sessions == 1 and fake.session_registrations(KEY) == 3
        sub.close()
        assert h.hoga.hub.health()["feed"] == "kis"


async def test_with_a_broker_feed_limits_come_from_the_brokers_reference_price(
    tmp_path: Path, sqlite_url: str, clock: ManualClock
) -> None:
    """Under ``HOGA_FEED=kis`` the risk gate and the order ticket use the day's reference price
    from the broker's ticks or, for a symbol with no tick yet, from the broker's quote on demand;
    with neither it is refused, not checked against the bundled universe's stale price. (A
    broker feed makes the KRX calendar govern, so the server's clock stands at 10:00 on a
    trading day.)"""
    async with kis_running(tmp_path, sqlite_url, clock=clock, feed="kis", hub_grace_seconds=0) as (
        fake,
        h,
    ):
        assert h.hoga.market_mode == "calendar" and h.hoga.market_open()
        alice = await h.user("alice", "basic")
        # No tick and no KIS account to ask on demand yet: no reference price at all.
        r = await h.http.get("/api/market/rules?symbol=005930", headers=alice)
        assert r.status_code == 409 and r.json()["error"]["code"] == "market.no_quote"
        r = await h.post_order(alice, qty=1)
        assert r.status_code == 422 and r.json()["error"]["code"] == "risk.no_quote", r.text
        acct = (await link_account(h.http, alice, fake))["id"]
        # With a KIS key the reference price comes from inquire-price on demand (issue 14).
        r = await h.http.get("/api/market/rules?symbol=005930", headers=alice)
        assert r.status_code == 200, r.text
        h.hoga.feed.account_ids.add(acct)  # type: ignore[attr-defined]

        got: list[str] = []
        sub = h.hoga.hub.subscribe(["005930"], lambda t: got.append(t.symbol), owner="t")
        await _ticks(h, fake, lambda: bool(got))
        broker_inst = fake.market.instrument("005930")
        assert broker_inst is not None
        rules = (await h.http.get("/api/market/rules?symbol=005930", headers=alice)).json()
        assert rules["base_price"] == broker_inst.base_price
        assert (rules["lower"], rules["upper"]) == krx.price_limits(broker_inst.base_price)
        above = krx.step_price(rules["upper"], 1)
        r = await h.post_order(alice, type="limit", qty=1, price=above, account_id=acct)
        assert r.json()["error"]["code"] == "risk.outside_limits", r.text
        sub.close()
