"""The risk gate's one-statement read answers what the four separate reads answer.

``store/repos/risk_inputs.read`` replaced ``ledger.day_counters``, ``ledger.cash``,
``orders.exposure`` and ``ledger.positions`` on the intake path; on SQLite and PostgreSQL
(row-level security on), for a user with two accounts, open and finished orders on both
sides, positions (one flat) and another user's rows beside them, the answers are the same.
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Any

from hoga.domain.clock import KST
from hoga.domain.portfolio import Position
from hoga.store.db import SYSTEM, Actor, Database
from hoga.store.repos import accounts as accounts_repo
from hoga.store.repos import ledger, risk_inputs
from hoga.store.repos import orders as orders_repo
from hoga.store.repos import users as users_repo

NOW = datetime(2026, 11, 26, 10, 0, tzinfo=KST)
DAY = date(2026, 11, 26)


async def _user(db: Database, name: str) -> tuple[int, int, int]:
    """A user with two accounts: (user id, account id, other account id)."""
    async with db.tx(SYSTEM) as conn:
        user = await users_repo.create_user(
            conn, username=name, password_hash="x", tier="basic", is_admin=False, now=NOW
        )
        ids = []
        for label in ("a", "b"):
            acct = await accounts_repo.create_account(
                conn,
                user.id,
                broker="paper",
                env="paper",
                label=label,
                account_masked=f"{name}-{label}",
                fingerprint=f"{name}-{label}",
                commission_rate=Decimal("0.00015"),
                now=NOW,
            )
            ids.append(acct.id)
    return user.id, ids[0], ids[1]


async def _order(
    conn: object, uid: int, aid: int, n: int, side: str, status: str, qty: int, filled: int
) -> None:
    await orders_repo.insert_order(
        conn,  # type: ignore[arg-type]
        user_id=uid,
        account_id=aid,
        strategy_id=None,
        client_order_id=f"c{uid}-{aid}-{n}",
        symbol="005930" if n % 2 else "000660",
        side=side,
        type="limit",
        tif="day",
        venue="KRX",
        qty=qty,
        price=50_000,
        status=status,
        priority=1,
        urgent=False,
        source="api",
        filled_qty=filled,
        filled_amount=filled * 50_000,
        commission=0,
        tax=0,
        reserved_cash=qty * 50_000 if side == "buy" and status != "FILLED" else 0,
        reason_code=None,
        reason=None,
        trading_day=DAY,
        created_at=NOW,
        updated_at=NOW,
    )


async def test_one_statement_reads_what_four_did(db: Database) -> None:
    uid, aid, other_aid = await _user(db, "risk1")
    stranger, s_aid, _ = await _user(db, "risk2")
    async with db.tx(SYSTEM) as conn:
        await ledger.post_cash(conn, uid, aid, 10_000_000, "deposit", NOW)
        await ledger.post_cash(conn, uid, other_aid, 7, "deposit", NOW)
        await ledger.post_cash(conn, stranger, s_aid, 99, "deposit", NOW)
        await ledger.bump_day(conn, uid, DAY, trades=3, realized=-1_500)
        await ledger.bump_day(conn, stranger, DAY, trades=9, realized=5)
        for acct, symbol, pos in (
            (aid, "005930", Position(10, 500_000, 100)),
            (aid, "000660", Position(0, 0, -20)),  # flat: not read
            (other_aid, "035720", Position(4, 160_000, 0)),
        ):
            await ledger.save_position(conn, uid, acct, symbol, pos, NOW)
        await ledger.save_position(conn, stranger, s_aid, "005930", Position(1, 1, 0), NOW)
        for n, (acct, side, status, qty, filled) in enumerate(
            (
                (aid, "buy", "QUEUED", 3, 0),
                (aid, "buy", "ACCEPTED", 5, 0),
                (aid, "sell", "PARTIALLY_FILLED", 6, 2),
                (aid, "sell", "ACCEPTED", 1, 0),
                (aid, "buy", "FILLED", 2, 2),  # finished: holds nothing
                (other_aid, "buy", "ACCEPTED", 4, 0),  # another account
                (s_aid, "sell", "QUEUED", 8, 0),  # another user
            ),
            start=1,
        ):
            await _order(
                conn, stranger if acct == s_aid else uid, acct, n, side, status, qty, filled
            )

    for day in (DAY, date(2026, 11, 27)):  # a day with counters, and one without
        async with db.tx(Actor.user(uid)) as conn:
            rows = await risk_inputs.read(conn, uid, aid, day)
            counters = await ledger.day_counters(conn, uid, day)
            cash = await ledger.cash(conn, uid, aid)
            exposure = await orders_repo.exposure(conn, uid, aid)
            positions = await ledger.positions(conn, uid)
        assert (rows.trades, rows.realized, rows.unrealized_start) == counters
        assert rows.cash == cash == 10_000_000
        assert (rows.reserved, rows.open_sells, rows.open_buys) == exposure
        assert sorted(rows.positions, key=lambda p: (p.account_id, p.symbol)) == positions
        assert {p.symbol for p in rows.positions} == {"005930", "035720"}
    assert rows.reserved == (3 + 5) * 50_000
    assert rows.open_sells == {"005930": 6 - 2, "000660": 1}
    assert rows.open_buys == {"005930": 3, "000660": 5}


async def _plan(conn: Any, uid: int, aid: int) -> str:
    """The database's plan for the risk read, as text (the index names it uses)."""
    sqlite = conn.dialect.name == "sqlite"
    day = DAY.isoformat() if sqlite else DAY  # the driver's own type: no SQLAlchemy here
    state = risk_inputs._READ.compile(dialect=conn.dialect).construct_expanded_state(
        {"uid": uid, "aid": aid, "day": day}
    )
    compiled, params = state.statement, tuple(state.positional_parameters)
    if sqlite:
        rows = await conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {compiled}", params)
        return "\n".join(str(r[-1]) for r in rows)
    # PostgreSQL: a few rows make a sequential scan cheapest; forbid it to see which index
    # the planner would take once the table is large.
    await conn.exec_driver_sql("SET LOCAL enable_seqscan = off")
    rows = await conn.exec_driver_sql(f"EXPLAIN {compiled}", params)
    return "\n".join(str(r[0]) for r in rows)


async def test_open_orders_are_found_by_account_and_state_not_by_walking_the_history(
    db: Database,
) -> None:
    """The exposure read asks for one account's open orders; it used to walk every order the
    user had ever placed (the only index it could use was ``user_id``), so each order cost more
    than the last for the life of the database."""
    uid, aid, _ = await _user(db, "risk3")
    async with db.tx(SYSTEM) as conn:
        for n in range(1, 41):
            await _order(conn, uid, aid, n, "buy", "FILLED" if n > 2 else "ACCEPTED", 1, 0)
    async with db.tx(SYSTEM) as conn:
        plan = await _plan(conn, uid, aid)
    assert "ix_orders_account_id_status" in plan, plan
