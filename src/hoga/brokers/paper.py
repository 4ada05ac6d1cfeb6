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
import json
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import IO, Any

from hoga.brokers.base import (
    AccountRef,
    Balance,
    BrokerLimits,
    BrokerNotProcessed,
    BrokerRejected,
    EventSink,
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
from hoga.brokers.events import EventPump
from hoga.brokers.paper_sessions import Due, Moment, SessionSchedule
from hoga.domain import krx, matching
from hoga.domain.clock import KST, Clock
from hoga.domain.market import QuoteSource, Tick
from hoga.domain.orders import OrderStatus, OrderType, Side, TimeInForce
from hoga.domain.portfolio import Position, apply_fill

log = logging.getLogger(__name__)

_WORKING = (OrderStatus.ACCEPTED, OrderStatus.PARTIALLY_FILLED)


@dataclass
class PaperFaults:
    """Faults to inject. Counters count down as they fire."""

    delay: float = 0.0
    reject_next: int = 0
    not_processed_next: int = 0
    #: Accept the next N orders but never answer, and send no execution events for them.
    accept_then_timeout: int = 0
    cancel_delay: float = 0.0


def parse_faults(spec: str) -> PaperFaults:
    """``'accept_then_timeout=1,delay=0.2'`` -> PaperFaults (for chaos runs of a real server)."""
    f = PaperFaults()
    for part in (p.strip() for p in spec.split(",") if p.strip()):
        key, _, value = part.partition("=")
        current = getattr(f, key)
        setattr(f, key, type(current)(float(value)))
    return f


@dataclass
class _PaperOrder:
    broker_order_id: str
    client_order_id: str
    symbol: str
    side: Side
    type: OrderType
    qty: int
    price: int | None
    ts: float
    day: date
    status: OrderStatus = OrderStatus.ACCEPTED
    filled_qty: int = 0
    filled_amount: int = 0
    reserved: int = 0
    reason: str | None = None
    fills: int = 0
    modified: int = 0
    tif: TimeInForce = TimeInForce.DAY
    venue: str = "KRX"
    #: The session the order was accepted into (``krx.Session`` value).
    session: str = krx.Session.CONTINUOUS.value
    #: A conditional limit order that turned into a market order at the closing auction.
    converted: bool = False

    @property
    def limit(self) -> int | None:
        """The price it trades at or better; None trades at any price (market)."""
        if self.type == OrderType.MARKET or self.converted:
            return None
        return self.price

    @property
    def remaining(self) -> int:
        return self.qty - self.filled_qty

    def report(self) -> OrderStatusReport:
        avg = self.filled_amount // self.filled_qty if self.filled_qty else 0
        return OrderStatusReport(
            broker_order_id=self.broker_order_id,
            client_order_id=self.client_order_id,
            symbol=self.symbol,
            side=self.side,
            type=self.type,
            qty=self.qty,
            price=self.price,
            filled_qty=self.filled_qty,
            avg_price=avg,
            filled_amount=self.filled_amount if self.filled_qty else None,
            status=self.status,
            ts=self.ts,
            reason=self.reason,
        )


@dataclass
class _PaperAccount:
    account_id: int
    cash: int
    commission_rate: Decimal
    positions: dict[str, Position] = field(default_factory=dict)
    orders: dict[str, _PaperOrder] = field(default_factory=dict)
    by_client: dict[str, str] = field(default_factory=dict)
    fills: list[FillReport] = field(default_factory=list)
    placements: int = 0

    def reserved_cash(self) -> int:
        return sum(o.reserved for o in self.orders.values() if o.status in _WORKING)

    def open_sell_qty(self, symbol: str) -> int:
        return sum(
            o.remaining
            for o in self.orders.values()
            if o.symbol == symbol and o.side == Side.SELL and o.status in _WORKING
        )


class PaperBroker:
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
    ) -> None:
        self._quotes = quotes
        self._clock = clock
        self.initial_cash = initial_cash
        self._journal_path = journal_path
        self._journal: IO[str] | None = None
        self._fsync = fsync
        self._is_open = is_open or (lambda: True)
        self.faults = faults or PaperFaults()
        self._accounts: dict[int, _PaperAccount] = {}
        self._working: dict[str, dict[str, tuple[int, _PaperOrder]]] = {}
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
        self._schedule = SessionSchedule(clock.now())
        self._close: dict[str, int] = {}  # today's closing price by symbol (closing auction)
        self._last_px: dict[str, int] = {}
        self._vi_until: dict[str, float] = {}
        self._vi_ref: dict[str, int] = {}  # the static VI reference: the last auction price
        self._ticker: asyncio.Task[None] | None = None

    # --- lifecycle

    def limits(self, account: AccountRef) -> BrokerLimits:
        # A local simulation: no broker quota to respect, and outside the server-wide cap.
        return BrokerLimits(rate=1000.0, counts_toward_global=False)

    def set_event_sink(self, sink: EventSink) -> None:
        self._events.sink = sink

    async def start(self) -> None:
        if self._journal_path is not None:
            # The book is private to the server's account: 0700 directory, 0600 file.
            self._journal_path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            self._replay()
            fd = os.open(self._journal_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            if os.fstat(fd).st_mode & 0o077:
                os.fchmod(fd, 0o600)
            self._journal = os.fdopen(fd, "a", encoding="utf-8")
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
            self._journal.flush()
            os.fsync(self._journal.fileno())
            self._journal.close()
            self._journal = None

    async def drain(self) -> None:
        """Wait until every queued execution event has reached the sink (tests use this)."""
        await self._events.drain()

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
        if self._replaying or self._journal is None:
            return
        self._journal.write(json.dumps(record, ensure_ascii=False, separators=(",", ":")) + "\n")
        self._journal.flush()
        if self._fsync:
            os.fsync(self._journal.fileno())

    def _replay(self) -> None:
        assert self._journal_path is not None
        if not self._journal_path.exists():
            return
        self._replaying = True
        try:
            with self._journal_path.open(encoding="utf-8") as fh:
                for n, line in enumerate(fh, 1):
                    if not line.strip():
                        continue
                    try:
                        self._apply(json.loads(line))
                    except (ValueError, KeyError) as e:
                        # A torn last line after a crash is expected; anything else is not.
                        log.warning("paper journal line %d unreadable (%s); ignored", n, e)
        finally:
            self._replaying = False

    def _apply(self, r: dict[str, Any]) -> None:
        kind = r["t"]
        if kind == "open":
            self._open_account(r["a"], r["cash"], Decimal(r["rate"]))
        elif kind == "place":
            acct = self._accounts.get(r["a"]) or self._open_account(
                r["a"], self.initial_cash, krx.DEFAULT_COMMISSION_RATE
            )
            order = _PaperOrder(
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
            self._book_fill(
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

    def _open_account(self, account_id: int, cash: int, rate: Decimal) -> _PaperAccount:
        acct = _PaperAccount(account_id=account_id, cash=cash, commission_rate=rate)
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

    def _account(self, account: AccountRef) -> _PaperAccount:
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
        self._arrive(acct, order)
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

    def _validate(self, acct: _PaperAccount, req: PlaceRequest) -> _PaperOrder:
        """The order ``req`` describes, or ``BrokerRejected``."""
        inst = self._quotes.instrument(req.symbol)
        if inst is None:
            raise BrokerRejected(f"알 수 없는 종목코드입니다: {req.symbol}", "paper.unknown_symbol")
        if req.qty <= 0:
            raise BrokerRejected("주문수량이 올바르지 않습니다", "paper.bad_qty")
        session = self._session_for(req)
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
            price = krx.fixed_price(req.type.value, inst.base_price, self._today_close(req.symbol))
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
        return _PaperOrder(
            broker_order_id=f"P{self._next_id:09d}",
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

    def _book_order(self, acct: _PaperAccount, order: _PaperOrder) -> None:
        acct.orders[order.broker_order_id] = order
        acct.by_client[order.client_order_id] = order.broker_order_id
        self._next_id = max(self._next_id, int(order.broker_order_id[1:]) + 1)
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
        if order.status not in _WORKING:
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
            self._match(acct, order, tick, resting=False)
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
            close = self._today_close(symbol) or inst.base_price
            lower, upper = krx.single_price_band(close, inst.base_price, inst.kind)
        if not lower <= price <= upper:
            raise BrokerRejected(
                f"가격제한폭을 벗어났습니다 (하한 {lower:,}원, 상한 {upper:,}원)",
                "paper.outside_limits",
            )

    @staticmethod
    def _set_terms(order: _PaperOrder, qty: int, price: int, reserved: int) -> None:
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
        if order.status not in _WORKING:
            raise BrokerRejected(
                f"취소할 수 없는 주문입니다 ({order.status})", "paper.not_cancellable"
            )
        self._set_status(acct, order, OrderStatus.CANCELLED, "cancelled by request")
        self._write({"t": "status", "a": acct.account_id, "o": broker_order_id, "st": "CANCELLED"})
        self._emit(acct.account_id, OrderUpdate(order.report()))

    def _set_status(
        self, acct: _PaperAccount, order: _PaperOrder, status: OrderStatus, why: str | None
    ) -> None:
        order.status = status
        order.reason = why
        if status not in _WORKING:
            order.reserved = 0
            self._working.get(order.symbol, {}).pop(order.broker_order_id, None)

    # --- sessions

    def _session_for(self, req: PlaceRequest) -> krx.Session:
        """The session that takes the order now, or a refusal saying why none does."""
        if not self.calendar:
            if not self._is_open():
                raise BrokerRejected(
                    "장 운영시간이 아닙니다 (market closed)", "paper.market_closed"
                )
            if req.type.value not in krx.SESSION_TYPES[krx.Session.CONTINUOUS]:
                raise BrokerRejected(
                    "시간외 주문은 장 일정(calendar) 모드에서만 받습니다 "
                    "(off-hours order types need calendar mode)",
                    "paper.not_in_session",
                )
            return krx.Session.CONTINUOUS
        session = krx.session_for_order(self._clock.now(), req.type.value, req.tif.value, req.venue)
        if session is None:
            open_now = krx.sessions_at(self._clock.now(), req.venue)
            if not open_now:
                raise BrokerRejected(
                    "장 운영시간이 아닙니다 (market closed)", "paper.market_closed"
                )
            names = ", ".join(sorted(open_now))
            raise BrokerRejected(
                f"지금 세션({names})에서 받을 수 없는 주문입니다: {req.type}/{req.tif} "
                f"(not accepted in the {names} session)",
                "paper.not_in_session",
            )
        return session

    def _today_close(self, symbol: str) -> int | None:
        """Today's closing price: the closing auction's, else the last trade's."""
        if symbol in self._close:
            return self._close[symbol]
        tick = self._quotes.last(symbol)
        return tick.price if tick is not None and tick.price > 0 else None

    def _arrive(self, acct: _PaperAccount, order: _PaperOrder) -> None:
        """What a newly accepted order does at once, by its session and type."""
        s = krx.Session(order.session)
        if s == krx.Session.PRE_CLOSE and order.price:
            # Time priority at a known price: the simulated market takes the whole order.
            self._fill(acct, order, order.remaining, order.price, self._clock.time())
            return
        if s == krx.Session.AFTER_CLOSE:
            win = krx.window(order.day, s)
            if win is not None and win.trades_at(self._clock.now()) and order.price:
                self._fill(acct, order, order.remaining, order.price, self._clock.time())
            return
        if s in krx.AUCTIONS:
            return  # collected; matched at the auction's single price
        tick = self._quotes.last(order.symbol)
        if order.symbol in self._vi_until or tick is None or not self._is_open_for(s):
            if order.tif != TimeInForce.DAY:
                self._end(acct, order, OrderStatus.CANCELLED, "IOC/FOK: 즉시 체결 불가 (no match)")
            return
        if order.tif == TimeInForce.FOK:
            px, avail = self._quote_for(order, tick, resting=False)
            if matching.immediate_qty(order.tif, order.remaining, avail if px else 0) == 0:
                self._end(acct, order, OrderStatus.CANCELLED, "FOK: 전량 체결 불가 (killed)")
                return
        self._match(acct, order, tick, resting=False)
        if order.tif != TimeInForce.DAY and order.status in _WORKING:
            self._end(acct, order, OrderStatus.CANCELLED, "IOC: 잔량 취소 (rest cancelled)")

    def _is_open_for(self, session: krx.Session) -> bool:
        # Nextrade sessions trade when KRX's continuous market does not (pre/after hours):
        # the simulated quote is the only book there is, so they trade on it.
        return session in krx.NXT_SESSIONS or self._is_open() or self.calendar

    def _end(self, acct: _PaperAccount, order: _PaperOrder, status: OrderStatus, why: str) -> None:
        self._set_status(acct, order, status, why)
        self._write(
            {"t": "status", "a": acct.account_id, "o": order.broker_order_id, "st": status.value}
            | {"why": why}
        )
        self._emit(acct.account_id, OrderUpdate(order.report()))

    def _set_session(self, acct: _PaperAccount, order: _PaperOrder, session: str) -> None:
        order.session = session
        self._write(
            {
                "t": "session",
                "a": acct.account_id,
                "o": order.broker_order_id,
                "sess": session,
                "conv": order.converted,
            }
        )

    def advance(self, now: datetime | None = None) -> None:
        """Run every session moment the clock has passed (calendar mode; see
        ``paper_sessions``). The server calls it every second; tests call it directly."""
        if not self.calendar:
            return
        when = now or self._clock.now()
        for moment in self._schedule.due(when):
            self._on_moment(moment)
        for symbol, until in list(self._vi_until.items()):
            if when.timestamp() >= until:
                self._end_vi(symbol, when.timestamp())

    def _orders_in(self, sessions: set[str], day: date) -> list[tuple[_PaperAccount, _PaperOrder]]:
        return [
            (self._accounts[a], o)
            for working in self._working.values()
            for a, o in list(working.values())
            if o.session in sessions and o.day == day and o.status in _WORKING
        ]

    def _on_moment(self, m: Moment) -> None:
        day, ts = m.at.date(), m.at.timestamp()
        regular = {
            krx.Session.OPENING_AUCTION.value,
            krx.Session.CONTINUOUS.value,
            krx.Session.CLOSING_AUCTION.value,
        }
        if m.due == Due.OPENING_AUCTION:
            by_symbol = self._by_symbol(self._orders_in({m.session.value}, day))
            for symbol, orders in by_symbol.items():
                px = self._auction(symbol, orders, ts)
                if px is not None:
                    self._vi_ref[symbol] = px
                for acct, o in orders:
                    if o.status in _WORKING:
                        self._set_session(acct, o, krx.Session.CONTINUOUS.value)
        elif m.due == Due.CONVERT:
            for acct, o in self._orders_in(regular, day):
                if o.type == OrderType.CONDITIONAL:
                    o.converted = True
                    self._set_session(acct, o, krx.Session.CLOSING_AUCTION.value)
        elif m.due == Due.CLOSING_AUCTION:
            orders = self._orders_in(regular, day)
            for symbol, group in self._by_symbol(orders).items():
                px = self._auction(symbol, group, ts)
                self._close[symbol] = px if px is not None else self._today_close(symbol) or 0
            # Regular-session orders do not carry into the off-hours sessions.
            for acct, o in orders:
                if o.status in _WORKING:
                    self._end(acct, o, OrderStatus.EXPIRED, "정규장 종료 (regular session ended)")
        elif m.due == Due.AFTER_CLOSE:
            for acct, o in self._orders_in({m.session.value}, day):
                if o.price:
                    self._fill(acct, o, o.remaining, o.price, ts)
        elif m.due == Due.SINGLE_PRICE:
            orders = self._orders_in({m.session.value}, day)
            for symbol, group in self._by_symbol(orders).items():
                self._auction(symbol, group, ts, reference=self._today_close(symbol))
        elif m.due == Due.EXPIRE:
            sessions = {m.session.value}
            if m.session == krx.Session.NXT_AFTER:
                sessions = {s.value for s in krx.NXT_SESSIONS}
            for acct, o in self._orders_in(sessions, day):
                self._end(acct, o, OrderStatus.EXPIRED, f"{m.session} 종료 (session ended)")

    @staticmethod
    def _by_symbol(
        orders: list[tuple[_PaperAccount, _PaperOrder]],
    ) -> dict[str, list[tuple[_PaperAccount, _PaperOrder]]]:
        out: dict[str, list[tuple[_PaperAccount, _PaperOrder]]] = {}
        for acct, o in sorted(orders, key=lambda ao: (ao[1].ts, ao[1].broker_order_id)):
            out.setdefault(o.symbol, []).append((acct, o))
        return out

    def _auction(
        self,
        symbol: str,
        orders: list[tuple[_PaperAccount, _PaperOrder]],
        ts: float,
        *,
        reference: int | None = None,
    ) -> int | None:
        """Match ``orders`` in one call auction at a single price; the price, or None.

        The simulated market takes part as liquidity at its own price (the reference: the
        last trade): what it shows on both sides, at that price. Paper orders priced through
        it trade at the one price that executes the most (``domain.matching``)."""
        tick = self._quotes.last(symbol)
        ref = reference or (tick.price if tick is not None else 0)
        if ref <= 0:
            return None
        depth = 0
        if tick is not None:
            depth = max(tick.bid_size, tick.ask_size, tick.volume)
        if depth <= 0:
            # Before the day's first trade the book shows no size: the simulated market then
            # takes the other side of whatever crosses its price (it is the only counterparty).
            depth = sum(o.remaining for _, o in orders)
        book = [
            matching.AuctionOrder(o.side, o.remaining, o.limit, key=o.broker_order_id)
            for _, o in orders
        ]
        if depth > 0:
            book += [
                matching.AuctionOrder(Side.BUY, depth, ref, key="market-bid"),
                matching.AuctionOrder(Side.SELL, depth, ref, key="market-ask"),
            ]
        result = matching.auction_price(book, ref)
        if result is None:
            return None
        for acct, o in orders:
            qty = result.fills.get(o.broker_order_id, 0)
            if qty > 0:
                self._fill(acct, o, qty, result.price, ts)
        return result.price

    def _end_vi(self, symbol: str, ts: float) -> None:
        """A volatility interruption's two minutes are over: one auction, then trading."""
        self._vi_until.pop(symbol, None)
        continuous = {krx.Session.CONTINUOUS.value}
        orders = [
            (self._accounts[a], o)
            for a, o in self._working.get(symbol, {}).values()
            if o.session in continuous and o.status in _WORKING
        ]
        px = self._auction(symbol, self._by_symbol(orders).get(symbol, []), ts)
        tick = self._quotes.last(symbol)
        self._vi_ref[symbol] = px or (tick.price if tick is not None else 0)

    def _check_vi(self, tick: Tick) -> bool:
        """Whether ``tick.symbol`` is (now) in a volatility interruption (krx.md §3 VI)."""
        until = self._vi_until.get(tick.symbol)
        if until is not None:
            if tick.ts < until:
                return True
            self._end_vi(tick.symbol, tick.ts)
        prev = self._last_px.get(tick.symbol, 0)
        self._last_px[tick.symbol] = tick.price
        ref = self._vi_ref.get(tick.symbol) or tick.base_price
        if prev and krx.vi_triggered(tick.price, prev, ref, krx.Session.CONTINUOUS):
            self._vi_until[tick.symbol] = tick.ts + krx.VI_DURATION.total_seconds()
            log.info("paper: VI on %s at %s (last %s)", tick.symbol, tick.price, prev)
            return True
        return False

    def in_vi(self, symbol: str) -> bool:
        """Whether the symbol is in a volatility interruption now."""
        return symbol in self._vi_until

    # --- matching

    def on_tick(self, tick: Tick) -> None:
        """Match resting orders of ``tick.symbol`` against the new trade and book."""
        if self.calendar:
            self.advance(datetime.fromtimestamp(tick.ts, KST))
        if self.vi and self._check_vi(tick):
            return
        working = self._working.get(tick.symbol)
        if not working or not self._is_open():
            return
        day = datetime.fromtimestamp(tick.ts, KST).date()
        for account_id, order in list(working.values()):
            acct = self._accounts[account_id]
            if (order.day != day and order.venue == "KRX") or order.day < day:
                self._end(acct, order, OrderStatus.EXPIRED, "day ended")
                continue
            if krx.Session(order.session) in krx.AUCTIONS:
                continue  # waits for its auction
            self._match(acct, order, tick, resting=True)

    def _quote_for(self, order: _PaperOrder, tick: Tick, *, resting: bool) -> tuple[int, int]:
        """(price, shares available) for the order against this tick; (0, 0) for no trade."""
        return matching.quote_against(order.side, order.limit, tick, resting=resting)

    def _match(self, acct: _PaperAccount, order: _PaperOrder, tick: Tick, *, resting: bool) -> None:
        px, avail = self._quote_for(order, tick, resting=resting)
        if px <= 0 or avail <= 0:
            return
        self._fill(acct, order, min(order.remaining, avail), px, tick.ts)

    def _fill(self, acct: _PaperAccount, order: _PaperOrder, qty: int, px: int, ts: float) -> None:
        if qty <= 0 or order.status not in _WORKING:
            return
        fill_id = f"{order.broker_order_id}-{order.fills + 1}"
        inst = self._quotes.instrument(order.symbol)
        market = inst.market if inst else "KOSPI"
        trade_day = datetime.fromtimestamp(ts, KST).date()
        fee, tax = krx.fill_costs(
            order.side,
            qty,
            px,
            trade_day,
            market,
            acct.commission_rate,
            prior_amount=order.filled_amount,
        )
        self._book_fill(acct, order, qty, px, fill_id, ts, fee, tax)
        self._write(
            {
                "t": "fill",
                "a": acct.account_id,
                "o": order.broker_order_id,
                "q": qty,
                "p": px,
                "f": fill_id,
                "ts": ts,
                "fee": fee,
                "tax": tax,
            }
        )
        self._emit(acct.account_id, FillEvent(acct.fills[-1]))
        self._emit(acct.account_id, OrderUpdate(order.report()))

    def _book_fill(
        self,
        acct: _PaperAccount,
        order: _PaperOrder,
        qty: int,
        px: int,
        fill_id: str,
        ts: float,
        fee: int,
        tax: int,
    ) -> None:
        effect = apply_fill(
            acct.positions.get(order.symbol, Position()), order.side, qty, px, fee, tax
        )
        acct.positions[order.symbol] = effect.position
        acct.cash += effect.cash
        order.filled_qty += qty
        order.filled_amount += qty * px
        order.fills += 1
        if order.side == Side.BUY and order.remaining:
            # Keep the reservation proportional to what is still working.
            order.reserved = order.reserved * order.remaining // (order.remaining + qty)
        acct.fills.append(
            FillReport(
                broker_order_id=order.broker_order_id,
                client_order_id=order.client_order_id,
                fill_id=fill_id,
                symbol=order.symbol,
                side=order.side,
                qty=qty,
                price=px,
                ts=ts,
                commission=fee,
                tax=tax,
                cum_qty=order.filled_qty,
                cum_amount=order.filled_amount,
            )
        )
        if order.remaining == 0:
            self._set_status(acct, order, OrderStatus.FILLED, None)
        else:
            order.status = OrderStatus.PARTIALLY_FILLED

    # --- reports

    async def order_reports(self, account: AccountRef, day: date) -> list[OrderStatusReport]:
        acct = self._account(account)
        return [o.report() for o in acct.orders.values() if o.day == day or o.status in _WORKING]

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
