"""What to book for an execution report: the rule that books each execution once.

Brokers name the same execution differently depending on where hoga hears of it - a live
notice, a fill report, a report's cumulative total after a restart - so fill ids alone cannot
de-duplicate. What does not change is *where the execution leaves the order*: its cumulative
filled quantity at the broker (and, where the broker says, its cumulative executed amount).
An execution report that carries that cumulative position (``cum_qty``/``cum_amount``) is
booked as the difference between it and what the order has booked so far:

* nothing, if the order has already booked that much (a repeat, under whatever id);
* the missing quantity, for the missing amount, if the broker gave its cumulative amount -
  earlier executions hoga never heard of are caught up in the same step, and the order's
  filled amount ends equal to the broker's to the won (split over at most two prices one won
  apart, since an average need not be a whole won);
* the execution itself, when it is exactly the next one;
* for a report that covers every execution so far at one average price (``qty == cum_qty``,
  no amount): the missing quantity for the average times the total less what is booked;
* nothing, with ``skip="gap"``, when executions before it are missing and their amount is
  unknown: reconciliation books them from the broker's reports, after which this one fits.

A report without a cumulative position is booked as itself if it fits in what remains of the
order (``skip="over"`` otherwise); its fill id is then the only de-duplication.
Nothing is ever booked beyond the order's quantity or the broker's cumulative quantity.

``Execution`` is what every fill record shares once booked (symbol, side, quantity, price,
costs).
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any


@dataclass(frozen=True, slots=True)
class Execution:
    """What one execution traded and cost, wherever it is recorded: ``qty`` shares of
    ``symbol`` bought or sold (``side`` ``"buy"``/``"sell"``) at ``price``, with its commission
    and tax - all money in won.

    The base of every fill record (the ledger's row, a strategy's fill, a backtest's simulated
    one); each adds its own ids and timestamp.
    """

    symbol: str
    side: str
    qty: int
    price: int
    commission: int
    tax: int


_TERMS = tuple(f.name for f in fields(Execution))


def execution_terms(e: Execution) -> dict[str, Any]:
    """An execution's terms as the JSON answers show them (the fills list, backtest reports):
    the fields of ``Execution``, whatever record carries them."""
    return {name: getattr(e, name) for name in _TERMS}


@dataclass(frozen=True, slots=True)
class FillPlan:
    """``parts``: (qty, price) rows to book, in order; ``skip``: why nothing is booked."""

    parts: tuple[tuple[int, int], ...] = ()
    skip: str | None = None

    @property
    def qty(self) -> int:
        return sum(q for q, _ in self.parts)

    @property
    def amount(self) -> int:
        return sum(q * p for q, p in self.parts)


def split(qty: int, amount: int) -> tuple[tuple[int, int], ...]:
    """``qty`` shares worth ``amount`` won in all, at one price or two a won apart."""
    if qty <= 0 or amount < qty:
        raise ValueError(f"cannot split {amount} won over {qty} shares")
    price, odd = divmod(amount, qty)
    parts = ((qty - odd, price), (odd, price + 1))
    return tuple(p for p in parts if p[0] > 0)


def plan(
    *,
    order_qty: int,
    filled_qty: int,
    filled_amount: int,
    qty: int,
    price: int,
    cum_qty: int | None = None,
    cum_amount: int | None = None,
) -> FillPlan:
    """What to book for one execution report on an order that has booked ``filled_qty``
    shares for ``filled_amount`` won (see the module docstring)."""
    if qty <= 0 or price <= 0:
        return FillPlan(skip="bad")
    remaining = order_qty - filled_qty
    if cum_qty is None:
        if qty > remaining:
            return FillPlan(skip="over")
        return FillPlan(((qty, price),))
    target = min(cum_qty, order_qty)
    missing = target - filled_qty
    if missing <= 0:
        return FillPlan(skip="duplicate")
    if cum_amount is None and qty == cum_qty and filled_qty > 0:
        # The report covers every execution so far at one (average) price - Kiwoom's report
        # rows after a restart. What hoga has not booked is worth the average times the
        # total less what it has booked: off by under a won a share (the average's
        # truncation), where the average times the missing quantity is off by however far
        # the price moved between the executions hoga heard of and those it missed. (At
        # least a won a share: every price is, and the estimate may undershoot by the
        # truncation.)
        if cum_qty > order_qty:
            return FillPlan(((missing, price),))
        return FillPlan(split(missing, max(qty * price - filled_amount, missing)))
    if cum_amount is not None and cum_qty <= order_qty:
        amount = cum_amount - filled_amount
        if amount >= missing:
            return FillPlan(split(missing, amount))
        # The broker's amount cannot be right for what is missing (below a won a share):
        # fall through and book at the execution's own price.
    if missing == qty or missing < qty:
        # The next execution (or the rest of one partly booked already).
        return FillPlan(((missing, price),))
    return FillPlan(skip="gap")
