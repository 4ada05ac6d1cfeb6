"""An order stuck UNKNOWN that reconciliation cannot check (Kiwoom's reports cover today only,
so an order left UNKNOWN across midnight is ``unverifiable``) is settled by an admin: cancelled
or rejected releases its reserve; filled books exactly what a broker's fill would; it works
once, for UNKNOWN orders only, for admins only, through the API and the CLI."""

from __future__ import annotations

import asyncio
import sys
from datetime import date
from pathlib import Path
from typing import Any

from hoga.brokers.base import AccountRef, ReportsUnavailable
from hoga.domain import krx
from hoga.domain.orders import Side
from hoga.store.db import Actor
from hoga.store.repos import accounts as accounts_repo
from hoga.store.repos import ledger
from tests.e2e.conftest import server_env
from tests.helpers import Harness, eventually, free_port, running, running_unanswered


def _blind(h: Harness) -> None:
    """The broker can no longer list the order's day (Kiwoom after midnight)."""

    async def unavailable(account: AccountRef, day: date) -> list[Any]:
        raise ReportsUnavailable("reports cover today only", "paper.reports_unavailable")

    h.hoga.paper.order_reports = unavailable  # type: ignore[method-assign]
    h.hoga.paper.fill_reports = unavailable  # type: ignore[method-assign]


async def _unknown_order(h: Harness, user: dict[str, str], qty: int = 1) -> dict[str, Any]:
    """A buy the paper broker accepts but never answers for: UNKNOWN, and unverifiable."""
    h.pump(300)
    quote = (await h.http.get("/api/market/quotes?symbols=005930", headers=user)).json()
    price = krx.round_to_tick(int(quote["quotes"][0]["price"] * 0.8))
    _blind(h)
    r = await h.http.post(
        "/api/orders",
        headers=user,
        json={"symbol": "005930", "side": "buy", "type": "limit", "qty": qty, "price": price},
    )
    assert r.status_code == 202, r.text
    oid, account = r.json()["id"], r.json()["account_id"]

    async def unverifiable() -> bool:
        last = h.hoga.reconciler.last.get(account)
        return last is not None and oid in last.unverifiable

    await eventually(unverifiable, 15.0, "reconciliation to report the order unverifiable")
    order = await h.order(user, oid)
    assert order["status"] == "UNKNOWN" and order["reserved_cash"] > 0
    return order


async def _settle(h: Harness, headers: dict[str, str], oid: int, **body: Any) -> Any:
    return await h.http.post(f"/api/admin/orders/{oid}/settle", headers=headers, json=body)


async def _cash(h: Harness, user: dict[str, str]) -> tuple[int, int]:
    p = (await h.http.get("/api/portfolio", headers=user)).json()
    return p["cash"], p["reserved_cash"]


async def test_settled_as_cancelled_releases_the_reserve_once(tmp_path: Path, db_url: str) -> None:
    async with running_unanswered(tmp_path, db_url) as h:
        user = await h.user("cat", "basic")
        admin = await h.admin()
        cash_before, _ = await _cash(h, user)
        order = await _unknown_order(h, user)
        oid, account = order["id"], order["account_id"]
        assert (await _cash(h, user))[1] == order["reserved_cash"]

        r = await _settle(h, user, oid, outcome="cancelled", reason="HTS: 미체결 취소")
        assert r.status_code == 403, r.text
        r = await _settle(h, admin, oid, outcome="cancelled", reason="HTS shows no execution")
        assert r.status_code == 200, r.text
        assert r.json()["status"] == "CANCELLED" and r.json()["reserved_cash"] == 0
        assert await _cash(h, user) == (cash_before, 0)

        again = await _settle(
            h, admin, oid, outcome="filled", filled_qty=1, avg_price=1000, reason="again"
        )
        assert again.status_code == 409 and again.json()["error"]["code"] == "order.not_unknown"
        assert (await h.order(user, oid))["fills"] == []

        entries = (
            await h.http.get("/api/admin/audit?action=order.settled_by_hand", headers=admin)
        ).json()["entries"]
        assert len(entries) == 1
        assert entries[0]["detail"]["outcome"] == "cancelled"
        assert entries[0]["detail"]["reason"] == "HTS shows no execution"

        # Reconciliation no longer reports it.
        result = await h.hoga.reconciler.reconcile_account(account)
        assert oid not in result.unverifiable


async def test_settled_as_filled_books_what_a_broker_fill_would(
    tmp_path: Path, db_url: str
) -> None:
    async with running_unanswered(tmp_path, db_url) as h:
        user = await h.user("fil", "basic")
        admin = await h.admin()
        cash_before, _ = await _cash(h, user)
        order = await _unknown_order(h, user, qty=3)
        oid, uid = order["id"], (await h.hoga.auth.find_user("fil")).id
        price = order["price"] - krx.tick_size(order["price"])

        off_grid = await _settle(
            h, admin, oid, outcome="filled", filled_qty=3, avg_price=price + 1, reason="x"
        )
        assert off_grid.status_code == 422, off_grid.text
        too_many = await _settle(
            h, admin, oid, outcome="filled", filled_qty=4, avg_price=price, reason="x"
        )
        assert too_many.status_code == 422, too_many.text

        r = await _settle(
            h, admin, oid, outcome="filled", filled_qty=3, avg_price=price, reason="HTS: 3주 체결"
        )
        assert r.status_code == 200, r.text
        assert r.json()["status"] == "FILLED" and r.json()["reserved_cash"] == 0

        # What a broker's fill of 3 @ price would cost (per-order rounding, the order's day).
        async with h.hoga.db.tx(Actor.user(uid)) as conn:
            acct = await accounts_repo.get_account(conn, uid, order["account_id"])
            pos = await ledger.position(conn, uid, order["account_id"], "005930")
        assert acct is not None
        rate = acct.commission_rate
        day = date.fromisoformat(order["created_at"][:10])
        fee, tax = krx.fill_costs(Side.BUY, 3, price, day, "KOSPI", rate, prior_amount=0)
        detail = await h.order(user, oid)
        assert [(f["qty"], f["price"], f["commission"], f["tax"]) for f in detail["fills"]] == [
            (3, price, fee, tax)
        ]
        assert pos.qty == 3
        assert await _cash(h, user) == (cash_before - 3 * price - fee - tax, 0)

        again = await _settle(
            h, admin, oid, outcome="filled", filled_qty=3, avg_price=price, reason="again"
        )
        assert again.status_code == 409
        assert len((await h.order(user, oid))["fills"]) == 1
        assert await _cash(h, user) == (cash_before - 3 * price - fee - tax, 0)


async def test_partly_filled_then_cancelled(tmp_path: Path, db_url: str) -> None:
    async with running_unanswered(tmp_path, db_url) as h:
        user = await h.user("par", "basic")
        admin = await h.admin()
        cash_before, _ = await _cash(h, user)
        order = await _unknown_order(h, user, qty=3)
        price = order["price"]
        events = h.hoga.bus.subscribe((await h.hoga.auth.find_user("par")).id)
        r = await _settle(
            h,
            admin,
            order["id"],
            outcome="filled",
            filled_qty=2,
            avg_price=price,
            reason="HTS: 2주 체결 후 취소",
        )
        assert r.status_code == 200, r.text
        body = r.json()
        assert (body["status"], body["filled_qty"], body["reserved_cash"]) == ("CANCELLED", 2, 0)
        cash, reserved = await _cash(h, user)
        fills = (await h.order(user, order["id"]))["fills"]
        assert [(f["qty"], f["price"]) for f in fills] == [(2, price)]
        cost = sum(f["commission"] + f["tax"] for f in fills)
        assert (cash, reserved) == (cash_before - 2 * price - cost, 0)
        # The dashboard hears of it like of any fill and order update.
        seen = [events.get_nowait() for _ in range(2)]
        assert [e["type"] for e in seen if e] == ["fill", "order"]
        assert seen[1] and seen[1]["order"]["status"] == "CANCELLED"


async def test_only_an_unknown_order_can_be_settled(tmp_path: Path, db_url: str) -> None:
    async with running(tmp_path, db_url) as h:
        user = await h.user("acc", "basic")
        admin = await h.admin()
        h.pump(300)
        quote = (await h.http.get("/api/market/quotes?symbols=005930", headers=user)).json()
        price = krx.round_to_tick(int(quote["quotes"][0]["price"] * 0.8))
        r = await h.http.post(
            "/api/orders",
            headers=user,
            json={"symbol": "005930", "side": "buy", "type": "limit", "qty": 1, "price": price},
        )
        oid = r.json()["id"]
        await h.wait_status(user, oid, "ACCEPTED")
        r = await _settle(h, admin, oid, outcome="rejected", reason="wrong order")
        assert r.status_code == 409 and r.json()["error"]["code"] == "order.not_unknown"
        assert "UNKNOWN" in r.json()["error"]["message"]
        assert (await h.order(user, oid))["status"] == "ACCEPTED"
        r = await _settle(h, admin, 10**9, outcome="rejected", reason="none")
        assert r.status_code == 404


async def test_the_cli_settles_beside_a_running_server(tmp_path: Path, db_url: str) -> None:
    async with running_unanswered(tmp_path, db_url) as h:
        user = await h.user("cli", "basic")
        order = await _unknown_order(h, user)
        env = server_env(tmp_path / "var", free_port(), HOGA_DATABASE_URL=db_url)
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "hoga",
            "order",
            "settle",
            str(order["id"]),
            "--as",
            "rejected",
            "--reason",
            "HTS: 주문 거부",
            env=env,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await asyncio.wait_for(proc.communicate(), 120)
        assert proc.returncode == 0, err.decode()
        assert "REJECTED" in out.decode()
        detail = await h.order(user, order["id"])
        assert detail["status"] == "REJECTED" and detail["reserved_cash"] == 0
        # The running server's reconciler re-reads the order and leaves it alone.
        result = await h.hoga.reconciler.reconcile_account(order["account_id"])
        assert order["id"] not in result.unverifiable
        assert (await h.order(user, order["id"]))["status"] == "REJECTED"
        entries = (
            await h.http.get(
                "/api/admin/audit?action=order.settled_by_hand", headers=await h.admin()
            )
        ).json()["entries"]
        assert [e["detail"]["outcome"] for e in entries] == ["rejected"]
        assert entries[0]["detail"]["by"].startswith("hoga order settle (")
