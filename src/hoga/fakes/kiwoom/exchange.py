"""The fake's brokerage: accounts, orders and executions against a simulated KRX market.

Orders rest until the market reaches them: a marketable order takes the displayed size at the
opposite best price, and a resting limit order fills at its price when the market trades
through it, up to the traded volume - so large orders fill in parts. KRX rules (tick size,
price limits, costs) come from ``hoga.domain.krx``; cash and holdings follow
``hoga.domain.portfolio``. Modify and cancel create new order numbers pointing back at the
original (``orig_ord_no``), as Kiwoom does.

Every state change is announced to listeners as Kiwoom realtime values: type ``00`` (order /
execution, FIDs 9201, 9203, 9001, 913, 900-911, 914/915, 938/939, 919) and type ``04``
(holding after an execution).

Business refusals use ``[2000](<code>:<message>)``. Codes 855056 (not enough margin) and
800033 (not enough sellable shares) are observed Kiwoom codes (kiwoom.md A4); 1902 (no such
stock) and 1517 (bad input) are documented codes (A7). The real codes for the other refusals
are not known, so the fake uses its own, visibly fake, 9000xx codes.

With a ``Journal`` every change (orders, books, the day's order and execution numbers) is
written at the end of the command or trade that made it, before the server answers; ``restore``
reads it back after a restart, so books survive and the day's numbers continue.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Any, Final

from hoga.domain import krx
from hoga.domain.clock import KST, Clock
from hoga.domain.market import Tick
from hoga.domain.orders import OrderType, Side, TimeInForce
from hoga.domain.portfolio import Position, apply_fill
from hoga.fakes.common import committed
from hoga.fakes.journal import Changes, Journal, order_record, restore_book
from hoga.fakes.kiwoom.formats import balance_code, hms, padded, signed
from hoga.fakes.sessions import NotAccepted, SessionDesk, Terms
from hoga.marketdata.feeds.simulator import SimulatedMarket

OFF_TICK: Final = "900001"
OUTSIDE_LIMITS: Final = "900002"
MARKET_CLOSED: Final = "900003"
NO_ORDER: Final = "900004"
NOT_MODIFIABLE: Final = "900005"
BAD_TRADE_TYPE: Final = "900006"
TOO_MANY: Final = "900007"
NO_MARGIN: Final = "855056"
NO_SHARES: Final = "800033"

# trde_tp -> (type, time in force), kiwoom.md A4. The fake keeps its own table rather than the
# adapter's, so a wrong code in either is caught by the adapter tests against the fake.
TRADE_TYPES: Final[dict[str, tuple[OrderType, TimeInForce]]] = {
    "0": (OrderType.LIMIT, TimeInForce.DAY),
    "3": (OrderType.MARKET, TimeInForce.DAY),
    "5": (OrderType.CONDITIONAL, TimeInForce.DAY),
    "6": (OrderType.BEST, TimeInForce.DAY),
    "7": (OrderType.PRIORITY, TimeInForce.DAY),
    "10": (OrderType.LIMIT, TimeInForce.IOC),
    "13": (OrderType.MARKET, TimeInForce.IOC),
    "16": (OrderType.BEST, TimeInForce.IOC),
    "20": (OrderType.LIMIT, TimeInForce.FOK),
    "23": (OrderType.MARKET, TimeInForce.FOK),
    "26": (OrderType.BEST, TimeInForce.FOK),
    "61": (OrderType.PRE_CLOSE, TimeInForce.DAY),
    "62": (OrderType.SINGLE_PRICE, TimeInForce.DAY),
    "81": (OrderType.AFTER_CLOSE, TimeInForce.DAY),
}
#: The trade-type text Kiwoom shows (FID 906, ka10075 ``trde_tp``).
TRADE_TYPE_TEXT: Final = {
    "0": "보통",
    "3": "시장가",
    "5": "조건부지정가",
    "6": "최유리지정가",
    "7": "최우선지정가",
    "10": "보통(IOC)",
    "13": "시장가(IOC)",
    "16": "최유리(IOC)",
    "20": "보통(FOK)",
    "23": "시장가(FOK)",
    "26": "최유리(FOK)",
    "61": "장시작전시간외",
    "62": "시간외단일가",
    "81": "장마감후시간외",
}

Values = dict[str, str]
Listener = Callable[[str, Values], None]


class Refusal(Exception):
    """A request the fake broker refuses; ``code`` and ``message`` go into the answer."""

    def __init__(self, code: str, message: str, *, business: bool = True) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.business = business

    @property
    def return_msg(self) -> str:
        if self.business:
            return f"[2000]({self.code}:{self.message})"
        return f"{self.message}[{self.code}:{self.message}]"


@dataclass
class FakeOrder:
    """One Kiwoom order number (a new order, a modify or a cancel)."""

    ord_no: str
    account_no: str
    symbol: str
    side: Side
    kind: str  # new | modify | cancel
    market: bool
    qty: int
    price: int
    orig: str
    ts: float
    day: date
    filled: int = 0
    amount: int = 0
    remaining: int = 0
    reserved: int = 0
    fee: int = 0
    tax: int = 0
    state: str = "접수"
    closed: bool = False
    trde_tp: str = ""
    venue: str = "KRX"
    #: The session it trades in (``krx.Session``) and whether a conditional limit order has
    #: turned into a market order at the closing auction.
    session: str = "continuous"
    converted: bool = False

    @property
    def terms(self) -> Terms:
        kind, tif = TRADE_TYPES.get(
            self.trde_tp or ("3" if self.market else "0"), (OrderType.LIMIT, TimeInForce.DAY)
        )
        return Terms(kind, tif, self.venue, self.session, self.converted)

    @property
    def kind_text(self) -> str:
        word = "매수" if self.side == Side.BUY else "매도"
        if self.kind == "modify":
            return f"{word}정정"
        if self.kind == "cancel":
            return f"{word}취소"
        return f"+{word}" if self.side == Side.BUY else f"-{word}"

    @property
    def trade_type_text(self) -> str:
        return TRADE_TYPE_TEXT.get(self.trde_tp or ("3" if self.market else "0"), "보통")

    @property
    def working(self) -> bool:
        return not self.closed and self.remaining > 0 and self.kind != "cancel"


@dataclass
class FakeBook:
    """One account at the fake broker."""

    account_no: str
    app_key: str
    app_secret: str
    env: str
    cash: int
    name: str = ""
    positions: dict[str, Position] = field(default_factory=dict)

    def reserved(self, orders: list[FakeOrder]) -> int:
        return sum(o.reserved for o in orders if o.account_no == self.account_no and o.working)


def digits(text: str) -> str:
    return "".join(ch for ch in text if ch.isdigit())


class FakeExchange:
    """Accounts, orders and matching; see the module docstring."""

    def __init__(
        self,
        market: SimulatedMarket,
        clock: Clock,
        *,
        commission_rate: Decimal = krx.DEFAULT_COMMISSION_RATE,
    ) -> None:
        self.market = market
        self._clock = clock
        self.commission_rate = commission_rate
        self.books: dict[str, FakeBook] = {}
        self.orders: dict[str, FakeOrder] = {}
        # Earlier days' orders: gone from the reports (Kiwoom numbers orders per day), kept for
        # the fake's own record of what reached it.
        self.history: list[FakeOrder] = []
        self._day = self._today()
        self._next_no = 1
        self._next_fill_no = 1
        self.listeners: list[Listener] = []
        self.balance_listeners: list[Listener] = []
        self.journal: Journal | None = None
        self._changes: Changes[str, FakeOrder] = Changes()
        self.desk: SessionDesk[FakeOrder] = SessionDesk(market, clock, self)
        market.add_listener(self.on_tick)

    # --- accounts

    def add_account(
        self, account_no: str, app_key: str, app_secret: str, env: str, cash: int
    ) -> FakeBook:
        number = digits(account_no)
        book = FakeBook(number, app_key, app_secret, env, cash)
        self.books[number] = book
        return book

    # --- the journal

    def _touch(self, order: FakeOrder, book: FakeBook | None = None) -> None:
        self._changes.touch(order.ord_no, order, None if book is None else (book.account_no, book))

    def commit(self) -> None:
        """Write what changed since the last commit (nothing without a journal)."""
        seq = {
            "day": self._day.isoformat(),
            "next_no": self._next_no,
            "next_fill_no": self._next_fill_no,
        }
        self._changes.commit(self.journal, order_record, seq)

    def restore(self, records: list[dict[str, Any]]) -> int:
        """Books and today's orders from journal ``records`` (accounts must be added first);
        returns how many orders were restored. Orders of earlier days have ended, as they do
        at Kiwoom (they go to ``history``), and today's numbers continue after the highest one
        journaled."""
        self.roll()
        today = self._day.isoformat()
        orders: dict[str, FakeOrder] = {}
        earlier: dict[tuple[str, str], FakeOrder] = {}
        for rec in records:
            kind = rec.get("t")
            if kind == "order":
                fields = {k: v for k, v in rec.items() if k != "t"}
                fields["side"] = Side(fields["side"])
                fields["day"] = date.fromisoformat(str(fields["day"]))
                order = FakeOrder(**fields)
                if order.account_no not in self.books:
                    continue
                if rec.get("day") == today:
                    orders[order.ord_no] = order
                else:
                    order.closed, order.reserved = True, 0
                    earlier[(rec["day"], order.ord_no)] = order
            elif kind == "account":
                restore_book(rec, self.books)
            elif kind == "seq" and rec.get("day") == today:
                self._next_no = max(self._next_no, int(rec["next_no"]))
                self._next_fill_no = max(self._next_fill_no, int(rec["next_fill_no"]))
        self.orders.update(orders)
        self.history.extend(earlier[k] for k in sorted(earlier))
        for order in orders.values():
            self._next_no = max(self._next_no, int(order.ord_no) + 1)
        return len(orders) + len(earlier)

    def by_key(self, app_key: str) -> FakeBook | None:
        for book in self.books.values():
            if book.app_key == app_key:
                return book
        return None

    # --- days

    def _today(self) -> date:
        return datetime.fromtimestamp(self._clock.time(), KST).date()

    def roll(self) -> None:
        """Start a new day if the clock says so: day orders end, numbers start again."""
        today = self._today()
        if today == self._day:
            return
        # Day orders end with the day; order and execution numbers start again.
        for order in self.orders.values():
            order.closed = True
            order.reserved = 0
        self.history.extend(self.orders.values())
        self.orders.clear()
        self._next_no = 1
        self._next_fill_no = 1
        self._day = today

    def _new_no(self) -> str:
        number = self._next_no
        self._next_no += 1
        return f"{number:07d}"

    def today_orders(self, account_no: str) -> list[FakeOrder]:
        self.roll()
        return [o for o in self.orders.values() if o.account_no == account_no]

    # --- helpers

    def _instrument_limits(self, symbol: str) -> tuple[str, int, int, int]:
        inst = self.market.instrument(symbol)
        if inst is None:
            raise Refusal("1902", "종목정보가 없습니다 (no such stock)", business=False)
        lower, upper = krx.price_limits(inst.base_price, inst.kind)
        return inst.kind, inst.base_price, lower, upper

    def _reserve(self, side: Side, qty: int, price: int) -> int:
        if side != Side.BUY:
            return 0
        amount = qty * price
        return amount + krx.commission(amount, self.commission_rate)

    def orderable(self, book: FakeBook) -> int:
        return book.cash - book.reserved(list(self.orders.values()))

    def sellable(self, book: FakeBook, symbol: str) -> int:
        held = book.positions.get(symbol, Position()).qty
        selling = sum(
            o.remaining
            for o in self.orders.values()
            if o.account_no == book.account_no
            and o.symbol == symbol
            and o.side == Side.SELL
            and o.working
        )
        return held - selling

    def _check_price(
        self, symbol: str, price: int, order_type: OrderType = OrderType.LIMIT
    ) -> None:
        kind, _, lower, upper = self._instrument_limits(symbol)
        band = self.desk.band(order_type, symbol)
        if band is not None:
            lower, upper = band
        if price % krx.tick_size(price, kind):
            raise Refusal(OFF_TICK, f"호가단위가 맞지 않습니다 ({price:,}원)")
        if not lower <= price <= upper:
            raise Refusal(
                OUTSIDE_LIMITS, f"가격제한폭을 벗어났습니다 (하한 {lower:,}원, 상한 {upper:,}원)"
            )

    # --- commands

    @committed
    def place(
        self,
        book: FakeBook,
        side: Side,
        symbol: str,
        qty: int,
        price: int,
        trade_type: str,
        venue: str = "KRX",
    ) -> FakeOrder:
        self.roll()
        _, _, _, upper = self._instrument_limits(symbol)
        if trade_type not in TRADE_TYPES:
            raise Refusal(BAD_TRADE_TYPE, f"지원하지 않는 매매구분입니다 ({trade_type})")
        kind, tif = TRADE_TYPES[trade_type]
        if qty <= 0:
            raise Refusal("1517", "주문수량이 올바르지 않습니다", business=False)
        if not self.desk.calendar and not self.market.is_open():
            raise Refusal(MARKET_CLOSED, "장운영시간이 아닙니다")
        try:
            session = self.desk.session_for(kind, tif, venue)
        except NotAccepted as e:
            if e.closed:
                raise Refusal(MARKET_CLOSED, "장운영시간이 아닙니다") from None
            raise Refusal(
                BAD_TRADE_TYPE, f"지금은 주문할 수 없는 매매구분입니다 ({trade_type})"
            ) from None
        market = kind == OrderType.MARKET
        if kind.needs_price:
            if price <= 0:
                raise Refusal("1517", "지정가 주문에는 주문단가가 필요합니다", business=False)
            self._check_price(symbol, price, kind)
            unit = price
        else:
            found = self.desk.price_for(kind, side, 0, symbol)
            if found is None:
                raise Refusal(BAD_TRADE_TYPE, "호가가 없어 주문할 수 없습니다")
            price = found
            # Market-like orders reserve at the upper limit; closing-price ones at their price.
            unit = price if kind in (OrderType.PRE_CLOSE, OrderType.AFTER_CLOSE) else upper
        reserve = self._reserve(side, qty, unit)
        if side == Side.BUY:
            room = self.orderable(book)
            if reserve > room:
                per_share = Decimal(unit) * (1 + self.commission_rate)
                can = max(0, int(Decimal(room) / per_share))
                raise Refusal(NO_MARGIN, f"매수증거금이 부족합니다. {can}주 매수가능")
        elif qty > self.sellable(book, symbol):
            raise Refusal(NO_SHARES, "매도가능수량이 부족합니다.")
        order = FakeOrder(
            ord_no=self._new_no(),
            account_no=book.account_no,
            symbol=symbol,
            side=side,
            kind="new",
            market=market,
            qty=qty,
            price=price,
            orig="",
            ts=self._clock.time(),
            day=self._day,
            remaining=qty,
            reserved=reserve,
            trde_tp=trade_type,
            venue=venue,
            session=session.value,
        )
        self.orders[order.ord_no] = order
        self._touch(order, book)
        self._announce(order, "접수")
        self.desk.arrive(order)
        return order

    def _original(self, book: FakeBook, orig_no: str, symbol: str) -> FakeOrder:
        self.roll()
        orig = self.orders.get(orig_no)
        if orig is None or orig.account_no != book.account_no or orig.symbol != symbol:
            raise Refusal(NO_ORDER, f"원주문번호를 찾을 수 없습니다 ({orig_no})")
        if not orig.working:
            raise Refusal(NOT_MODIFIABLE, f"정정/취소할 수 없는 주문입니다 ({orig_no})")
        return orig

    @committed
    def modify(self, book: FakeBook, orig_no: str, symbol: str, qty: int, price: int) -> FakeOrder:
        orig = self._original(book, orig_no, symbol)
        qty = qty or orig.remaining
        if qty > orig.remaining:
            raise Refusal(TOO_MANY, f"정정가능수량({orig.remaining}주)을 넘습니다")
        if not orig.terms.kind.needs_price or orig.converted:
            raise Refusal(NOT_MODIFIABLE, "시장가 주문은 가격을 정정할 수 없습니다")
        self._check_price(symbol, price, orig.terms.kind)
        released = orig.reserved * qty // orig.remaining if orig.remaining else 0
        reserve = self._reserve(orig.side, qty, price)
        if orig.side == Side.BUY and reserve > self.orderable(book) + released:
            raise Refusal(NO_MARGIN, "매수증거금이 부족합니다. 0주 매수가능")
        new = self._split_off(
            book,
            orig,
            qty,
            released,
            kind="modify",
            market=False,
            price=price,
            remaining=qty,
            reserved=reserve,
            trde_tp=orig.trde_tp,
            venue=orig.venue,
            session=orig.session,
        )
        if self.desk.continuous(new):
            self._match_now(new)
        return new

    @committed
    def cancel(self, book: FakeBook, orig_no: str, symbol: str, qty: int) -> FakeOrder:
        orig = self._original(book, orig_no, symbol)
        qty = qty or orig.remaining
        if qty > orig.remaining:
            raise Refusal(TOO_MANY, f"취소가능수량({orig.remaining}주)을 넘습니다")
        released = orig.reserved * qty // orig.remaining
        return self._split_off(
            book, orig, qty, released, kind="cancel", market=orig.market, price=0, closed=True
        )

    def _split_off(
        self, book: FakeBook, orig: FakeOrder, qty: int, released: int, **terms: Any
    ) -> FakeOrder:
        """Take ``qty`` shares (and ``released`` won of reserve) off a working original into a
        new order pointing back at it, as Kiwoom's modify and cancel both do, and announce it.

        ``terms`` are the new order's own fields (kind, price, reserve...)."""
        orig.reserved -= released
        orig.remaining -= qty
        if orig.remaining == 0:
            orig.closed = True
            orig.reserved = 0
        new = FakeOrder(
            ord_no=self._new_no(),
            account_no=book.account_no,
            symbol=orig.symbol,
            side=orig.side,
            qty=qty,
            orig=orig.ord_no,
            ts=self._clock.time(),
            day=self._day,
            **terms,
        )
        self.orders[new.ord_no] = new
        self._touch(orig, book)
        self._touch(new)
        self._announce(new, "접수")
        self._announce(new, "확인")
        return new

    # --- matching

    def _match_now(self, order: FakeOrder) -> None:
        tick = self.market.last(order.symbol)
        if tick is not None:
            self._match(order, tick, resting=False)

    def on_tick(self, tick: Tick) -> None:
        self.roll()
        self.desk.advance(datetime.fromtimestamp(tick.ts, KST))
        for order in [o for o in self.orders.values() if o.symbol == tick.symbol and o.working]:
            if self.desk.continuous(order):
                self._match(order, tick, resting=True)
        self.commit()

    @committed
    def advance(self) -> None:
        """Run the session moments (auctions, session ends) the clock has passed."""
        self.roll()
        self.desk.advance()

    def _match(self, order: FakeOrder, tick: Tick, *, resting: bool) -> None:
        if not order.working or not (self.market.is_open() or self.desk.calendar):
            return
        px, avail = self.desk.quote(order, tick, resting=resting)
        if px <= 0 or avail <= 0:
            return
        self._fill(order, min(order.remaining, avail), px)

    # --- the session desk's view of this exchange (fakes/sessions.py)

    def desk_working(self) -> list[FakeOrder]:
        return [o for o in self.orders.values() if o.working]

    def desk_side(self, order: FakeOrder) -> Side:
        return order.side

    def desk_fill(self, order: FakeOrder, qty: int, price: int, ts: float) -> None:
        self._fill(order, qty, price)

    def desk_changed(self, order: FakeOrder) -> None:
        self._touch(order)

    def desk_end(self, order: FakeOrder, why: str) -> None:
        """The unfilled rest ends (IOC/FOK, session end): Kiwoom confirms it as a cancel."""
        if not order.working:
            return
        order.remaining = 0
        order.closed = True
        order.reserved = 0
        order.state = "취소"
        self._touch(order, self.books[order.account_no])
        self._announce(order, "취소")

    def desk_match(self, order: FakeOrder, tick: Tick) -> None:
        self._match(order, tick, resting=False)

    def _fill(self, order: FakeOrder, qty: int, px: int) -> None:
        book = self.books[order.account_no]
        inst = self.market.instrument(order.symbol)
        market = inst.market if inst else "KOSPI"
        fee, tax = krx.fill_costs(
            order.side, qty, px, self._day, market, self.commission_rate, prior_amount=order.amount
        )
        pos = book.positions.get(order.symbol, Position())
        effect = apply_fill(pos, order.side, qty, px, fee, tax)
        book.positions[order.symbol] = effect.position
        book.cash += effect.cash
        before = order.remaining
        order.filled += qty
        order.amount += qty * px
        order.fee += fee
        order.tax += tax
        order.remaining -= qty
        if order.side == Side.BUY:
            order.reserved = order.reserved * order.remaining // before if before else 0
        if order.remaining == 0:
            order.closed = True
            order.reserved = 0
        order.state = "체결"
        self._touch(order, book)
        fill_no = self._next_fill_no
        self._next_fill_no += 1
        self._announce(order, "체결", unit=(qty, px, fee, tax, fill_no))
        self._announce_balance(book, order.symbol)

    # --- announcements (realtime values)

    def _announce(
        self, order: FakeOrder, state: str, unit: tuple[int, int, int, int, int] | None = None
    ) -> None:
        inst = self.market.instrument(order.symbol)
        base = inst.base_price if inst else 0
        values: Values = {
            "9201": order.account_no,
            "9203": order.ord_no,
            "9205": "",
            "9001": balance_code(order.symbol),
            "913": state,
            "302": inst.name if inst else "",
            "900": str(order.qty),
            "901": str(order.price),
            "902": str(order.remaining),
            "903": str(order.amount),
            "904": order.orig or "0000000",
            "905": order.kind_text,
            "906": order.trade_type_text,
            "907": "2" if order.side == Side.BUY else "1",
            "908": hms(self._clock.time()),
            "909": "",
            "910": "",
            "911": "",
            "914": "",
            "915": "",
            "938": "",
            "939": "",
            "919": "",
            "2134": "1",
            "2135": "KRX",
            "2136": "N",
        }
        if unit is not None:
            qty, px, fee, tax, number = unit
            values.update(
                {
                    "909": f"{number:07d}",
                    "910": signed(px, base),
                    "911": str(order.filled),
                    "914": signed(px, base),
                    "915": str(qty),
                    "938": str(fee),
                    "939": str(tax),
                }
            )
        for fn in self.listeners:
            fn(order.account_no, values)

    def _announce_balance(self, book: FakeBook, symbol: str) -> None:
        pos = book.positions.get(symbol, Position())
        tick = self.market.last(symbol)
        inst = self.market.instrument(symbol)
        base = inst.base_price if inst else 0
        price = tick.price if tick else base
        values: Values = {
            "9201": book.account_no,
            "9001": balance_code(symbol),
            "302": inst.name if inst else "",
            "10": signed(price, base),
            "930": str(pos.qty),
            "931": str(pos.avg_price),
            "932": str(pos.cost),
            "933": str(max(0, self.sellable(book, symbol))),
            "946": "2",
            "950": "0",
            "8019": "0.00",
            "990": "0",
            "991": "0.00",
        }
        for fn in self.balance_listeners:
            fn(book.account_no, values)

    # --- rows for the reports (formats of ka10075, ka10076, kt00018)

    def open_rows(self, book: FakeBook) -> list[dict[str, str]]:
        rows = []
        for o in sorted(self.today_orders(book.account_no), key=lambda o: o.ord_no, reverse=True):
            if not o.working:
                continue
            rows.append(
                {
                    "ord_no": o.ord_no,
                    "stk_cd": o.symbol,
                    "stk_nm": self._name(o.symbol),
                    "ord_stt": "체결" if o.filled else "접수",
                    "ord_qty": padded(o.qty, 10),
                    "ord_pric": padded(o.price, 10),
                    "oso_qty": padded(o.remaining, 10),
                    "orig_ord_no": o.orig or "0000000",
                    "io_tp_nm": o.kind_text,
                    "trde_tp": o.trade_type_text,
                    "tm": hms(o.ts),
                    "cntr_pric": padded(o.amount // o.filled, 10) if o.filled else "",
                    "cntr_qty": padded(o.filled, 10),
                    "stex_tp": "1",
                    "stex_tp_txt": "KRX",
                    "sor_yn": "N",
                }
            )
        return rows

    def executed_rows(self, book: FakeBook) -> list[dict[str, str]]:
        rows = []
        for o in sorted(self.today_orders(book.account_no), key=lambda o: o.ord_no, reverse=True):
            if not o.filled:
                continue
            rows.append(
                {
                    "ord_no": o.ord_no,
                    "stk_nm": self._name(o.symbol),
                    "io_tp_nm": o.kind_text,
                    "ord_pric": padded(o.price, 10),
                    "ord_qty": padded(o.qty, 10),
                    "cntr_pric": padded(o.amount // o.filled, 10),
                    "cntr_qty": padded(o.filled, 10),
                    "oso_qty": padded(o.remaining if o.working else 0, 10),
                    "tdy_trde_cmsn": padded(o.fee, 10),
                    "tdy_trde_tax": padded(o.tax, 10),
                    "ord_stt": "체결",
                    "trde_tp": o.trade_type_text,
                    "orig_ord_no": o.orig or "0000000",
                    "ord_tm": hms(o.ts),
                    "stk_cd": o.symbol,
                    "stex_tp": "1",
                    "stex_tp_txt": "KRX",
                    "sor_yn": "N",
                    "stop_pric": "",
                }
            )
        return rows

    def holding_rows(self, book: FakeBook) -> list[dict[str, str]]:
        rows = []
        for symbol, pos in sorted(book.positions.items()):
            if not pos.qty:
                continue
            tick = self.market.last(symbol)
            inst = self.market.instrument(symbol)
            base = inst.base_price if inst else 0
            price = tick.price if tick else base
            value = pos.qty * price
            rows.append(
                {
                    "stk_cd": balance_code(symbol),
                    "stk_nm": self._name(symbol),
                    "evltv_prft": padded(value - pos.cost, 15),
                    "prft_rt": f"{(value - pos.cost) * 100 / pos.cost:.2f}" if pos.cost else "0.00",
                    "pur_pric": padded(pos.avg_price, 15),
                    "pred_close_pric": padded(base, 12),
                    "rmnd_qty": padded(pos.qty, 15),
                    "trde_able_qty": padded(max(0, self.sellable(book, symbol)), 15),
                    "cur_prc": padded(price, 12),
                    "pur_amt": padded(pos.cost, 15),
                    "evlt_amt": padded(value, 15),
                }
            )
        return rows

    def _name(self, symbol: str) -> str:
        inst = self.market.instrument(symbol)
        return inst.name if inst else ""
