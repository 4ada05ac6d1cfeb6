"""Backtests through the API as background jobs (process pool), scoped by user."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from tests.bars import CSV
from tests.helpers import Harness, eventually, running


async def _wait_done(h: Harness, headers: dict[str, str], job: int) -> dict[str, Any]:
    user_id = (await h.http.get("/api/me", headers=headers)).json()["id"]

    async def check() -> bool:
        # Polled through the service: the API budget is 600 calls a minute.
        view = await h.hoga.backtests.get(user_id, job)
        return view["status"] in ("done", "error")

    await eventually(check, within=90, what=f"backtest {job}")
    return await h.get_json(f"/api/backtests/{job}", headers)


async def test_csv_backtest_job_reports_the_same_figures_as_the_cli(
    tmp_path: Path, db_url: str
) -> None:
    async with running(tmp_path, db_url) as h:
        alice = await h.user("alice")
        body = {
            "kind": "sma_cross",
            "symbol": "005930",
            "params": {"fast": 2, "slow": 3, "qty": 10},
            "source": "csv",
            "csv": CSV,
        }
        r = await h.http.post("/api/backtests", json=body, headers=alice)
        assert r.status_code == 202, r.text
        job = r.json()
        assert (
            job["status"] == "queued" and job["kind"] == "sma_cross" and job["cash"] == 10_000_000
        )
        done = await _wait_done(h, alice, job["id"])
        assert done["status"] == "done", done["error"]
        res = done["result"]
        assert res["final_equity"] == 9_979_307 and res["num_fills"] == 3
        assert [f["price"] for f in res["fills"]] == [71_200, 68_800, 72_500]
        curve = res["equity_curve"]
        assert len(curve) == 10 and set(curve[0]) == {"ts", "equity", "drawdown"}
        assert curve[-1]["equity"] == 9_979_307

        data = tmp_path / "bars.csv"
        data.write_text(CSV)
        cli = await asyncio.to_thread(
            subprocess.run,
            [sys.executable, "-m", "hoga", "backtest", "-s", "sma_cross", "--symbol", "005930",
             "--data", str(data), "-p", "fast=2", "-p", "slow=3", "-p", "qty=10", "--json"],
            capture_output=True, text=True, timeout=120, check=True,
        )  # fmt: skip
        figures = json.loads(cli.stdout)
        for key in ("final_equity", "total_return", "cagr", "max_drawdown", "sharpe", "fills"):
            assert res[key] == figures[key], key

        listed = (await h.http.get("/api/backtests", headers=alice)).json()["backtests"]
        assert [b["id"] for b in listed] == [job["id"]] and "result" not in listed[0]

        bob = await h.user("bob")
        r = await h.http.get(f"/api/backtests/{job['id']}", headers=bob)
        assert r.status_code == 404 and r.json()["error"]["code"] == "backtest.not_found"
        assert (await h.http.get("/api/backtests", headers=bob)).json()["backtests"] == []


async def test_bad_backtest_requests_create_nothing(tmp_path: Path, db_url: str) -> None:
    async with running(tmp_path, db_url) as h:
        alice = await h.user("alice")
        base = {"kind": "sma_cross", "symbol": "005930", "source": "csv", "csv": CSV}
        cases = [
            ({"kind": "nope"}, "strategy.unknown_kind", "kind"),
            ({"params": {"fast": 9, "slow": 3}}, "strategy.bad_params", "fast"),
            ({"symbol": "999999"}, "strategy.unknown_symbol", "symbol"),
            (
                {"csv": "date,open,high,low,volume\n2026-02-02,1,1,1,1\n"},
                "data.missing_column",
                "close",
            ),
            ({"csv": CSV.replace("2026-02-03", "2026-02-01")}, "data.unsorted", "date"),
            ({"csv": None}, "data.empty", "csv"),
            ({"source": "stored", "csv": None}, "backtest.no_data", "symbol"),
            ({"interval": "1m"}, "backtest.bad_interval", "interval"),
        ]
        for change, code, field in cases:
            r = await h.http.post("/api/backtests", json={**base, **change}, headers=alice)
            assert r.status_code == 422, (change, r.text)
            err = r.json()["error"]
            assert (err["code"], err["field"]) == (code, field), change
        r = await h.http.post("/api/backtests", json={**base, "cash": 0}, headers=alice)
        assert r.status_code == 422 and r.json()["error"]["field"] == "cash"
        assert (await h.http.get("/api/backtests", headers=alice)).json()["backtests"] == []


async def test_stored_bars_backtest(tmp_path: Path, db_url: str) -> None:
    async with running(tmp_path, db_url) as h:
        alice = await h.user("alice")
        from hoga.domain.market import Bar

        t0 = 1_769_990_400  # 2026-02-02 09:00 KST
        closes = [100, 99, 98, 103, 104, 99, 97, 98]
        h.hoga.bars._pending.extend(
            Bar("005930", t0 + 60 * i, 60, c, c, c, c, 10) for i, c in enumerate(closes)
        )
        await h.hoga._flush_bars()
        r = await h.http.post(
            "/api/backtests",
            json={
                "kind": "sma_cross",
                "symbol": "005930",
                "params": {"fast": 2, "slow": 3, "qty": 1},
            },
            headers=alice,
        )
        assert r.status_code == 202, r.text
        done = await _wait_done(h, alice, r.json()["id"])
        assert done["status"] == "done", done["error"]
        # 09:03 crosses up -> buy at 09:04's open 104; 09:05 crosses down -> sell at 09:06's 97.
        assert [(f["side"], f["price"]) for f in done["result"]["fills"]] == [
            ("buy", 104),
            ("sell", 97),
        ]
        assert done["result"]["interval"] == 60 and done["result"]["bars"] == len(closes)
