"""How the paper broker executes: an arriving order by its session and type, resting orders
against each tick, call auctions at one price, and fills booked into the account (commission
and sell tax from ``domain.krx``, prices and quantities from ``domain.matching``)."""

from __future__ import annotations

import logging
from datetime import datetime
from typing import TYPE_CHECKING

from hoga.brokers.base import (
    FillEvent,
    FillReport,
    OrderUpdate,
)
from hoga.brokers.paper_book import WORKING, PaperAccount, PaperOrder
from hoga.domain import krx, matching
from hoga.domain.clock import KST
from hoga.domain.market import Tick
from hoga.domain.orders import OrderStatus, Side, TimeInForce
from hoga.domain.portfolio import Position, apply_fill

if TYPE_CHECKING:
    from hoga.brokers.paper import PaperBroker

log = logging.getLogger(__name__)
_BUY = Side.BUY


class PaperMatcher:
    """The paper broker's matching; orders, accounts and the journal stay on the broker."""

    def __init__(self, broker: PaperBroker) -> None:
        self.broker = broker

    def arrive(self, acct: PaperAccount, order: PaperOrder) -> None:
        """What a newly accepted order does at once, by its session and type."""
        s = krx.Session(order.session)
        if s == krx.Session.PRE_CLOSE and order.price:
            # Time priority at a known price: the simulated market takes the whole order.
            self.fill(acct, order, order.remaining, order.price, self.broker._clock.time())
            return
        if s == krx.Session.AFTER_CLOSE:
            win = krx.window(order.day, s)
            if win is not None and win.trades_at(self.broker._clock.now()) and order.price:
                self.fill(acct, order, order.remaining, order.price, self.broker._clock.time())
            return
        if s in krx.AUCTIONS:
            return  # collected; matched at the auction's single price
        tick = self.broker._quotes.last(order.symbol)
        if (
            order.symbol in self.broker.sessions.vi_until
            or tick is None
            or not self.broker.sessions.is_open_for(s)
        ):
            if order.tif != TimeInForce.DAY:
                self.broker._end(
                    acct, order, OrderStatus.CANCELLED, "IOC/FOK: 즉시 체결 불가 (no match)"
                )
            return
        if order.tif == TimeInForce.FOK:
            px, avail = self.quote_for(order, tick, resting=False)
            if matching.immediate_qty(order.tif, order.remaining, avail if px else 0) == 0:
                self.broker._end(acct, order, OrderStatus.CANCELLED, "FOK: 전량 체결 불가 (killed)")
                return
        self.match(acct, order, tick, resting=False)
        if order.tif != TimeInForce.DAY and order.status in WORKING:
            self.broker._end(acct, order, OrderStatus.CANCELLED, "IOC: 잔량 취소 (rest cancelled)")

    def on_tick(self, tick: Tick) -> None:
        """Match resting orders of ``tick.symbol`` against the new trade and book."""
        if self.broker.calendar:
            self.broker.sessions.advance(datetime.fromtimestamp(tick.ts, KST))
        if self.broker.vi and self.broker.sessions.check_vi(tick):
            return
        working = self.broker._working.get(tick.symbol)
        if not working or not self.broker._is_open():
            return
        day = datetime.fromtimestamp(tick.ts, KST).date()
        # Every working order of the symbol is looked at on every tick, so the look at one
        # that cannot trade must be cheap: thousands rest in a long run (issue 13).
        low_buy, high_sell = matching.trade_bounds(tick)
        for account_id, order in list(working.values()):
            if (order.day != day and order.venue == "KRX") or order.day < day:
                acct = self.broker._accounts[account_id]
                self.broker._end(acct, order, OrderStatus.EXPIRED, "day ended")
                continue
            limit = order.limit
            if limit is not None and (limit < low_buy if order.side == _BUY else limit > high_sell):
                continue  # cannot trade against this tick
            if krx.Session(order.session) in krx.AUCTIONS:
                continue  # waits for its auction
            self.match(self.broker._accounts[account_id], order, tick, resting=True)

    def quote_for(self, order: PaperOrder, tick: Tick, *, resting: bool) -> tuple[int, int]:
        """(price, shares available) for the order against this tick; (0, 0) for no trade."""
        return matching.quote_against(order.side, order.limit, tick, resting=resting)

    def match(self, acct: PaperAccount, order: PaperOrder, tick: Tick, *, resting: bool) -> None:
        px, avail = self.quote_for(order, tick, resting=resting)
        if px <= 0 or avail <= 0:
            return
        self.fill(acct, order, min(order.remaining, avail), px, tick.ts)

    def fill(self, acct: PaperAccount, order: PaperOrder, qty: int, px: int, ts: float) -> None:
        if qty <= 0 or order.status not in WORKING:
            return
        fill_id = f"{order.broker_order_id}-{order.fills + 1}"
        inst = self.broker._quotes.instrument(order.symbol)
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
        self.book_fill(acct, order, qty, px, fill_id, ts, fee, tax)
        self.broker._write(
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
        self.broker._emit(acct.account_id, FillEvent(acct.fills[-1]))
        self.broker._emit(acct.account_id, OrderUpdate(order.report()))

    def book_fill(
        self,
        acct: PaperAccount,
        order: PaperOrder,
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
            self.broker._set_status(acct, order, OrderStatus.FILLED, None)
        else:
            order.status = OrderStatus.PARTIALLY_FILLED

    def auction(
        self,
        symbol: str,
        orders: list[tuple[PaperAccount, PaperOrder]],
        ts: float,
        *,
        reference: int | None = None,
    ) -> int | None:
        """Match ``orders`` in one call auction at a single price; the price, or None.

        The simulated market takes part as liquidity at its own price (the reference: the
        last trade): what it shows on both sides, at that price. Paper orders priced through
        it trade at the one price that executes the most (``domain.matching``)."""
        tick = self.broker._quotes.last(symbol)
        ref = reference or (tick.price if tick is not None else 0)
        if ref <= 0:
            return None
        book = [
            matching.AuctionOrder(o.side, o.remaining, o.limit, key=o.broker_order_id)
            for _, o in orders
        ]
        result = matching.auction_with_market(book, tick, ref)
        if result is None:
            return None
        for acct, o in orders:
            qty = result.fills.get(o.broker_order_id, 0)
            if qty > 0:
                self.fill(acct, o, qty, result.price, ts)
        return result.price
