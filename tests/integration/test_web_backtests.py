"""A fresh server backtests out of the box on the simulated market (generated, deterministic
history), and a run on too little data says so."""

from __future__ import annotations

from datetime import date
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from hoga.domain import krx
from hoga.marketdata import history
from hoga.marketdata.universe import Universe, bundled_universe
from tests.helpers import running
from tests.integration.test_backtests_api import _wait_done

UNIVERSE = Universe(bundled_universe())


async def test_fresh_server_backtests_on_generated_history(tmp_path: Path, sqlite_url: str) -> None:
    async with running(tmp_path, sqlite_url) as h:
        alice = await h.user("alice")
        body = {"kind": "sma_cross", "symbol": "005930", "source": "generated", "interval": "1d"}
        r = await h.http.post("/api/backtests", json=body, headers=alice)
        assert r.status_code == 202, r.text
        view = r.json()
        assert view["data"] == "generated" and view["warnings"] == []
        assert view["bars"] >= 400
        done = await _wait_done(h, alice, view["id"])
        assert done["status"] == "done", done["error"]
        result = done["result"]
        assert result["data"] == "generated" and result["warnings"] == []
        assert len(result["fills"]) > 0  # the default strategy trades on two years of days
        # Deterministic: the same request gives the same figures.
        r = await h.http.post("/api/backtests", json=body, headers=alice)
        again = await _wait_done(h, alice, r.json()["id"])
        assert again["result"]["fills"] == result["fills"]

        # A run on a handful of stored bars is flagged, not silently "done with 0 trades".
        csv = "date,open,high,low,close,volume\n" + "".join(
            f"2026-02-{d:02d},100,101,99,100,10\n" for d in range(2, 7)
        )
        r = await h.http.post(
            "/api/backtests",
            json={"kind": "sma_cross", "symbol": "005930", "source": "csv", "csv": csv},
            headers=alice,
        )
        assert r.status_code == 202, r.text
        (warning,) = r.json()["warnings"]
        assert warning["code"] == "backtest.too_little_data" and warning["bars"] == 5
        done = await _wait_done(h, alice, r.json()["id"])
        assert done["result"]["warnings"][0]["code"] == "backtest.too_little_data"


async def test_generated_history_only_on_the_simulated_market(
    tmp_path: Path, sqlite_url: str
) -> None:
    async with running(tmp_path, sqlite_url) as h:
        h.hoga.backtests._generated_seed = None  # as on a broker feed
        alice = await h.user("alice")
        r = await h.http.post(
            "/api/backtests",
            json={"kind": "sma_cross", "symbol": "005930", "source": "generated"},
            headers=alice,
        )
        assert r.status_code == 422 and r.json()["error"]["code"] == "backtest.bad_source"


@settings(max_examples=15, deadline=None)
@given(
    symbol=st.sampled_from(["005930", "000660", "035720", "069500"]),
    seed=st.integers(min_value=0, max_value=2**31),
)
def test_generated_bars_are_valid_krx_prices(symbol: str, seed: int) -> None:
    inst = UNIVERSE.get(symbol)
    assert inst is not None
    bars = history.daily_bars(inst, seed, date(2026, 12, 4), days=60)
    assert len(bars) == 60
    assert [b.start for b in bars] == sorted({b.start for b in bars})
    prev = None
    for b in bars:
        assert b.low <= min(b.open, b.close) <= max(b.open, b.close) <= b.high
        for p in (b.open, b.high, b.low, b.close):
            assert krx.round_to_tick(p, inst.kind) == p and p > 0
        if prev is not None:
            lower, upper = krx.price_limits(krx.round_to_tick(prev, inst.kind), inst.kind)
            assert lower <= b.close <= upper
        prev = b.close
    assert bars[-1].close == krx.round_to_tick(inst.base_price, inst.kind)
