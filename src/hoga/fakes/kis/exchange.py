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
from dataclasses import asdict, dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from hoga.domain import krx
from hoga.domain.clock import KST, Clock
from hoga.domain.market import Tick
from hoga.domain.portfolio import Position, apply_fill
from hoga.fakes.journal import Journal
from hoga.marketdata.feeds.simulator import SimulatedMarket


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
    dvsn: str  # "00" limit, "01" market
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

    @property
    def remaining(self) -> int:
        return self.qty - self.filled - self.cancelled - self.rejected

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
        self._dirty_orders: dict[int, FakeOrder] = {}
        self._dirty_accounts: dict[str, FakeAccountState] = {}

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
        self._dirty_orders[order.odno] = order
        if acct is not None:
            self._dirty_accounts[acct.account] = acct

    def commit(self) -> None:
        """Write what changed since the last commit (nothing without a journal)."""
        orders, accounts = self._dirty_orders, self._dirty_accounts
        if not orders and not accounts:
            return
        self._dirty_orders, self._dirty_accounts = {}, {}
        if self.journal is None:
            return
        for o in orders.values():
            rec: dict[str, Any] = {"t": "order", **asdict(o)}
            rec["day"] = o.day.isoformat()
            self.journal.write(rec)
        for a in accounts.values():
            self.journal.write(
                {
                    "t": "account",
                    "account": a.account,
                    "cash": a.cash,
                    "positions": {
                        s: [p.qty, p.cost, p.realized_pnl] for s, p in a.positions.items()
                    },
                }
            )
        self.journal.write({"t": "seq", "next_odno": self._next_odno})

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
                acct = self.accounts.get(str(rec.get("account")))
                if acct is not None:
                    acct.cash = int(rec["cash"])
                    acct.positions = {
                        s: Position(int(v[0]), int(v[1]), int(v[2]))
                        for s, v in dict(rec.get("positions") or {}).items()
                    }
            elif kind == "seq":
                self._next_odno = max(self._next_odno, int(rec["next_odno"]))
        self.orders.update(orders)
        for order in orders.values():
            self._next_odno = max(self._next_odno, order.odno + 1)
            if order.working:
                self._by_symbol.setdefault(order.symbol, {})[order.odno] = order
        return len(orders)

    # --- orders

    def place(
        self, acct: FakeAccountState, symbol: str, side: str, dvsn: str, qty: int, price: int
    ) -> FakeOrder:
        try:
            return self._place(acct, symbol, side, dvsn, qty, price)
        finally:
            self.commit()

    def _place(
        self, acct: FakeAccountState, symbol: str, side: str, dvsn: str, qty: int, price: int
    ) -> FakeOrder:
        inst = self.market.instrument(symbol)
        if inst is None:
            raise Refusal("APBK0656", "해당 종목정보가 없습니다. 종목코드를 확인하세요")
        if dvsn not in ("00", "01"):
            raise Refusal("APBK0918", f"이 모의서버가 지원하지 않는 주문구분입니다 ({dvsn})")
        if qty <= 0:
            raise Refusal("APBK0918", "주문수량을 확인하세요")
        if not self._is_open():
            raise Refusal("APBK0919", "장운영시간이 아닙니다")
        lower, upper = krx.price_limits(inst.base_price, inst.kind)
        if dvsn == "00":
            if price <= 0 or price % krx.tick_size(price, inst.kind):
                raise Refusal("APBK0918", "주문단가가 호가단위에 맞지 않습니다")
            if not lower <= price <= upper:
                raise Refusal("APBK0918", f"주문가격이 상하한가를 벗어났습니다 ({lower}~{upper})")
            reserve_price = price
        else:
            price = 0
            reserve_price = upper
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
        )
        self.orders[order.odno] = order
        self._by_symbol.setdefault(symbol, {})[order.odno] = order
        self._touch(order, acct)
        self._announce(Execution("accept", acct, order, order.qty, order.price, now))
        tick = self.market.last(symbol)
        if tick is not None:
            self._match(acct, order, tick, resting=False)
        return order

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
        try:
            return self._revise(acct, orig_odno, org_no, kind, qty, all_qty, price, dvsn)
        finally:
            self.commit()

    def _revise(
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
        if not self._is_open():
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
                self._dirty_orders.pop(new.odno, None)
                raise Refusal("APBK0918", "주문가능금액을 초과 했습니다")
            new.reserved = need
        self._by_symbol.setdefault(new.symbol, {})[new.odno] = new
        self._announce(Execution("modify", acct, new, q, new.price, now))
        tick = self.market.last(new.symbol)
        if tick is not None:
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
        working = self._by_symbol.get(tick.symbol)
        if not working:
            return
        day = datetime.fromtimestamp(tick.ts, KST).date()
        for order in list(working.values()):
            if order.day != day:
                working.pop(order.odno, None)  # day orders lapse
                continue
            self._match(self.accounts[order.account], order, tick, resting=True)
        self.commit()

    def _match(
        self, acct: FakeAccountState, order: FakeOrder, tick: Tick, *, resting: bool
    ) -> None:
        buy = order.side == "02"
        best, size = (tick.ask, tick.ask_size) if buy else (tick.bid, tick.bid_size)
        px = avail = 0
        if order.dvsn == "01" or (best and (order.price >= best if buy else order.price <= best)):
            px, avail = best, size
        elif (
            resting
            and tick.volume
            and (tick.price < order.price if buy else tick.price > order.price)
        ):
            px, avail = order.price, tick.volume
        if px <= 0 or avail <= 0 or not order.working:
            return
        qty = min(order.remaining, avail)
        inst = self.market.instrument(order.symbol)
        market = inst.market if inst else "KOSPI"
        trade_day = datetime.fromtimestamp(tick.ts, KST).date()
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
