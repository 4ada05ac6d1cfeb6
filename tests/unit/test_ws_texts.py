"""The fan-out encodes each quote and book once for every socket (``api/ws.py WireTexts``)."""

from __future__ import annotations

import json

from hoga.api.views import orderbook_view, quote_view
from hoga.api.ws import WireTexts
from hoga.domain.market import OrderBook, Tick


def _tick(price: int, ts: float = 1_700_000_000.0) -> Tick:
    return Tick("005930", price, 10, ts, bid=price - 100, ask=price, base_price=70_000)


def _book(bid: int) -> OrderBook:
    return OrderBook(
        symbol="005930",
        ts=1_700_000_000.0,
        asks=((bid + 100, 5),),
        bids=((bid, 7),),
        total_ask_qty=5,
        total_bid_qty=7,
    )


def test_a_quote_is_encoded_once_and_says_what_quote_view_says() -> None:
    texts = WireTexts()
    tick = _tick(71_000)
    first = texts.quote(tick)
    assert texts.quote(tick) is first  # the second socket gets the same text, not a new one
    assert json.loads(first) == json.loads(json.dumps(quote_view(tick)))


def test_a_new_tick_of_the_symbol_gets_its_own_text() -> None:
    texts = WireTexts()
    old = texts.quote(_tick(71_000))
    new = texts.quote(_tick(71_100, ts=1_700_000_001.0))
    assert json.loads(new)["price"] == 71_100
    assert json.loads(old)["price"] == 71_000
    # An equal tick (another object, the same fields) is the same quote: the same text.
    assert texts.quote(_tick(71_100, ts=1_700_000_001.0)) is new


def test_a_tick_changed_in_place_gets_a_new_text() -> None:
    """``Tick`` is mutable: a feed that reused one object would otherwise send stale prices."""
    texts = WireTexts()
    tick = _tick(71_000)
    before = texts.quote(tick)
    tick.price = 71_200
    assert json.loads(texts.quote(tick))["price"] == 71_200
    assert json.loads(before)["price"] == 71_000
    tick.recv_ts = 5.0  # not on the wire: the text stays
    assert texts.quote(tick) is texts.quote(tick)


def test_a_book_text_follows_the_last_price_as_well_as_the_book() -> None:
    texts = WireTexts()
    book = _book(70_900)
    at_71000 = texts.book(book, 71_000)
    assert texts.book(book, 71_000) is at_71000
    assert json.loads(at_71000) == {"type": "orderbook", **orderbook_view(book, 71_000)}
    at_none = texts.book(book, None)
    assert json.loads(at_none)["last"] is None
    assert json.loads(texts.book(_book(71_000), 71_000))["bids"][0]["price"] == 71_000
