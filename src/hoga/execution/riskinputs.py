"""What the risk gate needs to know, read in the caller's transaction.

The gate (``execution/risk.py``) is a pure function of ``RiskInputs``; this module gathers
them - the day's counters, cash, what open orders hold back, positions marked at the last
quotes (one statement: ``store/repos/risk_inputs.py``), the quote's age - and remembers recent intents for the duplicate check.
"""

from __future__ import annotations

from collections import defaultdict, deque
from collections.abc import Callable
from datetime import date
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from hoga.domain.market import Instrument
from hoga.domain.orders import OrderIntent
from hoga.execution import risk
from hoga.execution.ordercore import OrderCore
from hoga.store.repos import ledger
from hoga.store.repos import risk_inputs as risk_rows
from hoga.store.repos.accounts import AccountRecord

AccountOpen = Callable[[str, str, str | None], bool]
#: The KRX/Nextrade session that takes an intent now for an account (broker, env, url, intent);
#: None: no open session does (``TradingHours.session_for``).
AccountSession = Callable[[str, str, str | None, OrderIntent], str | None]


class RiskReader:
    """Reads ``RiskInputs`` for one intent; keeps the per-user recent-intent window."""

    def __init__(
        self,
        core: OrderCore,
        account_open: AccountOpen,
        account_session: AccountSession | None = None,
    ) -> None:
        self._core = core
        # Per account (broker, env, url): real-money accounts follow the KRX calendar whatever
        # the server's market mode (execution/gate.py).
        self._account_open = account_open
        # The session an order goes into (sessions and order types, issue 14); without a
        # calendar, the continuous session for the types it takes (demo mode).
        self._account_session: AccountSession = account_session or (
            lambda broker, env, url, intent: risk.order_session(
                intent, core.clock.now(), calendar=False
            )
        )
        self._recent: dict[int, deque[tuple[float, tuple[Any, ...]]]] = defaultdict(deque)

    def _is_duplicate(self, user_id: int, intent: OrderIntent, now: float) -> bool:
        window = self._core.policy.duplicate_window
        if intent.client_order_id is not None or window <= 0:
            return False
        key = (intent.account_id, intent.symbol, intent.side, intent.type, intent.qty, intent.price)
        recent = self._recent[user_id]
        while recent and recent[0][0] < now - window:
            recent.popleft()
        return any(k == key for _, k in recent)

    def remember(self, user_id: int, intent: OrderIntent, now: float) -> None:
        key = (intent.account_id, intent.symbol, intent.side, intent.type, intent.qty, intent.price)
        self._recent[user_id].append((now, key))

    async def read(
        self,
        conn: AsyncConnection,
        user: Any,
        tier: Any,
        acct: AccountRecord,
        intent: OrderIntent,
        inst: Instrument,
        day: date,
        mono: float,
    ) -> risk.RiskInputs:
        """The gate's inputs for ``intent`` on ``acct`` (``intent.account_id`` is ``acct``)."""
        core = self._core
        uid = user.id
        account_id = acct.id
        # One statement for the four reads (store/repos/risk_inputs.py).
        rows = await risk_rows.read(conn, uid, account_id, day)
        trades, realized, unreal_start = rows.trades, rows.realized, rows.unrealized_start
        cash, reserved = rows.cash, rows.reserved
        open_sells, open_buys, positions = rows.open_sells, rows.open_buys, rows.positions
        held = {p.symbol: p for p in positions if p.account_id == account_id}
        unreal = 0
        for p in positions:
            last = core.quotes.last(p.symbol)
            if last is not None:
                unreal += p.position.unrealized_pnl(last.price)
        if unreal_start is None:
            # First look at this day: today's P&L is measured from here.
            await ledger.bump_day(conn, uid, day, unrealized_start=unreal)
            unreal_start = unreal
        last = core.quotes.last(intent.symbol)
        pos = held.get(intent.symbol)
        return risk.RiskInputs(
            intent=intent,
            instrument=inst,
            last_price=last.price if last else None,
            tier=tier,
            user_state=user.trading_state,
            server_state=core.server_state,
            market_open=self._account_open(acct.broker, acct.env, acct.base_url),
            session=self._account_session(acct.broker, acct.env, acct.base_url, intent),
            quote_age=None if last is None else max(0.0, core.clock.time() - last.ts),
            max_quote_age=core.policy.max_quote_age,
            designation_policy=core.policy.designation_policy,
            trades_today=trades,
            max_order_value=user.max_order_value or core.policy.max_order_value,
            daily_loss_limit=user.daily_loss_limit
            if user.daily_loss_limit is not None
            else core.policy.daily_loss_limit,
            daily_pnl=realized + unreal - unreal_start,
            cash=cash,
            reserved_cash=reserved,
            held_qty=pos.qty if pos else 0,
            open_sell_qty=open_sells.get(intent.symbol, 0),
            held_symbols=frozenset(p.symbol for p in positions),
            pending_buy_symbols=frozenset(open_buys),
            commission_rate=acct.commission_rate,
            duplicate=self._is_duplicate(uid, intent, mono),
        )
