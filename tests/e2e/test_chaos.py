"""Chaos: the server dies while a submit is in flight; after a restart the order is reconciled to
its true state from the broker's book, and the broker saw it exactly once."""

from __future__ import annotations

import json
import signal
from pathlib import Path

import httpx
import pytest

from tests.e2e.conftest import login, start_server
from tests.helpers import ADMIN_PASSWORD, eventually_sync


def _placements(journal: Path, client_order_id: str) -> int:
    n = 0
    for line in journal.read_text().splitlines():
        rec = json.loads(line)
        if rec.get("t") == "place" and rec.get("c") == client_order_id:
            n += 1
    return n


@pytest.mark.timeout(600)  # two server start-ups, each up to 3 minutes on a loaded machine
def test_kill_mid_submit_then_restart_reconciles_without_resending(tmp_path: Path) -> None:
    data = tmp_path / "var"
    journal = data / "paper" / "journal.jsonl"
    srv = start_server(
        data,
        "crash.log",
        HOGA_ADMIN_PASSWORD=ADMIN_PASSWORD,
        HOGA_PAPER_FAULTS="accept_then_timeout=1",
        HOGA_SUBMIT_TIMEOUT="120",
    )
    headers = login(srv.url)
    r = httpx.post(
        f"{srv.url}/api/orders",
        headers=headers,
        json={
            "symbol": "005930",
            "side": "buy",
            "type": "market",
            "qty": 5,
            "client_order_id": "chaos-1",
        },
    )
    assert r.status_code == 202, r.text
    order_id = r.json()["id"]
    # The broker has booked it; hoga is still waiting for the answer that will never come.
    eventually_sync(
        lambda: journal.exists() and _placements(journal, "chaos-1") == 1, what="paper booking"
    )
    status = httpx.get(f"{srv.url}/api/orders/{order_id}", headers=headers).json()["status"]
    assert status == "SUBMITTING"
    srv.proc.send_signal(signal.SIGKILL)
    srv.proc.wait(10)

    again = start_server(data, "restart.log")
    headers = login(again.url)

    def settled() -> dict[str, object] | None:
        o = httpx.get(f"{again.url}/api/orders/{order_id}", headers=headers).json()
        return o if o["status"] in ("ACCEPTED", "PARTIALLY_FILLED", "FILLED") else None

    order = eventually_sync(settled, what="reconciliation")
    assert order["broker_order_id"]
    history = [h["status"] for h in order["history"]]  # type: ignore[index]
    assert "UNKNOWN" in history, history
    # Never resent: one booking at the broker, one order at hoga.
    assert _placements(journal, "chaos-1") == 1
    filled = eventually_sync(
        lambda: (
            (o := httpx.get(f"{again.url}/api/orders/{order_id}", headers=headers).json())["status"]
            == "FILLED"
            and o
        ),
        what="fill",
    )
    portfolio = httpx.get(f"{again.url}/api/portfolio", headers=headers).json()
    pos = next(p for p in portfolio["positions"] if p["symbol"] == "005930")
    assert pos["qty"] == filled["filled_qty"] == 5
    assert len(httpx.get(f"{again.url}/api/orders", headers=headers).json()["orders"]) == 1
    assert again.stop() == 0
