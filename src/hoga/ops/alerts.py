"""What the notifier learns by watching the server rather than from the event bus.

Every ``interval`` seconds (default 5) ``AlertWatch`` reads the running parts and tells the
notifier about changes, once per change:

* the server kill switch (``OrderService.server_state``) moved: ``kill_switch`` to every user
  with a channel for it;
* the market-data feed went down or came back (the same verdict as ``/ready``): admin alert;
* a reconciliation round found positions or cash differing from the broker's: admin alert
  (again only after that account agreed once);
* the day's regular session closed 10 minutes ago: the daily summary (fills, commission,
  tax, realised P&L - KST times from ``domain/krx.py``) to every user with a channel for it,
  once per trading day (remembered in ``system_state``, so a restart does not send it twice).

Broker accounts going down and coming back arrive as ``BrokerHealth`` hooks
(``on_broker_down``/``on_broker_up``) and go to the account's owner as ``broker_down``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import date, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, select

from hoga.domain import krx
from hoga.execution.readiness import feed_part
from hoga.notify import store as notify_store
from hoga.store import tables as t
from hoga.store.db import SYSTEM, Actor
from hoga.store.repos import ledger
from hoga.store.repos import system as system_repo

if TYPE_CHECKING:
    from hoga.app import HogaApp
    from hoga.notify.service import Notifier

log = logging.getLogger(__name__)

SUMMARY_KEY = "notify.daily_summary"
SUMMARY_DELAY = timedelta(minutes=10)


class AlertWatch:
    """See the module docstring."""

    def __init__(self, app: HogaApp, notifier: Notifier, *, interval: float = 5.0) -> None:
        self.app = app
        self.notifier = notifier
        self.interval = interval
        self._kill_state: str | None = None
        self._feed_down = False
        self._mismatched: set[int] = set()
        self._summary_day: date | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            try:
                await self.check()
            except Exception:
                log.exception("alert watch round failed")

    async def check(self) -> None:
        await self.check_kill_switch()
        await self.check_feed()
        await self.check_reconciliation()
        await self.check_daily_summary()

    # --- kill switch

    async def check_kill_switch(self) -> None:
        state = self.app.orders.server_state
        if self._kill_state is None:  # the first look: the state the server started with
            self._kill_state = state
        if state == self._kill_state:
            return
        before, self._kill_state = self._kill_state, state
        async with self.app.db.tx(SYSTEM) as conn:
            users = await notify_store.users_with_event(conn, "kill_switch")
        for uid in users:
            self.notifier.notify_user(
                uid,
                "kill_switch",
                f"킬 스위치 (kill switch): {state}",
                f"서버 거래 상태가 {before} → {state}로 바뀌었습니다 (server trading state changed)",
            )

    # --- feed

    async def check_feed(self) -> None:
        app = self.app
        part = feed_part(
            app.hub.health(), trading=app.market_open(), stale_after=app.settings.hub_stale_seconds
        )
        down = part.get("status") == "down"
        if down and not self._feed_down:
            self._feed_down = True
            await app.admin_alert(
                "feed_down",
                "hoga: 시세 끊김 (market-data feed down)",
                f"시세 피드가 끊겼습니다 (the {app.feed.name} feed is down): "
                f"{part['sessions']} sessions, {part['symbols_wanted']} symbols wanted",
            )
        elif not down and self._feed_down:
            self._feed_down = False
            await app.admin_alert(
                "feed_up",
                "hoga: 시세 복구 (market-data feed back)",
                f"시세 피드가 다시 들어옵니다 (the {app.feed.name} feed is back)",
            )

    # --- reconciliation

    async def check_reconciliation(self) -> None:
        for account_id, r in list(self.app.reconciler.last.items()):
            bad = bool(r.position_mismatches or r.cash_mismatch)
            if bad and account_id not in self._mismatched:
                self._mismatched.add(account_id)
                await self.app.admin_alert(
                    "reconcile_mismatch",
                    "hoga: 잔고 불일치 (reconciliation mismatch)",
                    f"계좌 {account_id}의 잔고가 증권사와 다릅니다 (account {account_id} differs "
                    f"from the broker): positions {len(r.position_mismatches)}, "
                    f"cash {r.cash_mismatch or 'ok'}",
                )
            elif not bad:
                self._mismatched.discard(account_id)

    # --- daily summary

    async def check_daily_summary(self) -> None:
        now = self.app.clock.now()
        day = krx.trading_date(now)
        if self._summary_day == day:
            return
        times = krx.session_times(day)
        if times is None or now < times.close + SUMMARY_DELAY:
            return
        async with self.app.db.tx(SYSTEM) as conn:
            sent = await system_repo.get(conn, SUMMARY_KEY)
            if sent and sent.get("day") == day.isoformat():
                self._summary_day = day
                return
            await system_repo.put(conn, SUMMARY_KEY, {"day": day.isoformat()}, now)
            users = await notify_store.users_with_event(conn, "daily_summary")
        self._summary_day = day
        for uid in users:
            title, body = await self.summary(uid, day)
            self.notifier.notify_user(uid, "daily_summary", title, body)

    async def summary(self, user_id: int, day: date) -> tuple[str, str]:
        c = t.fills.c
        async with self.app.db.tx(Actor.user(user_id)) as conn:
            row = (
                await conn.execute(
                    select(
                        func.count(),
                        func.coalesce(func.sum(c.commission), 0),
                        func.coalesce(func.sum(c.tax), 0),
                        func.coalesce(func.sum(c.qty * c.price), 0),
                    ).where(c.user_id == user_id, c.trading_day == day)
                )
            ).one()
            trades, realized, _ = await ledger.day_counters(conn, user_id, day)
        fills, commission, tax, amount = (int(x) for x in row)
        title = f"hoga 일일 요약 (daily summary) {day.isoformat()}"
        body = (
            f"실현손익 (realized P&L) {realized:,}원 · 체결 (fills) {fills}건, "
            f"거래대금 {amount:,}원 · 수수료 (commission) {commission:,}원 · 세금 (tax) {tax:,}원 · "
            f"주문 (orders) {trades}건"
        )
        return title, body

    # --- broker health hooks

    def on_broker_down(self, broker: str, account_id: int, code: str | None) -> None:
        self._spawn(self._broker_event(account_id, broker, down=True, code=code))

    def on_broker_up(self, account_id: int) -> None:
        self._spawn(self._broker_event(account_id, None, down=False, code=None))

    def _spawn(self, coro: Any) -> None:
        try:
            task = asyncio.get_running_loop().create_task(coro)
        except RuntimeError:
            coro.close()
            return
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _broker_event(
        self, account_id: int, broker: str | None, *, down: bool, code: str | None
    ) -> None:
        async with self.app.db.tx(SYSTEM) as conn:
            row = (
                await conn.execute(
                    select(t.broker_accounts.c.user_id, t.broker_accounts.c.broker).where(
                        t.broker_accounts.c.id == account_id
                    )
                )
            ).first()
        if row is None:
            return
        name = broker or row.broker
        if down:
            title = f"증권사 연결 끊김 (broker down): {name} 계좌 {account_id}"
            body = f"{name} 계좌 {account_id}이(가) 응답하지 않습니다 (not answering: {code}); 주문은 대기합니다 (orders wait)"
        else:
            title = f"증권사 연결 복구 (broker back): {name} 계좌 {account_id}"
            body = f"{name} 계좌 {account_id}이(가) 다시 응답합니다 (answers again); 대기 주문을 보냅니다"
        self.notifier.notify_user(int(row.user_id), "broker_down", title, body)

    async def stop(self) -> None:
        for task in list(self._tasks):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
