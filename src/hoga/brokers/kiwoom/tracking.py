"""What the adapter knows about one account's Kiwoom orders, and type-00 frames as events.

Kiwoom gives a modify or a cancel its **own new order number** (kiwoom.md A4); fills after a
modify arrive on the new number. hoga knows an order by the number its ``place`` returned, so
the tracker keeps each order as a *chain*: the root number hoga knows, every number derived
from it (``orig_ord_no`` / FID 904 point back), and the *head* - the number currently
resting, which a further modify or cancel must name. Events and reports always speak of the
root, and carry hoga's ``client_order_id`` when the tracker knows it, so the pipeline finds
the order whichever number Kiwoom used.

Order numbers restart every day, so hoga's id is ``YYYYMMDD-<ord_no>``.

Fill ids are ``YYYYMMDD-<ord_no>-<cumulative qty>``: the execution notice's FID 911 is the
order's cumulative filled quantity (915/914 are this execution's quantity and price, 903 the
cumulative executed amount), and the fill report (ka10076) gives the same cumulative quantity,
so a fill seen live and again in a report de-duplicates. Each fill also carries where it leaves
the order (``cum_qty``, and ``cum_amount`` when 903 made it exact), which the pipeline books
against whatever it has booked before: a notice of the last execution of an order that
executed while hoga was down (911 = 123, 915 = 23) then books all 123 shares, not 23. The
cumulative position is only given for a chain whose every number this tracker has followed
(the root alone, or an order placed by this process): after a restart, the fills of an
original number a modify replaced are unknown, and a partial total would look like a repeat.

A ``place`` whose answer never came (timeout, dropped connection) leaves a *pending* entry; a
type-00 acceptance for an order number nobody claimed is matched to it when exactly one
pending entry has the same symbol, side, quantity and price - then the event carries the
pending order's ``client_order_id`` and the pipeline settles the ``UNKNOWN`` order at once.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field, replace
from datetime import date, datetime
from typing import Any

from hoga.brokers.base import (
    BrokerError,
    ExecutionEvent,
    FillEvent,
    FillReport,
    OrderStatusReport,
    OrderUpdate,
    PlaceRequest,
)
from hoga.brokers.kiwoom.wire import (
    WireError,
    blank_order_no,
    day_key,
    external_order_id,
    parse_hms,
    split_order_id,
    to_code,
    to_int,
    to_price,
    to_qty,
    to_text,
    type_of_text,
)
from hoga.domain.clock import KST, Clock
from hoga.domain.orders import OrderStatus, OrderType, Side

log = logging.getLogger(__name__)
S = OrderStatus
_MAX_PENDING = 1000


def side_of(side_fid: Any, kind_text: str) -> Side | None:
    """FID 907 (1 sell, 2 buy), else the sign/word in the kind text (``+매수``, ``-매도``)."""
    code = to_text(side_fid)
    if code == "1":
        return Side.SELL
    if code == "2":
        return Side.BUY
    if "매도" in kind_text:
        return Side.SELL
    if "매수" in kind_text:
        return Side.BUY
    return None


def type_of(trade_type_text: str) -> OrderType:
    """The order type of a trade-type text (``보통``, ``시장가``, ``최유리지정가``...); IOC/FOK
    variants give their base type."""
    return type_of_text(trade_type_text)


@dataclass
class Chain:
    """One hoga order at Kiwoom: its root number and every number derived from it."""

    day: str
    root: str
    symbol: str
    side: Side
    type: OrderType
    qty: int
    price: int | None
    ts: float
    client_order_id: str | None = None
    head: str = ""
    members: set[str] = field(default_factory=set)
    filled: int = 0
    amount: int = 0
    cancelled: int = 0
    status: OrderStatus = S.ACCEPTED
    reason: str | None = None
    cancel_acked: bool = False
    #: Cumulative filled quantity and executed amount per order number (911 and 903).
    cum: dict[str, int] = field(default_factory=dict)
    cum_amt: dict[str, int] = field(default_factory=dict)
    #: Whether ``amount`` is the broker's to the won (903 seen for every execution counted).
    exact: bool = True
    #: Placed by this process: every number of the chain is known from its birth.
    placed_here: bool = False
    fills: dict[str, list[FillReport]] = field(default_factory=dict)
    #: Partial cancels a modify made to reduce the order (its quantity already shows them),
    #: and what each cancel confirmation counted, so the two never both apply.
    reductions: set[str] = field(default_factory=set)
    cancel_seen: dict[str, int] = field(default_factory=dict)
    #: Where it was sent (KRX/NXT/SOR): a modify or cancel must name the same market.
    venue: str = "KRX"

    def __post_init__(self) -> None:
        self.head = self.head or self.root
        self.members.add(self.root)

    @property
    def order_id(self) -> str:
        return external_order_id(self.day, self.root)

    @property
    def remaining(self) -> int:
        return max(0, self.qty - self.filled - self.cancelled)

    @property
    def followed(self) -> bool:
        """Every number of the chain is known, so its totals are the order's totals."""
        return self.placed_here or self.members == {self.root}

    def count(self, ord_no: str, cum: int, amount: int | None, exact: bool) -> None:
        """Record that number ``ord_no`` has executed ``cum`` shares for ``amount`` won."""
        self.cum[ord_no] = cum
        if amount is not None:
            self.cum_amt[ord_no] = amount
        self.exact = self.exact and exact
        self.filled = sum(self.cum.values())
        self.amount = sum(self.cum_amt.values())

    def position(self) -> tuple[int | None, int | None]:
        """(cum_qty, cum_amount) for a fill of this chain, where certain."""
        if not self.followed:
            return None, None
        return self.filled, self.amount if self.exact else None

    def execution(
        self, ord_no: str, cum: int, qty: int, price: int, ts: float, *, averaged: bool = False
    ) -> FillReport:
        """The fill that brought number ``ord_no`` to ``cum`` shares, once ``count``ed: named
        ``<day>-<ord_no>-<cum>``, with ``~avg`` when its price is an average of a report's
        (hoga's ledger marks such fills, so reconciliation knows a cash difference of a few
        won is this truncation)."""
        cum_qty, cum_amount = self.position()
        return FillReport(
            broker_order_id=self.order_id,
            fill_id=f"{self.day}-{ord_no}-{cum}{'~avg' if averaged else ''}",
            symbol=self.symbol,
            side=self.side,
            qty=qty,
            price=price,
            ts=ts,
            cum_qty=cum_qty,
            cum_amount=cum_amount,
        )

    def report(self) -> OrderStatusReport:
        return OrderStatusReport(
            broker_order_id=self.order_id,
            client_order_id=self.client_order_id,
            symbol=self.symbol,
            side=self.side,
            type=self.type,
            qty=self.qty,
            price=self.price,
            filled_qty=self.filled,
            avg_price=self.amount // self.filled if self.filled else 0,
            filled_amount=self.amount if self.filled and self.exact else None,
            status=self.status,
            ts=self.ts,
            reason=self.reason,
        )

    def all_fills(self) -> list[FillReport]:
        out = [f for fills in self.fills.values() for f in fills]
        if self.client_order_id:
            out = [replace(f, client_order_id=self.client_order_id) for f in out]
        return sorted(out, key=lambda f: f.ts)


@dataclass
class Pending:
    """A ``place`` sent but not (yet) answered with an order number."""

    request: PlaceRequest
    started: float
    unknown: bool = False

    def matches(
        self, symbol: str, side: Side, qty: int, price: int | None, kind: OrderType
    ) -> bool:
        r = self.request
        if (r.symbol, r.side, r.qty, r.type) != (symbol, side, qty, kind):
            return False
        return not kind.needs_price or r.price == price


class OrderTracker:
    """Chains and pending placements of one account; see the module docstring."""

    def __init__(self, account_id: int, clock: Clock) -> None:
        self.account_id = account_id
        self._clock = clock
        self._chains: dict[tuple[str, str], Chain] = {}
        self._pending: list[Pending] = []

    # --- days and lookups

    def today(self) -> date:
        return self._clock.now().astimezone(KST).date()

    def chain(self, day: str, ord_no: str) -> Chain | None:
        return self._chains.get((day, ord_no))

    async def resolve(
        self, order_id: str, resync: Callable[[date], Awaitable[object]]
    ) -> tuple[str, str, Chain | None]:
        """(day, the number a modify/cancel must name, the chain) for hoga's order id.

        An order this process did not place (a restart) is found by ``resync``-ing today's
        reports, which rebuild its chain: a modified order is then addressed by its current
        number, not the dead original. A failed resync leaves the number as given."""
        today = self.today()
        day, number = split_order_id(order_id, today)
        chain = self.chain(day, number)
        if chain is None and day == day_key(today):
            with contextlib.suppress(BrokerError):
                await resync(today)
            chain = self.chain(day, number)
        return day, (chain.head if chain else number), chain

    def chains(self, day: str) -> list[Chain]:
        seen: dict[int, Chain] = {}
        for (d, _), c in self._chains.items():
            if d == day:
                seen[id(c)] = c
        return list(seen.values())

    def link(self, chain: Chain, ord_no: str) -> None:
        chain.members.add(ord_no)
        self._chains[(chain.day, ord_no)] = chain

    def add(self, chain: Chain) -> Chain:
        for no in chain.members:
            self._chains[(chain.day, no)] = chain
        return chain

    # --- placements

    def expect(self, request: PlaceRequest) -> Pending:
        p = Pending(request, self._clock.time())
        self._pending.append(p)
        if len(self._pending) > _MAX_PENDING:
            del self._pending[0]
        return p

    def forget(self, pending: Pending) -> None:
        if pending in self._pending:
            self._pending.remove(pending)

    def placed(self, pending: Pending, ord_no: str) -> Chain:
        """``place`` came back with ``ord_no``."""
        self.forget(pending)
        r = pending.request
        day = day_key(self.today())
        chain = self._chains.get((day, ord_no))
        if chain is None:
            chain = self.add(
                Chain(
                    day=day,
                    root=ord_no,
                    symbol=r.symbol,
                    side=r.side,
                    type=r.type,
                    qty=r.qty,
                    price=r.price,
                    ts=pending.started,
                )
            )
        chain.client_order_id = r.client_order_id
        chain.placed_here = True
        chain.venue = r.venue
        return chain

    def unanswered(self, pending: Pending) -> list[ExecutionEvent]:
        """``place`` ended without an answer. If exactly one unclaimed chain already seen on
        the execution stream fits, claim it and replay its events with the client id."""
        pending.unknown = True
        r = pending.request
        fits = [
            c
            for c in self.chains(day_key(self.today()))
            if c.client_order_id is None
            and c.root == c.head
            and c.ts >= pending.started - 2.0
            and Pending(r, 0).matches(c.symbol, c.side, c.qty, c.price, c.type)
        ]
        if len(fits) != 1:
            return []
        chain = fits[0]
        self.forget(pending)
        chain.client_order_id = r.client_order_id
        events: list[ExecutionEvent] = [OrderUpdate(chain.report())]
        events += [FillEvent(f) for f in chain.all_fills()]
        return events

    def _claim(
        self, symbol: str, side: Side, qty: int, price: int | None, kind: OrderType
    ) -> str | None:
        fits = [p for p in self._pending if p.unknown and p.matches(symbol, side, qty, price, kind)]
        if len(fits) != 1:
            return None
        self.forget(fits[0])
        return fits[0].request.client_order_id

    # --- modify / cancel answers

    def reduced(self, chain: Chain, ord_no: str, by: int) -> None:
        """A modify reduced ``chain`` by ``by`` shares through the partial cancel ``ord_no``."""
        self.link(chain, ord_no)
        chain.cancelled -= chain.cancel_seen.pop(ord_no, 0)
        chain.reductions.add(ord_no)
        chain.qty = max(chain.qty - by, chain.filled)

    def derived(self, chain: Chain, ord_no: str, *, modify: bool, price: int | None) -> None:
        """A modify or cancel of ``chain`` was accepted under the new number ``ord_no``."""
        self.link(chain, ord_no)
        if modify:
            chain.head = ord_no
            if price is not None:
                chain.price = price
        else:
            chain.cancel_acked = True

    # --- execution notices (type 00)

    def on_order_frame(self, values: dict[str, Any]) -> list[ExecutionEvent]:
        """Translate one type-00 frame; unknown or malformed frames give no events."""
        try:
            return self._translate(values)
        except WireError as e:
            log.warning("kiwoom: unreadable execution notice ignored (%s)", e)
            return []

    def _translate(self, v: dict[str, Any]) -> list[ExecutionEvent]:
        ord_no = to_text(v.get("9203"))
        if not ord_no:
            return []
        today = self.today()
        day = day_key(today)
        state = to_text(v.get("913"))
        kind_text = to_text(v.get("905"))
        orig = to_text(v.get("904"))
        orig = "" if blank_order_no(orig) else orig
        is_modify, is_cancel = "정정" in kind_text, "취소" in kind_text
        symbol = to_code(v.get("9001"))
        side = side_of(v.get("907"), kind_text)
        ts = parse_hms(v.get("908"), today) or self._clock.time()
        chain = self._chains.get((day, ord_no))
        if chain is None and orig:
            chain = self._chains.get((day, orig))
            if chain is not None:
                self.link(chain, ord_no)
        if chain is None:
            if side is None:
                return []
            qty = to_qty(v.get("900"))
            price = to_price(v.get("901")) or None
            kind = type_of(to_text(v.get("906")))
            if is_modify or is_cancel:
                # A derived order whose original we never saw (e.g. after a restart).
                root = orig or ord_no
                chain = self.add(Chain(day, root, symbol, side, kind, 0, None, ts))
                self.link(chain, ord_no)
            else:
                chain = self.add(
                    Chain(
                        day,
                        ord_no,
                        symbol,
                        side,
                        kind,
                        qty,
                        price if kind.needs_price else None,
                        ts,
                        client_order_id=self._claim(symbol, side, qty, price, kind),
                    )
                )
        if state == "체결":
            return self._fill(chain, ord_no, v, ts)
        if state == "접수":
            if is_modify or is_cancel or chain.status != S.ACCEPTED or ord_no != chain.root:
                return []
            return [OrderUpdate(chain.report())]
        if state == "확인":
            if is_cancel:
                if ord_no in chain.reductions:
                    return []  # a modify's reduction, already in the chain's quantity
                cancelled = to_qty(v.get("900")) or chain.remaining
                chain.cancel_seen[ord_no] = cancelled
                chain.cancelled += cancelled
                return self._maybe_cancelled(chain)
            if is_modify:
                chain.head = ord_no
                chain.price = to_price(v.get("901")) or chain.price
            return []
        if state == "취소":
            chain.cancelled = chain.qty - chain.filled
            return self._maybe_cancelled(chain)
        if state == "거부":
            reason = to_text(v.get("919")) or "주문 거부 (rejected)"
            if is_modify or is_cancel:
                log.warning(
                    "kiwoom: a %s of order %s was refused: %s",
                    "modify" if is_modify else "cancel",
                    chain.order_id,
                    reason,
                )
                return []
            if chain.status in (S.FILLED, S.CANCELLED, S.REJECTED):
                return []
            chain.status, chain.reason = S.REJECTED, reason
            return [OrderUpdate(chain.report())]
        return []

    def _maybe_cancelled(self, chain: Chain) -> list[ExecutionEvent]:
        if chain.remaining > 0 or chain.status in (S.FILLED, S.CANCELLED, S.REJECTED):
            return []
        chain.status = S.CANCELLED if chain.filled < chain.qty or chain.qty == 0 else S.FILLED
        return [OrderUpdate(chain.report())] if chain.status == S.CANCELLED else []

    def _fill(
        self, chain: Chain, ord_no: str, v: dict[str, Any], ts: float
    ) -> list[ExecutionEvent]:
        cum = to_qty(v.get("911"))
        seen = chain.cum.get(ord_no, 0)
        if cum <= seen:
            return []  # a repeat of an execution already delivered
        qty = to_qty(v.get("915")) or (cum - seen)
        price = to_price(v.get("914")) or to_price(v.get("910"))
        if qty <= 0 or price <= 0:
            return []
        total = to_int(v.get("903"), 0)
        if total >= cum:
            chain.count(ord_no, cum, total, exact=True)
        else:
            # No cumulative amount: exact only if no execution of this number went unseen.
            before = chain.cum_amt.get(ord_no, 0)
            chain.count(ord_no, cum, before + qty * price, exact=cum - seen == qty)
        if chain.qty and chain.filled >= chain.qty:
            chain.status = S.FILLED
        elif chain.status == S.ACCEPTED:
            chain.status = S.PARTIALLY_FILLED
        fill = chain.execution(ord_no, cum, qty, price, ts)
        chain.fills.setdefault(ord_no, []).append(fill)
        return [FillEvent(replace(fill, client_order_id=chain.client_order_id))]

    # --- reports (ka10075 open orders, ka10076 orders with executions)

    def sync(
        self, day: str, rows: list[ReportRow]
    ) -> tuple[list[OrderStatusReport], list[FillReport]]:
        """Fold one day's report rows into the chains; return hoga's reports for that day.

        Fills the rows show beyond what this tracker has delivered become one fill per order
        number with the row's cumulative quantity in its id (the same id a live notice of that
        execution would carry), and are remembered so a late live notice is not counted twice.
        """
        touched: dict[int, Chain] = {}
        working: set[int] = set()
        for row in sorted(rows, key=lambda r: (len(r.ord_no), r.ord_no)):
            chain = self._chains.get((day, row.ord_no))
            if chain is None and row.orig:
                chain = self._chains.get((day, row.orig))
                if chain is not None:
                    self.link(chain, row.ord_no)
            if chain is None:
                root = row.orig or row.ord_no
                chain = self.add(
                    Chain(
                        day,
                        root,
                        row.symbol,
                        row.side,
                        row.type,
                        row.qty if root == row.ord_no else 0,
                        row.price,
                        row.ts,
                    )
                )
                self.link(chain, row.ord_no)
            touched[id(chain)] = chain
            if row.cancel:
                continue
            if row.ord_no != chain.root and row.open_qty > 0:
                chain.head = row.ord_no
                chain.price = row.price if chain.type.needs_price else None
            if row.open_qty > 0:
                working.add(id(chain))
            self._absorb_fills(chain, row)
        for key, chain in touched.items():
            if chain.qty == 0:
                chain.qty = chain.filled + sum(
                    r.open_qty for r in rows if not r.cancel and r.ord_no in chain.members
                )
            if key in working:
                chain.status = S.PARTIALLY_FILLED if chain.filled else S.ACCEPTED
            elif chain.qty and chain.filled >= chain.qty:
                chain.status = S.FILLED
            elif chain.status not in (S.CANCELLED, S.REJECTED):
                # Closed with a remainder: cancelled, or expired at the exchange.
                chain.status = S.CANCELLED
        out = dict(touched)
        for chain in self.chains(day):
            if id(chain) in touched:
                continue
            if chain.cancel_acked and chain.status in (S.ACCEPTED, S.PARTIALLY_FILLED):
                # Kiwoom accepted our cancel and no longer lists the order as open.
                chain.status = S.CANCELLED
            if chain.status in (S.CANCELLED, S.REJECTED, S.FILLED):
                out[id(chain)] = chain
        chains = sorted(out.values(), key=lambda c: c.ts)
        fills = [f for c in chains for f in c.all_fills()]
        return [c.report() for c in chains], fills

    def _absorb_fills(self, chain: Chain, row: ReportRow) -> None:
        seen = chain.cum.get(row.ord_no, 0)
        if row.filled <= seen:
            return
        residual = row.filled - seen
        known = sum(f.qty * f.price for f in chain.fills.get(row.ord_no, []))
        total = row.fill_price * row.filled if row.fill_price else 0
        price = (total - known) // residual if total > known else (row.fill_price or row.price or 0)
        if price <= 0:
            raise WireError(f"order {row.ord_no}: filled {row.filled} without a price")
        # ka10076 gives an (integer) price per number, not the executed amount: inexact.
        chain.count(
            row.ord_no, row.filled, chain.cum_amt.get(row.ord_no, 0) + residual * price, False
        )
        # The inexact count leaves the chain without a certain amount: no cum_amount.
        fill = chain.execution(row.ord_no, row.filled, residual, price, row.ts, averaged=True)
        chain.fills.setdefault(row.ord_no, []).append(fill)

    # --- housekeeping

    def prune(self, keep_days: Iterable[str]) -> None:
        """Drop chains of days no longer of interest (order numbers restart daily)."""
        keep = set(keep_days)
        for key in [k for k in self._chains if k[0] not in keep]:
            del self._chains[key]
        horizon = self._clock.time() - 86400
        self._pending = [p for p in self._pending if p.started >= horizon]


def ts_of(day: str, hms: Any, fallback: float) -> float:
    """``HHMMSS`` of the ``YYYYMMDD`` day as POSIX seconds (fallback when blank)."""
    try:
        d = datetime.strptime(day, "%Y%m%d").date()
    except ValueError:
        return fallback
    return parse_hms(hms, d) or fallback


@dataclass(frozen=True, slots=True)
class ReportRow:
    """One row of ka10075 (open orders) or ka10076 (orders with executions), parsed."""

    ord_no: str
    orig: str
    symbol: str
    side: Side
    type: OrderType
    qty: int
    price: int | None
    open_qty: int
    filled: int
    fill_price: int
    ts: float
    cancel: bool

    @classmethod
    def parse(cls, r: dict[str, Any], day: str, fallback_ts: float) -> ReportRow:
        """Raises WireError for a row without an order number, code or side."""
        ord_no = to_text(r.get("ord_no"))
        if not ord_no:
            raise WireError("report row without ord_no")
        kind_text = to_text(r.get("io_tp_nm"))
        side = side_of(None, kind_text)
        if side is None:
            raise WireError(f"order {ord_no}: no side in {kind_text[:10]!r}")
        kind = type_of(to_text(r.get("trde_tp")))
        price = to_price(r.get("ord_pric"))
        orig = to_text(r.get("orig_ord_no"))
        return cls(
            ord_no=ord_no,
            orig="" if blank_order_no(orig) else orig,
            symbol=to_code(r.get("stk_cd")),
            side=side,
            type=kind,
            qty=to_qty(r.get("ord_qty")),
            price=None if not kind.needs_price or price == 0 else price,
            open_qty=to_qty(r.get("oso_qty")),
            filled=to_qty(r.get("cntr_qty")),
            fill_price=to_price(r.get("cntr_pric")),
            ts=ts_of(day, r.get("tm") or r.get("ord_tm"), fallback_ts),
            cancel="취소" in kind_text,
        )
