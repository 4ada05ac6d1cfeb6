"""Structural checks of an order intent (422 with a code; nothing is written).

Pure apart from the instrument lookup: what an intent must look like before the risk gate
(``execution/risk.py``) weighs it against cash, limits and the market.
"""

from __future__ import annotations

from dataclasses import replace

from hoga.domain import krx
from hoga.domain.errors import Conflict, InvalidInput
from hoga.domain.market import QuoteSource
from hoga.domain.orders import Order, OrderIntent

MAX_QTY = 10_000_000


def validate(intent: OrderIntent, quotes: QuoteSource) -> OrderIntent:
    """The intent with its symbol normalised, or ``InvalidInput`` naming the field."""
    symbol = krx.normalize_symbol(intent.symbol) if isinstance(intent.symbol, str) else ""
    if not krx.is_valid_symbol(symbol):
        raise InvalidInput(
            f"종목코드 형식이 올바르지 않습니다: {intent.symbol!r}",
            "order.bad_symbol",
            field="symbol",
        )
    if quotes.instrument(symbol) is None:
        raise InvalidInput(
            f"알 수 없는 종목입니다: {symbol}", "order.unknown_symbol", field="symbol"
        )
    check_qty(intent.qty)
    if intent.type.needs_price:
        if intent.price is None:
            raise InvalidInput(
                "지정가 주문에는 가격이 필요합니다 (limit order needs a price)",
                "order.price_required",
                field="price",
            )
        check_price(intent.price)
    elif intent.price is not None:
        raise InvalidInput(
            f"시장가·최유리·최우선·시간외종가 주문에는 가격을 넣지 않습니다 ({intent.type}) "
            "(market-priced order takes no price)",
            "order.price_not_allowed",
            field="price",
        )
    cid = intent.client_order_id
    if cid is not None and not (1 <= len(cid) <= 64 and cid.isprintable() and " " not in cid):
        raise InvalidInput(
            "client_order_id: 1-64 printable characters without spaces",
            "order.bad_client_order_id",
            field="client_order_id",
        )
    return replace(intent, symbol=symbol)


def check_qty(qty: object, code: str = "order.bad_qty") -> None:
    if isinstance(qty, bool) or not isinstance(qty, int) or qty <= 0:
        raise InvalidInput(
            "수량은 1 이상의 정수여야 합니다 (qty must be a positive integer)", code, field="qty"
        )
    if qty > MAX_QTY:
        raise InvalidInput(f"수량이 너무 큽니다 (qty over {MAX_QTY:,})", code, field="qty")


def check_price(price: object, code: str = "order.bad_price") -> None:
    if isinstance(price, bool) or not isinstance(price, int) or price <= 0:
        raise InvalidInput(
            "가격은 1원 이상의 정수여야 합니다 (price must be a positive integer)",
            code,
            field="price",
        )


def same_or_conflict(existing: Order, intent: OrderIntent) -> Order:
    """A repeated ``client_order_id``: the first order if the intent is the same, else 409."""
    same = (
        existing.symbol == intent.symbol
        and existing.side == intent.side
        and existing.type == intent.type
        and existing.qty == intent.qty
        and existing.price == intent.price
        and existing.tif == intent.tif
        and existing.venue == intent.venue
        and (intent.account_id is None or existing.account_id == intent.account_id)
    )
    if not same:
        raise Conflict(
            "이 client_order_id는 다른 주문에 이미 쓰였습니다 (client_order_id already used for a different order)",
            "order.client_order_id_reused",
            order_id=existing.id,
        )
    return existing
