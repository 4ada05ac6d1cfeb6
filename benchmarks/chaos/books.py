"""The checks after every chaos cycle, from hoga's database and from the broker's own records.

* **lost** - an order hoga acknowledged (202) is not in its database (or not as sent);
* **duplicated** - one order reached the broker twice: the paper broker journaled the same
  client order id twice, or a fake booked two identical orders (the run never sends the same
  order twice, see ``burst.py``);
* **unmatched** - the broker booked an order hoga does not know it placed, or hoga records a
  broker order id the broker never booked;
* **stuck** - an order still QUEUED, SUBMITTING, UNKNOWN or CANCEL_PENDING after the settle wait;
* **books** - hoga's books disagree with its own fills (orders' filled quantity and amount,
  positions, the cash moved by fills) or with the broker's books (cash and positions of the
  fake's account; the paper broker's journal replayed).
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
from tests.pg_support import raw_dsn

from benchmarks.chaos.burst import Sent
from benchmarks.chaos.world import Account, World

STUCK = ("QUEUED", "SUBMITTING", "UNKNOWN", "CANCEL_PENDING")
FILL_KINDS = ("buy", "sell", "commission", "tax")


class Db:
    """Read-only access to hoga's database (SQLite file or PostgreSQL as the superuser)."""

    def __init__(self, url: str) -> None:
        self.url = url

    async def rows(self, sql: str) -> list[dict[str, Any]]:
        if self.url.startswith("sqlite"):
            path = self.url.split("///", 1)[1]
            return await asyncio.to_thread(_sqlite_rows, path, sql)
        conn = await asyncpg.connect(raw_dsn(self.url))
        try:
            return [dict(r) for r in await conn.fetch(sql)]
        finally:
            await conn.close()


def _sqlite_rows(path: str, sql: str) -> list[dict[str, Any]]:
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30)
    conn.row_factory = sqlite3.Row
    try:
        return [dict(r) for r in conn.execute(sql).fetchall()]
    finally:
        conn.close()


@dataclass
class Snapshot:
    """hoga's side: orders, fills, positions and cash per account."""

    orders: dict[int, dict[str, Any]]
    fills: list[dict[str, Any]]
    positions: dict[int, dict[str, int]]
    cash: dict[int, int]
    fill_cash: dict[int, int]

    @classmethod
    async def read(cls, db: Db) -> Snapshot:
        orders = await db.rows(
            "select id, account_id, client_order_id, symbol, side, type, qty, price, status, "
            "filled_qty, filled_amount, broker_order_id, reason_code from orders"
        )
        fills = await db.rows(
            "select order_id, account_id, broker_fill_id, symbol, side, qty, price, commission, "
            "tax from fills"
        )
        positions: dict[int, dict[str, int]] = defaultdict(dict)
        for r in await db.rows("select account_id, symbol, qty from positions"):
            if r["qty"]:
                positions[r["account_id"]][r["symbol"]] = int(r["qty"])
        cash: dict[int, int] = defaultdict(int)
        fill_cash: dict[int, int] = defaultdict(int)
        for r in await db.rows(
            "select account_id, kind, sum(amount) as total from cash_ledger group by account_id, kind"
        ):
            cash[r["account_id"]] += int(r["total"])
            if r["kind"] in FILL_KINDS:
                fill_cash[r["account_id"]] += int(r["total"])
        return cls({int(o["id"]): o for o in orders}, fills, positions, cash, fill_cash)

    def stuck(self) -> list[dict[str, Any]]:
        return [o for o in self.orders.values() if o["status"] in STUCK]


@dataclass
class BrokerBooks:
    """The broker's side for one account: what it booked, its cash and positions."""

    orders: list[dict[str, Any]] = field(default_factory=list)
    cash: int = 0
    positions: dict[str, int] = field(default_factory=dict)
    placements: Counter[str] = field(default_factory=Counter)  # paper: client id -> bookings


async def broker_books(world: World, paper_journal: Path) -> dict[int, BrokerBooks]:
    """The broker's books per hoga account id."""
    out: dict[int, BrokerBooks] = {}
    by_number: dict[tuple[str, str], Account] = {
        (a.broker, a.broker_account): a for a in world.accounts if a.broker_account
    }
    for broker, fake in world.fakes.items():
        orders = (await fake.get("orders"))["orders"]
        accounts = (await fake.get("accounts"))["accounts"]
        for acct in accounts:
            owner = by_number.get((broker, acct["account"]))
            if owner is None:
                continue
            books = out.setdefault(owner.account_id, BrokerBooks())
            books.cash = int(acct["cash"])
            books.positions = {s: int(p["qty"]) for s, p in acct["positions"].items() if p["qty"]}
        for o in orders:
            owner = by_number.get((broker, o["account"]))
            if owner is not None:
                out.setdefault(owner.account_id, BrokerBooks()).orders.append(o)
    paper_ids = {a.account_id for a in world.accounts if a.broker == "paper"}
    for account_id, books in _paper_books(paper_journal).items():
        if account_id in paper_ids:
            out[account_id] = books
    return out


def _paper_books(journal: Path) -> dict[int, BrokerBooks]:
    """Replay the paper broker's journal: its bookings, cash and positions per account."""
    out: dict[int, BrokerBooks] = {}
    orders: dict[tuple[int, str], tuple[str, str]] = {}
    held: dict[int, Counter[str]] = defaultdict(Counter)
    if not journal.exists():
        return out
    for line in journal.read_text(encoding="utf-8").splitlines():
        try:
            r = json.loads(line)
        except ValueError:
            continue  # a torn last line after a kill
        a = r.get("a")
        if not isinstance(a, int):
            continue
        books = out.setdefault(a, BrokerBooks())
        if r["t"] == "open":
            books.cash = int(r["cash"])
        elif r["t"] == "place":
            books.placements[r["c"]] += 1
            orders[(a, r["o"])] = (r["s"], r["side"])
            books.orders.append({"order_no": r["o"], "client_order_id": r["c"]})
        elif r["t"] == "fill":
            symbol, side = orders[(a, r["o"])]
            q, amount = int(r["q"]), int(r["q"]) * int(r["p"])
            fee, tax = int(r["fee"]), int(r["tax"])
            books.cash += -amount - fee - tax if side == "buy" else amount - fee - tax
            held[a][symbol] += q if side == "buy" else -q
    for a, books in out.items():
        books.positions = {s: q for s, q in held[a].items() if q}
    return out


def _fake_key(o: dict[str, Any]) -> tuple[str, str, str, int, int]:
    return (o["symbol"], o["side"], o["type"], int(o["qty"]), int(o["price"] or 0))


def _broker_id(account: Account, o: dict[str, Any]) -> str:
    """The id hoga stores for a fake's order: KIS ODNO as a number, Kiwoom ``YYYYMMDD-<no>``."""
    if account.broker == "kiwoom":
        return f"{o['day'].replace('-', '')}-{o['order_no']}"
    return str(int(o["order_no"]))


def _hoga_id(account: Account, broker_order_id: str) -> str:
    if account.broker == "kis":
        return str(int(broker_order_id)) if broker_order_id.isdigit() else broker_order_id
    return broker_order_id


Finding = tuple[str, str]  # (a key that names the thing wrong, the description)


@dataclass
class Findings:
    """What one check found, by kind; each finding keyed so a run counts it once."""

    lost: list[Finding] = field(default_factory=list)
    duplicated: list[Finding] = field(default_factory=list)
    unmatched: list[Finding] = field(default_factory=list)
    stuck: list[Finding] = field(default_factory=list)
    books: list[Finding] = field(default_factory=list)

    @property
    def clean(self) -> bool:
        return not (self.lost or self.duplicated or self.unmatched or self.stuck or self.books)

    def all(self) -> list[Finding]:
        return [
            *[(k, f"LOST {x}") for k, x in self.lost],
            *[(k, f"DUPLICATED {x}") for k, x in self.duplicated],
            *[(k, f"UNMATCHED {x}") for k, x in self.unmatched],
            *[(k, f"STUCK {x}") for k, x in self.stuck],
            *[(k, f"BOOKS {x}") for k, x in self.books],
        ]


def check(
    world: World, acked: list[Sent], snap: Snapshot, brokers: dict[int, BrokerBooks]
) -> Findings:
    f = Findings()
    for s in acked:
        row = snap.orders.get(s.order_id or 0)
        if row is None or row["client_order_id"] != s.spec.client_order_id:
            f.lost.append(
                (
                    f"lost:{s.order_id}",
                    f"order {s.order_id} ({s.spec.client_order_id}, {s.spec.account.broker} account "
                    f"{s.spec.account.account_id}) was acknowledged 202 but "
                    + (
                        "is not in the database"
                        if row is None
                        else f"holds {row['client_order_id']}"
                    ),
                )
            )
    for o in snap.stuck():
        f.stuck.append(
            (
                f"stuck:{o['id']}",
                f"order {o['id']} ({o['client_order_id']}, account {o['account_id']}) is "
                f"{o['status']} (broker id {o['broker_order_id']}, filled "
                f"{o['filled_qty']}/{o['qty']})",
            )
        )
    for account in world.accounts:
        theirs = brokers.get(account.account_id, BrokerBooks())
        ours = [o for o in snap.orders.values() if o["account_id"] == account.account_id]
        _placement_checks(account, ours, theirs, f)
        _book_checks(account, ours, snap, theirs, f)
    return f


def _placement_checks(
    account: Account, ours: list[dict[str, Any]], theirs: BrokerBooks, f: Findings
) -> None:
    label = f"{account.broker} account {account.account_id}"
    known = {_hoga_id(account, str(o["broker_order_id"])): o for o in ours if o["broker_order_id"]}
    if account.broker == "paper":
        for cid, n in theirs.placements.items():
            if n > 1:
                f.duplicated.append(
                    (
                        f"dup:{label}:{cid}",
                        f"{label}: client order id {cid} booked {n} times by paper",
                    )
                )
        booked = {str(o["order_no"]): o for o in theirs.orders}
    else:
        new = [o for o in theirs.orders if o["kind"] == "new"]
        groups: dict[tuple[str, str, str, int, int], list[str]] = defaultdict(list)
        for o in new:
            groups[_fake_key(o)].append(str(o["order_no"]))
        for key, numbers in groups.items():
            if len(numbers) > 1:
                mine = [
                    f"{o['id']}:{o['client_order_id']}:{o['status']}"
                    for o in ours
                    if (o["symbol"], o["side"], o["type"], int(o["qty"]), int(o["price"] or 0))
                    == key
                ]
                f.duplicated.append(
                    (
                        f"dup:{label}:{key}",
                        f"{label}: {key} booked {len(numbers)} times at the {account.broker} "
                        f"fake (order nos {numbers}); hoga orders {mine}",
                    )
                )
        booked = {_broker_id(account, o): o for o in new}
    for bid, o in booked.items():
        if bid not in known:
            f.unmatched.append(
                (
                    f"broker:{label}:{bid}",
                    f"{label}: the broker booked {bid} ({o}); hoga knows no such order",
                )
            )
    for bid, o in known.items():
        if bid not in booked:
            f.unmatched.append(
                (
                    f"hoga:{label}:{bid}",
                    f"{label}: hoga order {o['id']} ({o['client_order_id']}, {o['status']}) "
                    f"names broker order {bid}, which the broker never booked",
                )
            )


def _book_checks(
    account: Account,
    ours: list[dict[str, Any]],
    snap: Snapshot,
    theirs: BrokerBooks,
    f: Findings,
) -> None:
    label = f"{account.broker} account {account.account_id}"
    fills = [x for x in snap.fills if x["account_id"] == account.account_id]
    by_order: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for x in fills:
        by_order[int(x["order_id"])].append(x)
    for o in ours:
        got = by_order.get(int(o["id"]), [])
        qty = sum(int(x["qty"]) for x in got)
        amount = sum(int(x["qty"]) * int(x["price"]) for x in got)
        if (qty, amount) != (int(o["filled_qty"]), int(o["filled_amount"])):
            f.books.append(
                (
                    f"order:{o['id']}",
                    f"{label}: order {o['id']} ({o['client_order_id']}) says filled "
                    f"{o['filled_qty']} for {o['filled_amount']} won; its fills add up to {qty} "
                    f"for {amount} ({[x['broker_fill_id'] for x in got]})",
                )
            )
    held: Counter[str] = Counter()
    moved = 0
    for x in fills:
        q, amount = int(x["qty"]), int(x["qty"]) * int(x["price"])
        held[x["symbol"]] += q if x["side"] == "buy" else -q
        fee, tax = int(x["commission"]), int(x["tax"])
        moved += -amount - fee - tax if x["side"] == "buy" else amount - fee - tax
    from_fills = {s: q for s, q in held.items() if q}
    positions = snap.positions.get(account.account_id, {})
    if positions != from_fills:
        f.books.append(
            (
                f"fills-positions:{label}",
                f"{label}: positions {positions} but fills add up to {from_fills}",
            )
        )
    if snap.fill_cash.get(account.account_id, 0) != moved:
        f.books.append(
            (
                f"fills-cash:{label}",
                f"{label}: the cash ledger moved {snap.fill_cash.get(account.account_id, 0)} won "
                f"for fills, the fills say {moved}",
            )
        )
    cash = snap.cash.get(account.account_id, 0)
    if cash != theirs.cash:
        f.books.append(
            (
                f"broker-cash:{label}",
                f"{label}: hoga cash {cash:,} but the broker's {theirs.cash:,} "
                f"(difference {cash - theirs.cash:+,} won)",
            )
        )
    if positions != theirs.positions:
        diff = {
            s: (positions.get(s, 0), theirs.positions.get(s, 0))
            for s in sorted(set(positions) | set(theirs.positions))
            if positions.get(s, 0) != theirs.positions.get(s, 0)
        }
        f.books.append(
            (
                f"broker-positions:{label}",
                f"{label}: positions differ from the broker's (hoga, broker): {diff}",
            )
        )
