"""The paper broker: a simulated brokerage with its own book, the embedded default.

It behaves like a broker, not like a mock: it keeps each account's cash, holdings, orders and
fills (journalled to disk so a restart finds them again), validates orders the way KRX and the
brokers do, fills market orders at the opposite best price and rests limit orders until the
market crosses them, bounded by the displayed size or the traded volume, and charges commission
and sell tax from ``domain.krx``. Execution events are pushed in order to the sink.

It honours ``client_order_id`` as an idempotency key: placing the same one twice returns the
first order. Fault knobs (``PaperFaults``) let tests make it slow, refuse, throttle, or accept an
order and never answer.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from hoga.brokers.base import (
    AccountRef,
    Balance,
    BrokerLimits,
    BrokerNotProcessed,
    BrokerRejected,
    ExecutionEvent,
    FillEvent,
    FillReport,
    ModifyAck,
    ModifyRequest,
    OrderStatusReport,
    OrderUpdate,
    PlaceAck,
    PlaceRequest,
    PositionReport,
)
from hoga.brokers.events import EventPump, PumpedEvents
from hoga.brokers.paper_book import WORKING, PaperAccount, PaperFaults, PaperOrder
from hoga.brokers.paper_journal import PaperJournal
from hoga.brokers.paper_matching import PaperMatcher
from hoga.brokers.paper_sessions import PaperSessions
from hoga.domain import krx, matching
from hoga.domain.clock import KST, Clock
from hoga.domain.market import QuoteSource, Tick
from hoga.domain.orders import OrderStatus, OrderType, Side, TimeInForce
from hoga.domain.portfolio import Position

log = logging.getLogger(__name__)


class PaperBroker(PumpedEvents):
    """A simulated broker for any number of accounts; see the module docstring."""

    name = "paper"

    def __init__(
        self,
        quotes: QuoteSource,
        clock: Clock,
        *,
        initial_cash: int = 10_000_000,
        journal_path: Path | None = None,
        is_open: Callable[[], bool] | None = None,
        faults: PaperFaults | None = None,
        fsync: bool = True,
        calendar: bool = False,
        volatility_interruptions: bool | None = None,
        id_prefix: str = "",
    ) -> None:
        self._quotes = quotes
        # Order numbers are P<prefix><9 digits>. Cluster mode gives each server its own prefix
        # (its instance id): a user's book that moves to another server must not reuse the
        # numbers of orders the first server gave out, or a fill finds the wrong order.
        self._id_prefix = id_prefix
        self._clock = clock
        self.initial_cash = initial_cash
        self._journal = None if journal_path is None else PaperJournal(journal_path, fsync=fsync)
        self._is_open = is_open or (lambda: True)
        self.faults = faults or PaperFaults()
        self._accounts: dict[int, PaperAccount] = {}
        self._working: dict[str, dict[str, tuple[int, PaperOrder]]] = {}
        self._next_id = 1
        self._events = EventPump("paper")
        self._replaying = False
        # Orders placed under accept-then-timeout: the broker works them, but nothing about them
        # reaches hoga (a partition), so only reconciliation after a restart can find them.
        self._silent: set[str] = set()
        # Calendar mode: orders go to the KRX/Nextrade session open at the time (auctions,
        # closing-price and single-price trading, see paper_sessions); demo mode trades
        # everything as the continuous session, around the clock.
        self.calendar = calendar
        self.vi = calendar if volatility_interruptions is None else volatility_interruptions
        self.sessions = PaperSessions(self)
        self.matcher = PaperMatcher(self)
        self._ticker: asyncio.Task[None] | None = None

    # --- lifecycle

    def limits(self, account: AccountRef) -> BrokerLimits:
        # A local simulation: no broker quota to respect, and outside the server-wide cap.
        return BrokerLimits(rate=1000.0, counts_toward_global=False)

    async def start(self) -> None:
        if self._journal is not None:
            self._replaying = True
            try:
                self._journal.open(self._apply)
            finally:
                self._replaying = False
        await self._events.start()
        if self.calendar and self._ticker is None:
            self._ticker = asyncio.create_task(self._run_sessions(), name="paper-sessions")

    async def _run_sessions(self) -> None:
        # Auctions and session ends happen when no tick marks them; once a second is finer
        # than any KRX moment needs (the single-price rounds are 10 minutes apart).
        while True:
            await asyncio.sleep(1.0)
            try:
                self.advance()
            except Exception:
                log.exception("paper: session step failed")

    async def stop(self) -> None:
        if self._ticker is not None:
            self._ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._ticker
            self._ticker = None
        await self._events.stop()
        if self._journal is not None:
            self._journal.close()

    def _emit(self, account_id: int, event: ExecutionEvent) -> None:
        if self._replaying:
            return
        bid = (
            event.fill.broker_order_id
            if isinstance(event, FillEvent)
            else event.report.broker_order_id
        )
        if bid in self._silent:
            return
        self._events.emit(account_id, event)

    # --- journal

    def _write(self, record: dict[str, Any]) -> None:
        if not self._replaying and self._journal is not None:
            self._journal.write(record)

    def _apply(self, r: dict[str, Any]) -> None:
        kind = r["t"]
        if kind == "open":
            self._open_account(r["a"], r["cash"], Decimal(r["rate"]))
        elif kind == "place":
            acct = self._accounts.get(r["a"]) or self._open_account(
                r["a"], self.initial_cash, krx.DEFAULT_COMMISSION_RATE
            )
            order = PaperOrder(
                broker_order_id=r["o"],
                client_order_id=r["c"],
                symbol=r["s"],
                side=Side(r["side"]),
                type=OrderType(r["type"]),
                qty=r["q"],
                price=r["p"],
                ts=r["ts"],
                day=date.fromisoformat(r["day"]),
                reserved=r["res"],
                tif=TimeInForce(r.get("tif", "day")),
                venue=r.get("v", "KRX"),
                session=r.get("sess", krx.Session.CONTINUOUS.value),
            )
            self._book_order(acct, order)
        elif kind == "fill":
            acct = self._accounts[r["a"]]
            self.matcher.book_fill(
                acct, acct.orders[r["o"]], r["q"], r["p"], r["f"], r["ts"], r["fee"], r["tax"]
            )
        elif kind == "session":
            order = self._accounts[r["a"]].orders[r["o"]]
            order.session, order.converted = r["sess"], r.get("conv", False)
        elif kind == "modify":
            acct = self._accounts[r["a"]]
            self._set_terms(acct.orders[r["o"]], r["q"], r["p"], r["res"])
        elif kind == "status":
            acct = self._accounts[r["a"]]
            self._set_status(acct, acct.orders[r["o"]], OrderStatus(r["st"]), r.get("why"))

    # --- accounts

    def _open_account(self, account_id: int, cash: int, rate: Decimal) -> PaperAccount:
        acct = PaperAccount(account_id=account_id, cash=cash, commission_rate=rate)
        self._accounts[account_id] = acct
        return acct

    async def attach(self, account: AccountRef) -> None:
        if account.account_id in self._accounts:
            return
        self._open_account(account.account_id, self.initial_cash, account.commission_rate)
        self._write(
            {
                "t": "open",
                "a": account.account_id,
                "cash": self.initial_cash,
                "rate": str(account.commission_rate),
            }
        )

    async def detach(self, account_id: int) -> None:
        return None

    def _account(self, account: AccountRef) -> PaperAccount:
        acct = self._accounts.get(account.account_id)
        if acct is None:
            # An account created elsewhere (the CLI) is opened on first contact.
            acct = self._open_account(
                account.account_id, self.initial_cash, account.commission_rate
            )
            self._write(
                {
                    "t": "open",
                    "a": account.account_id,
                    "cash": self.initial_cash,
                    "rate": str(account.commission_rate),
                }
            )
        return acct

    def placements(self, account_id: int) -> int:
        """How many distinct orders this account has placed (idempotent repeats excluded)."""
        acct = self._accounts.get(account_id)
        return 0 if acct is None else len(acct.orders)

    # --- commands

    async def place(self, account: AccountRef, request: PlaceRequest) -> PlaceAck:
        f = self.faults
        if f.delay:
            await asyncio.sleep(f.delay)
        acct = self._account(account)
        existing = acct.by_client.get(request.client_order_id)
        if existing is not None:
            return PlaceAck(broker_order_id=existing)
        self._command_faults()
        order = self._validate(acct, request)
        partitioned = f.accept_then_timeout > 0
        if partitioned:
            self._silent.add(order.broker_order_id)
        self._book_order(acct, order)
        self._write(
            {
                "t": "place",
                "a": acct.account_id,
                "o": order.broker_order_id,
                "c": order.client_order_id,
                "s": order.symbol,
                "side": order.side.value,
                "type": order.type.value,
                "q": order.qty,
                "p": order.price,
                "ts": order.ts,
                "day": order.day.isoformat(),
                "res": order.reserved,
                "tif": order.tif.value,
                "v": order.venue,
                "sess": order.session,
            }
        )
        self._emit(acct.account_id, OrderUpdate(order.report()))
        self.matcher.arrive(acct, order)
        if partitioned:
            f.accept_then_timeout -= 1
            # The order exists at the broker, but the answer never comes back.
            await asyncio.Event().wait()
        return PlaceAck(broker_order_id=order.broker_order_id)

    def _command_faults(self) -> None:
        """The one-shot refusals a test asked for (``PaperFaults``), counted down."""
        f = self.faults
        if f.not_processed_next > 0:
            f.not_processed_next -= 1
            raise BrokerNotProcessed(
                "simulated throttle: request not processed", "paper.throttled", 0.05
            )
        if f.reject_next > 0:
            f.reject_next -= 1
            raise BrokerRejected("simulated rejection", "paper.fault")

    def _validate(self, acct: PaperAccount, req: PlaceRequest) -> PaperOrder:
        """The order ``req`` describes, or ``BrokerRejected``."""
        inst = self._quotes.instrument(req.symbol)
        if inst is None:
            raise BrokerRejected(f"알 수 없는 종목코드입니다: {req.symbol}", "paper.unknown_symbol")
        if req.qty <= 0:
            raise BrokerRejected("주문수량이 올바르지 않습니다", "paper.bad_qty")
        session = self.sessions.session_for(req)
        lower, upper = krx.price_limits(inst.base_price, inst.kind)
        price = req.price
        if req.type.needs_price:
            if price is None:
                raise BrokerRejected("지정가 주문에는 가격이 필요합니다", "paper.no_price")
            self._check_price(req.symbol, req.type, price)
            reserve_price = price
        elif req.type in (OrderType.PRE_CLOSE, OrderType.AFTER_CLOSE):
            # Closing-price orders trade at a fixed price: the previous close before the open,
            # today's close after it (krx.md §3).
            price = krx.fixed_price(
                req.type.value, inst.base_price, self.sessions.today_close(req.symbol)
            )
            reserve_price = price or upper
        elif req.type in (OrderType.BEST, OrderType.PRIORITY):
            tick = self._quotes.last(req.symbol)
            price = (
                None
                if tick is None
                else matching.arrival_price(req.type, req.side, None, tick.bid, tick.ask)
            )
            if price is None or not lower <= price <= upper:
                raise BrokerRejected(
                    "호가가 없어 최유리/최우선 가격을 정할 수 없습니다 (no quote to price from)",
                    "paper.no_quote",
                )
            # Market-like: a buy reserves at the upper limit, as a market order does.
            reserve_price = upper
        else:
            price = None
            # Like KIS, a market buy reserves cash at the day's upper limit.
            reserve_price = upper
        reserved = 0
        if req.side == Side.BUY:
            amount = req.qty * reserve_price
            reserved = amount + krx.commission(amount, acct.commission_rate)
            if reserved > acct.cash - acct.reserved_cash():
                raise BrokerRejected(
                    "주문가능금액이 부족합니다 (insufficient cash)", "paper.insufficient_cash"
                )
        else:
            held = acct.positions.get(req.symbol, Position()).qty
            if req.qty > held - acct.open_sell_qty(req.symbol):
                raise BrokerRejected(
                    "매도가능수량이 부족합니다 (insufficient shares)", "paper.insufficient_shares"
                )
        now = self._clock.time()
        return PaperOrder(
            broker_order_id=f"P{self._id_prefix}{self._next_id:09d}",
            client_order_id=req.client_order_id,
            symbol=req.symbol,
            side=req.side,
            type=req.type,
            qty=req.qty,
            price=price,
            ts=now,
            day=datetime.fromtimestamp(now, KST).date(),
            reserved=reserved,
            tif=req.tif,
            venue=req.venue,
            session=session.value,
        )

    def _book_order(self, acct: PaperAccount, order: PaperOrder) -> None:
        acct.book(order)
        self._next_id = max(self._next_id, int(order.broker_order_id[-9:]) + 1)
        acct.placements += 1
        self._working.setdefault(order.symbol, {})[order.broker_order_id] = (acct.account_id, order)

    async def modify(self, account: AccountRef, request: ModifyRequest) -> ModifyAck:
        """Modify a working order in place: fewer shares and/or a new limit price.

        The order keeps its number (the paper broker has no use for a new one); the filled
        part stays, the reservation follows the new price and quantity, and a re-priced order
        that now crosses the market trades at once. Refusals leave the order as it was.
        """
        f = self.faults
        if f.delay:
            await asyncio.sleep(f.delay)
        self._command_faults()
        acct = self._account(account)
        order = acct.orders.get(request.broker_order_id)
        if order is None:
            raise BrokerRejected("주문번호를 찾을 수 없습니다 (no such order)", "paper.no_order")
        if order.status not in WORKING:
            raise BrokerRejected(
                f"정정할 수 없는 주문입니다 ({order.status}) (not modifiable)",
                "paper.not_modifiable",
            )
        if not order.type.needs_price:
            raise BrokerRejected(
                "가격을 지정하지 않는 주문은 정정할 수 없습니다 (not a priced order)",
                "paper.not_modifiable",
            )
        new_qty = order.qty - request.reduce_by
        if request.reduce_by < 0 or new_qty <= order.filled_qty:
            raise BrokerRejected(
                f"정정 수량을 확인하세요 (체결 {order.filled_qty}주) (bad modify quantity)",
                "paper.bad_modify",
            )
        self._check_price(order.symbol, order.type, request.new_price)
        reserved = order.reserved
        if order.side == Side.BUY:
            amount = (new_qty - order.filled_qty) * request.new_price
            reserved = amount + krx.commission(amount, acct.commission_rate)
            if reserved - order.reserved > acct.cash - acct.reserved_cash():
                raise BrokerRejected(
                    "주문가능금액이 부족합니다 (insufficient cash)", "paper.insufficient_cash"
                )
        self._set_terms(order, new_qty, request.new_price, reserved)
        self._write(
            {
                "t": "modify",
                "a": acct.account_id,
                "o": order.broker_order_id,
                "q": new_qty,
                "p": request.new_price,
                "res": reserved,
            }
        )
        self._emit(acct.account_id, OrderUpdate(order.report()))
        tick = self._quotes.last(order.symbol)
        if tick is not None and self._is_open():
            self.matcher.match(acct, order, tick, resting=False)
        return ModifyAck(broker_order_id=order.broker_order_id)

    def _check_price(self, symbol: str, kind: OrderType, price: int) -> None:
        """Refuse a limit price off the tick grid or outside the day's limits."""
        inst = self._quotes.instrument(symbol)
        if inst is None:
            raise BrokerRejected(f"알 수 없는 종목코드입니다: {symbol}", "paper.unknown_symbol")
        if price <= 0 or price % krx.tick_size(price, inst.kind):
            raise BrokerRejected(f"호가단위에 맞지 않는 가격입니다: {price:,}원", "paper.off_tick")
        lower, upper = krx.price_limits(inst.base_price, inst.kind)
        if kind == OrderType.SINGLE_PRICE:
            close = self.sessions.today_close(symbol) or inst.base_price
            lower, upper = krx.single_price_band(close, inst.base_price, inst.kind)
        if not lower <= price <= upper:
            raise BrokerRejected(
                f"가격제한폭을 벗어났습니다 (하한 {lower:,}원, 상한 {upper:,}원)",
                "paper.outside_limits",
            )

    @staticmethod
    def _set_terms(order: PaperOrder, qty: int, price: int, reserved: int) -> None:
        order.qty, order.price, order.reserved = qty, price, reserved
        order.modified += 1

    async def cancel(
        self, account: AccountRef, broker_order_id: str, symbol: str, qty: int
    ) -> None:
        if self.faults.cancel_delay:
            await asyncio.sleep(self.faults.cancel_delay)
        acct = self._account(account)
        order = acct.orders.get(broker_order_id)
        if order is None:
            raise BrokerRejected("주문번호를 찾을 수 없습니다", "paper.no_order")
        if order.status not in WORKING:
            raise BrokerRejected(
                f"취소할 수 없는 주문입니다 ({order.status})", "paper.not_cancellable"
            )
        self._set_status(acct, order, OrderStatus.CANCELLED, "cancelled by request")
        self._write({"t": "status", "a": acct.account_id, "o": broker_order_id, "st": "CANCELLED"})
        self._emit(acct.account_id, OrderUpdate(order.report()))

    def _set_status(
        self, acct: PaperAccount, order: PaperOrder, status: OrderStatus, why: str | None
    ) -> None:
        order.status = status
        order.reason = why
        if status not in WORKING:
            order.reserved = 0
            self._working.get(order.symbol, {}).pop(order.broker_order_id, None)

    def _end(self, acct: PaperAccount, order: PaperOrder, status: OrderStatus, why: str) -> None:
        self._set_status(acct, order, status, why)
        self._write(
            {"t": "status", "a": acct.account_id, "o": order.broker_order_id, "st": status.value}
            | {"why": why}
        )
        self._emit(acct.account_id, OrderUpdate(order.report()))

    # --- the market's side (paper_sessions, paper_matching)

    def on_tick(self, tick: Tick) -> None:
        """Match resting orders of ``tick.symbol`` against the new trade and book."""
        self.matcher.on_tick(tick)

    def advance(self, now: datetime | None = None) -> None:
        """Run every session moment the clock has passed (calendar mode)."""
        self.sessions.advance(now)

    def in_vi(self, symbol: str) -> bool:
        """Whether the symbol is in a volatility interruption now."""
        return self.sessions.in_vi(symbol)

    # --- reports

    async def order_reports(self, account: AccountRef, day: date) -> list[OrderStatusReport]:
        acct = self._account(account)
        return [o.report() for o in acct.orders.values() if o.day == day or o.status in WORKING]

    async def fill_reports(self, account: AccountRef, day: date) -> list[FillReport]:
        acct = self._account(account)
        return [f for f in acct.fills if datetime.fromtimestamp(f.ts, KST).date() == day]

    async def position_reports(self, account: AccountRef) -> list[PositionReport]:
        acct = self._account(account)
        return [
            PositionReport(s, p.qty, p.avg_price)
            for s, p in sorted(acct.positions.items())
            if p.qty
        ]

    async def balance(self, account: AccountRef) -> Balance:
        acct = self._account(account)
        return Balance(
            cash=acct.cash,
            orderable=acct.cash - acct.reserved_cash(),
            positions=await self.position_reports(account),
        )

    async def find_by_client_id(
        self, account: AccountRef, client_order_id: str
    ) -> OrderStatusReport | None:
        acct = self._account(account)
        bid = acct.by_client.get(client_order_id)
        return acct.orders[bid].report() if bid else None

    async def test_connection(self, account: AccountRef) -> str:
        acct = self._account(account)
        return f"모의(paper) 계좌 정상: 예수금 {acct.cash:,}원"
