"""The KIS fake's brokerage book: accounts, orders, matching against the simulated market.

Pure state, no I/O: the server turns requests into calls here and pushes the resulting notices
and market frames. Orders are matched like the paper broker does - market and marketable limit
orders at the opposite best price up to its displayed size, resting limit orders when the
market trades through them, up to the traded volume - so partial fills happen naturally.
Costs come from ``domain.krx``. Settlement is immediate (a simplification: real KIS moves
``dnca_tot_amt`` at D+2).

With a ``Journal`` every change is written (orders, account books, the next order number) at
the end of the operation that made it, before the server answers; ``restore`` reads it back
after a restart, so books survive and order numbers continue.
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
from hoga.fakes.sessions import NotAccepted, SessionDesk, Terms
from hoga.marketdata.feeds.simulator import SimulatedMarket

# ORD_DVSN -> (type, time in force), kis.md §4. The fake keeps its own table rather than the
# adapter's, so a wrong code in either is caught by the adapter tests against the fake.
ORD_KINDS: Final[dict[str, tuple[OrderType, TimeInForce]]] = {
    "00": (OrderType.LIMIT, TimeInForce.DAY),
    "01": (OrderType.MARKET, TimeInForce.DAY),
    "02": (OrderType.CONDITIONAL, TimeInForce.DAY),
    "03": (OrderType.BEST, TimeInForce.DAY),
    "04": (OrderType.PRIORITY, TimeInForce.DAY),
    "05": (OrderType.PRE_CLOSE, TimeInForce.DAY),
    "06": (OrderType.AFTER_CLOSE, TimeInForce.DAY),
    "07": (OrderType.SINGLE_PRICE, TimeInForce.DAY),
    "11": (OrderType.LIMIT, TimeInForce.IOC),
    "12": (OrderType.LIMIT, TimeInForce.FOK),
    "13": (OrderType.MARKET, TimeInForce.IOC),
    "14": (OrderType.MARKET, TimeInForce.FOK),
    "15": (OrderType.BEST, TimeInForce.IOC),
    "16": (OrderType.BEST, TimeInForce.FOK),
}


def _side(code: str) -> Side:
    return Side.BUY if code == "02" else Side.SELL


class Refusal(Exception):
    """A business refusal: ``msg_cd`` and ``msg1`` as KIS would send them."""

    def __init__(self, msg_cd: str, msg1: str) -> None:
        super().__init__(f"{msg_cd}: {msg1}")
        self.msg_cd = msg_cd
        self.msg1 = msg1


@dataclass
class FakeOrder:
    """An order at the fake broker; a cancel request is a row of its own (``is_cancel``)."""

    odno: int
    org_no: str
    account: str
    symbol: str
    side: str  # "01" sell, "02" buy
    dvsn: str  # ORD_DVSN, kis.md §4 ("00" limit, "01" market, ...)
    qty: int
    price: int
    ts: float
    day: date
    orig_odno: int | None = None
    is_cancel: bool = False
    filled: int = 0
    filled_amount: int = 0
    cancelled: int = 0
    rejected: int = 0
    reserved: int = 0
    venue: str = "KRX"
    #: The session it trades in (``krx.Session``) and whether a conditional limit order has
    #: turned into a market order at the closing auction.
    session: str = "continuous"
    converted: bool = False

    @property
    def remaining(self) -> int:
        return self.qty - self.filled - self.cancelled - self.rejected

    @property
    def terms(self) -> Terms:
        kind, tif = ORD_KINDS.get(self.dvsn, (OrderType.LIMIT, TimeInForce.DAY))
        return Terms(kind, tif, self.venue, self.session, self.converted)

    @property
    def working(self) -> bool:
        return not self.is_cancel and self.remaining > 0


@dataclass
class FakeAccountState:
    """One account's cash and holdings at the fake broker (settled at once)."""

    account: str  # CANO + ACNT_PRDT_CD, 10 digits
    app_key: str
    hts_id: str
    name: str
    cash: int
    commission_rate: Decimal
    positions: dict[str, Position] = field(default_factory=dict)

    @property
    def cano(self) -> str:
        return self.account[:8]

    @property
    def prdt(self) -> str:
        return self.account[8:]


@dataclass(frozen=True)
class Execution:
    """What the server announces: an order event (``kind``) for ``order``."""

    kind: str  # "accept", "fill", "cancel", "modify", "reject"
    account: FakeAccountState
    order: FakeOrder
    qty: int = 0
    price: int = 0
    ts: float = 0.0


class Exchange:
    """Accounts and their orders at the fake broker; see the module docstring."""

    def __init__(
        self,
        market: SimulatedMarket,
        clock: Clock,
        *,
        env: str,
        is_open: Callable[[], bool] | None = None,
    ) -> None:
        self.market = market
        self._clock = clock
        self.env = env
        self._is_open = is_open or market.is_open
        self.accounts: dict[str, FakeAccountState] = {}
        self.orders: dict[int, FakeOrder] = {}
        self._by_symbol: dict[str, dict[int, FakeOrder]] = {}
        self.org_no = "06590" if env == "real" else "00950"
        self.listeners: list[Callable[[Execution], None]] = []
        self.day_stats: dict[str, dict[str, int]] = {}
        self.journal: Journal | None = None
        self._next_odno = 10001
        self._changes: Changes[int, FakeOrder] = Changes()
        self.desk: SessionDesk[FakeOrder] = SessionDesk(market, clock, self)

    def add_account(self, state: FakeAccountState) -> None:
        self.accounts[state.account] = state

    def _announce(self, ex: Execution) -> None:
        for fn in self.listeners:
            fn(ex)

    # --- the journal

    def _new_odno(self) -> int:
        odno = self._next_odno
        self._next_odno += 1
        return odno

    def _touch(self, order: FakeOrder, acct: FakeAccountState | None = None) -> None:
        self._changes.touch(order.odno, order, None if acct is None else (acct.account, acct))

    def commit(self) -> None:
        """Write what changed since the last commit (nothing without a journal)."""
        self._changes.commit(self.journal, order_record, {"next_odno": self._next_odno})

    def restore(self, records: list[dict[str, Any]]) -> int:
        """Books and orders from journal ``records`` (accounts must be added first); returns
        how many orders were restored. Accounts the journal knows but this start does not
        are skipped."""
        orders: dict[int, FakeOrder] = {}
        for rec in records:
            kind = rec.get("t")
            if kind == "order":
                fields = {k: v for k, v in rec.items() if k != "t"}
                fields["day"] = date.fromisoformat(str(fields["day"]))
                order = FakeOrder(**fields)
                if order.account in self.accounts:
                    orders[order.odno] = order
            elif kind == "account":
                restore_book(rec, self.accounts)
            elif kind == "seq":
                self._next_odno = max(self._next_odno, int(rec["next_odno"]))
        self.orders.update(orders)
        for order in orders.values():
            self._next_odno = max(self._next_odno, order.odno + 1)
            if order.working:
                self._by_symbol.setdefault(order.symbol, {})[order.odno] = order
        return len(orders)

    # --- orders

    @committed
    def place(
        self,
        acct: FakeAccountState,
        symbol: str,
        side: str,
        dvsn: str,
        qty: int,
        price: int,
        venue: str = "KRX",
    ) -> FakeOrder:
        inst = self.market.instrument(symbol)
        if inst is None:
            raise Refusal("APBK0656", "해당 종목정보가 없습니다. 종목코드를 확인하세요")
        if dvsn not in ORD_KINDS:
            raise Refusal("APBK0918", f"주문구분을 확인하세요 ({dvsn})")
        kind, tif = ORD_KINDS[dvsn]
        if qty <= 0:
            raise Refusal("APBK0918", "주문수량을 확인하세요")
        if not self.desk.calendar and not self._is_open():
            raise Refusal("APBK0919", "장운영시간이 아닙니다")
        try:
            session = self.desk.session_for(kind, tif, venue)
        except NotAccepted as e:
            if e.closed:
                raise Refusal("APBK0919", "장운영시간이 아닙니다") from None
            raise Refusal("APBK0918", f"주문가능한 시간이 아닙니다 ({dvsn})") from None
        lower, upper = krx.price_limits(inst.base_price, inst.kind)
        if kind.needs_price:
            band = self.desk.band(kind, symbol) or (lower, upper)
            if price <= 0 or price % krx.tick_size(price, inst.kind):
                raise Refusal("APBK0918", "주문단가가 호가단위에 맞지 않습니다")
            if not band[0] <= price <= band[1]:
                raise Refusal(
                    "APBK0918", f"주문가격이 상하한가를 벗어났습니다 ({band[0]}~{band[1]})"
                )
            reserve_price = price
        else:
            found = self.desk.price_for(kind, _side(side), 0, symbol)
            if found is None:
                raise Refusal("APBK0918", "호가가 없어 주문할 수 없습니다")
            price = found
            # Market-like orders reserve at the upper limit; closing-price ones at their price.
            reserve_price = price if kind in (OrderType.PRE_CLOSE, OrderType.AFTER_CLOSE) else upper
        reserved = 0
        if side == "02":
            amount = qty * reserve_price
            reserved = amount + krx.commission(amount, acct.commission_rate)
            if reserved > acct.cash - self.reserved_cash(acct):
                raise Refusal("APBK0918", "주문가능금액을 초과 했습니다")
        else:
            held = acct.positions.get(symbol, Position()).qty
            if qty > held - self.open_sell_qty(acct, symbol):
                raise Refusal("APBK0918", "주문가능수량을 초과 했습니다")
        now = self._clock.time()
        order = FakeOrder(
            odno=self._new_odno(),
            org_no=self.org_no,
            account=acct.account,
            symbol=symbol,
            side=side,
            dvsn=dvsn,
            qty=qty,
            price=price,
            ts=now,
            day=datetime.fromtimestamp(now, KST).date(),
            reserved=reserved,
            venue=venue,
            session=session.value,
        )
        self.orders[order.odno] = order
        self._by_symbol.setdefault(symbol, {})[order.odno] = order
        self._touch(order, acct)
        self._announce(Execution("accept", acct, order, order.qty, order.price, now))
        self.desk.arrive(order)
        return order

    @committed
    def revise(
        self,
        acct: FakeAccountState,
        orig_odno: int,
        org_no: str,
        kind: str,
        qty: int,
        all_qty: bool,
        price: int,
        dvsn: str,
    ) -> FakeOrder:
        orig = self.orders.get(orig_odno)
        if orig is None or orig.account != acct.account or orig.is_cancel:
            raise Refusal("APBK0918", "원주문번호를 확인하세요 (주문이 없습니다)")
        if org_no and org_no.lstrip("0") != orig.org_no.lstrip("0"):
            raise Refusal("APBK0918", "주문조직번호가 원주문과 다릅니다")
        if not orig.working:
            raise Refusal("APBK0918", "정정/취소할 수량이 없습니다 (이미 체결 또는 취소된 주문)")
        open_now = (
            bool(krx.sessions_at(self._clock.now(), orig.venue))
            if self.desk.calendar
            else self._is_open()
        )
        if not open_now:
            raise Refusal("APBK0919", "장운영시간이 아닙니다")
        q = orig.remaining if all_qty else qty
        if q <= 0 or q > orig.remaining:
            raise Refusal("APBK0918", f"정정/취소 수량이 가능수량({orig.remaining})을 초과합니다")
        now = self._clock.time()
        day = datetime.fromtimestamp(now, KST).date()
        inst = self.market.instrument(orig.symbol)
        assert inst is not None
        if kind == "01":
            lower, upper = krx.price_limits(inst.base_price, inst.kind)
            if dvsn == "00" and (
                price <= 0 or price % krx.tick_size(price, inst.kind) or not lower <= price <= upper
            ):
                raise Refusal("APBK0918", "정정가격을 확인하세요")
        share = orig.reserved * q // orig.remaining if orig.remaining else 0
        orig.reserved -= share
        orig.cancelled += q
        self._retire(orig)
        new = FakeOrder(
            odno=self._new_odno(),
            org_no=orig.org_no,
            account=acct.account,
            symbol=orig.symbol,
            side=orig.side,
            dvsn=dvsn if kind == "01" else orig.dvsn,
            qty=q,
            price=price if kind == "01" else orig.price,
            ts=now,
            day=day,
            orig_odno=orig.odno,
            is_cancel=kind == "02",
            venue=orig.venue,
            session=orig.session,
            converted=orig.converted,
        )
        self.orders[new.odno] = new
        self._touch(orig, acct)
        self._touch(new)
        if kind == "02":
            self._announce(Execution("cancel", acct, new, q, orig.price, now))
            return new
        new.reserved = share if orig.side == "02" else 0
        if orig.side == "02" and dvsn == "00":
            # Re-reserve at the new price (a higher price needs more cash).
            amount = q * price
            need = amount + krx.commission(amount, acct.commission_rate)
            if need - share > acct.cash - self.reserved_cash(acct):
                orig.cancelled -= q
                orig.reserved += share
                self._by_symbol.setdefault(orig.symbol, {})[orig.odno] = orig
                del self.orders[new.odno]
                self._changes.orders.pop(new.odno, None)
                raise Refusal("APBK0918", "주문가능금액을 초과 했습니다")
            new.reserved = need
        self._by_symbol.setdefault(new.symbol, {})[new.odno] = new
        self._announce(Execution("modify", acct, new, q, new.price, now))
        tick = self.market.last(new.symbol)
        if tick is not None and self.desk.continuous(new):
            self._match(acct, new, tick, resting=False)
        return new

    def _retire(self, order: FakeOrder) -> None:
        if not order.working:
            order.reserved = 0
            self._by_symbol.get(order.symbol, {}).pop(order.odno, None)

    def reserved_cash(self, acct: FakeAccountState) -> int:
        return sum(
            o.reserved for o in self.orders.values() if o.account == acct.account and o.working
        )

    def open_sell_qty(self, acct: FakeAccountState, symbol: str) -> int:
        return sum(
            o.remaining
            for o in self.orders.values()
            if o.account == acct.account and o.symbol == symbol and o.side == "01" and o.working
        )

    # --- matching

    def on_tick(self, tick: Tick) -> None:
        stats = self.day_stats.get(tick.symbol)
        if stats is None or stats.get("day") != int(
            datetime.fromtimestamp(tick.ts, KST).strftime("%Y%m%d")
        ):
            stats = self.day_stats[tick.symbol] = {
                "day": int(datetime.fromtimestamp(tick.ts, KST).strftime("%Y%m%d")),
                "open": tick.price,
                "high": tick.price,
                "low": tick.price,
                "amount": 0,
            }
        stats["high"] = max(stats["high"], tick.price)
        stats["low"] = min(stats["low"], tick.price)
        stats["amount"] += tick.price * tick.volume
        self.desk.advance(datetime.fromtimestamp(tick.ts, KST))
        working = self._by_symbol.get(tick.symbol)
        if not working:
            self.commit()
            return
        day = datetime.fromtimestamp(tick.ts, KST).date()
        for order in list(working.values()):
            if order.day != day:
                working.pop(order.odno, None)  # day orders lapse
                continue
            if self.desk.continuous(order):
                self._match(self.accounts[order.account], order, tick, resting=True)
        self.commit()

    def advance(self) -> None:
        """Run the session moments (auctions, session ends) the clock has passed."""
        self.desk.advance()
        self.commit()

    # --- the session desk's view of this exchange (fakes/sessions.py)

    def desk_working(self) -> list[FakeOrder]:
        return [o for w in self._by_symbol.values() for o in w.values() if o.working]

    def desk_side(self, order: FakeOrder) -> Side:
        return _side(order.side)

    def desk_fill(self, order: FakeOrder, qty: int, price: int, ts: float) -> None:
        self._fill(self.accounts[order.account], order, qty, price, ts)

    def desk_changed(self, order: FakeOrder) -> None:
        self._touch(order)

    def desk_end(self, order: FakeOrder, why: str) -> None:
        if not order.working:
            return
        acct = self.accounts[order.account]
        rest = order.remaining
        order.cancelled += rest
        self._retire(order)
        self._touch(order, acct)
        if order.terms.tif != TimeInForce.DAY:
            # IOC/FOK leftovers are announced (ACPT_YN 3); session ends are not.
            self._announce(Execution("ioc_cancel", acct, order, rest, order.price))

    def desk_match(self, order: FakeOrder, tick: Tick) -> None:
        self._match(self.accounts[order.account], order, tick, resting=False)

    def _match(
        self, acct: FakeAccountState, order: FakeOrder, tick: Tick, *, resting: bool
    ) -> None:
        px, avail = self.desk.quote(order, tick, resting=resting)
        if px <= 0 or avail <= 0 or not order.working:
            return
        self._fill(acct, order, min(order.remaining, avail), px, tick.ts)

    def _fill(self, acct: FakeAccountState, order: FakeOrder, qty: int, px: int, ts: float) -> None:
        if qty <= 0 or not order.working:
            return
        buy = order.side == "02"
        inst = self.market.instrument(order.symbol)
        market = inst.market if inst else "KOSPI"
        trade_day = datetime.fromtimestamp(ts, KST).date()
        side = "buy" if buy else "sell"
        fee, tax = krx.fill_costs(
            side,
            qty,
            px,
            trade_day,
            market,
            acct.commission_rate,
            prior_amount=order.filled_amount,
        )
        effect = apply_fill(acct.positions.get(order.symbol, Position()), side, qty, px, fee, tax)
        acct.positions[order.symbol] = effect.position
        acct.cash += effect.cash
        before = order.remaining
        order.filled += qty
        order.filled_amount += qty * px
        if buy:
            order.reserved = order.reserved * order.remaining // before if before else 0
        self._retire(order)
        self._touch(order, acct)
        self._announce(Execution("fill", acct, order, qty, px, self._clock.time()))

    # --- views

    def account_orders(self, acct: FakeAccountState, day: date) -> list[FakeOrder]:
        return [o for o in self.orders.values() if o.account == acct.account and o.day == day]
