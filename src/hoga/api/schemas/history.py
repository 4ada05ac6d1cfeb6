"""Answers of the order preview, the trade-history pages and the daily P&L."""

from __future__ import annotations

from typing import Generic, TypeVar

from pydantic import Field

from hoga.api.schemas import Answer, FillView, OrderView

Item = TypeVar("Item")


class PriceBand(Answer):
    base: int
    lower: int
    upper: int


class OrderPreview(Answer):
    """What ``POST /api/orders`` would decide and what the order would cost; nothing is
    recorded. ``code``/``message`` are the risk gate's refusal when ``ok`` is false."""

    ok: bool
    code: str | None
    message: str | None
    symbol: str
    name: str
    price: int
    amount: int
    commission: int
    tax: int
    total: int
    reserved_cash: int
    orderable_cash: int
    cash_after: int
    tick_size: int
    price_up: int
    price_down: int
    limits: PriceBand
    trades_today: int
    daily_limit: int


class Page(Answer, Generic[Item]):
    """One page of a history: ``total`` rows match the filter."""

    items: list[Item]
    total: int
    page: int
    page_size: int


class OrderPage(Page[OrderView]):
    pass


class FillPage(Page[FillView]):
    pass


class DailyLine(Answer):
    date: str
    realized: int
    unrealized: int
    commission: int
    tax: int
    equity: int
    trades: int
    #: Whether the day's positions were marked at its close (else at the last known price).
    marked: bool


class DailyTotals(Answer):
    realized: int
    commission: int
    tax: int


class DailyPnl(Answer):
    first: str = Field(alias="from")
    last: str = Field(alias="to")
    days: list[DailyLine]
    totals: DailyTotals
