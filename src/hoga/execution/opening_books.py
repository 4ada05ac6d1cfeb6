"""A real account's opening books: what the broker holds when hoga first meets the account.

Contract: on the first successful connection test of a real account, the broker's orderable
cash and holdings become the account's opening ledger entries and positions - once; later
differences are reported by reconciliation, never silently overwritten.
"""

from __future__ import annotations

from typing import Any

from hoga.brokers.base import AccountRef, Broker
from hoga.domain.clock import Clock
from hoga.domain.portfolio import Position
from hoga.store.db import Actor, Database
from hoga.store.repos import audit, ledger
from hoga.store.repos.accounts import AccountRecord


async def adopt_opening_books(
    db: Database, clock: Clock, acct: AccountRecord, broker: Broker, ref: AccountRef
) -> dict[str, Any] | None:
    """On the first successful test of a real account, take the broker's orderable cash
    and holdings as the account's opening books (once: later differences are reported by
    reconciliation, never silently overwritten)."""
    from hoga.store import tables as t

    async with db.tx(Actor.user(acct.user_id)) as conn:
        booked = (
            await conn.execute(
                t.cash_ledger.select()
                .with_only_columns(t.cash_ledger.c.id)
                .where(
                    t.cash_ledger.c.user_id == acct.user_id,
                    t.cash_ledger.c.account_id == acct.id,
                )
                .limit(1)
            )
        ).first()
    if booked is not None:
        return None
    balance = await broker.balance(ref)
    holdings = balance.positions or await broker.position_reports(ref)
    now = clock.now()
    async with db.tx(Actor.user(acct.user_id)) as conn:
        await ledger.post_cash(
            conn,
            acct.user_id,
            acct.id,
            balance.orderable,
            "opening",
            now,
            note="broker orderable cash when the account was first tested",
        )
        for p in holdings:
            await ledger.save_position(
                conn,
                acct.user_id,
                acct.id,
                p.symbol,
                Position(p.qty, p.qty * p.avg_price, 0),
                now,
            )
        await audit.record(
            conn,
            action="account.opening_books",
            now=now,
            user_id=acct.user_id,
            target=f"account:{acct.id}",
            detail={"cash": balance.orderable, "positions": len(holdings)},
        )
    return {
        "cash": balance.orderable,
        "positions": [{"symbol": p.symbol, "qty": p.qty} for p in holdings],
    }
