"""The wire form of ticks and order books on NATS (``<prefix>.md.tick.<symbol>``, ``.book.``).

Fixed binary layouts (little-endian ``struct``), not JSON: a busy feed publishes thousands of
ticks a second to every instance, and packing nine numbers is ~5x cheaper than a JSON dump and
a third of the size. Prices and quantities are integer won / shares exactly as in the domain
types; the symbol travels in the subject, never in the payload. A tick message may carry
several ticks of its symbol back to back (fixed-size records, oldest first): a feed owner that
falls behind sends what piled up in one message per symbol instead of one per tick. The first byte is a format
version so a rolling upgrade can tell an old layout from a new one (unknown versions are
dropped by the reader, never misread).
"""

from __future__ import annotations

import struct

from hoga.domain.market import OrderBook, Tick

VERSION = 1

# version, ts, price, bid, ask, base_price, volume, bid_size, ask_size, cum_volume
_TICK = struct.Struct("<Bdqqqqqqqq")
# version, ts, total_ask_qty, total_bid_qty, number of asks, number of bids
_BOOK_HEAD = struct.Struct("<BdqqBB")
_LEVEL = struct.Struct("<qq")


class CodecError(ValueError):
    """A payload that is not a version-1 tick or book (truncated, or a newer layout)."""


def encode_tick(t: Tick) -> bytes:
    return _TICK.pack(
        VERSION,
        t.ts,
        t.price,
        t.bid,
        t.ask,
        t.base_price,
        t.volume,
        t.bid_size,
        t.ask_size,
        t.cum_volume,
    )


#: Ticks per message at most (1,000 x 73 bytes stays far below NATS's 1 MB payload limit).
MAX_TICKS_PER_MESSAGE = 1000


def decode_tick(symbol: str, data: bytes) -> Tick:
    """Exactly one tick."""
    if len(data) != _TICK.size:
        raise CodecError("not one version-1 tick")
    return decode_ticks(symbol, data)[0]


def decode_ticks(symbol: str, data: bytes) -> list[Tick]:
    """The ticks of one message (one or more records), oldest first."""
    if not data or len(data) % _TICK.size or data[0] != VERSION:
        raise CodecError("not version-1 ticks")
    out = []
    for version, ts, price, bid, ask, base, volume, bid_size, ask_size, cum in _TICK.iter_unpack(
        data
    ):
        if version != VERSION:
            raise CodecError("not version-1 ticks")
        out.append(
            Tick(
                symbol=symbol,
                price=price,
                volume=volume,
                ts=ts,
                bid=bid,
                ask=ask,
                bid_size=bid_size,
                ask_size=ask_size,
                cum_volume=cum,
                base_price=base,
            )
        )
    return out


def encode_book(b: OrderBook) -> bytes:
    asks, bids = b.asks[:255], b.bids[:255]
    parts = [_BOOK_HEAD.pack(VERSION, b.ts, b.total_ask_qty, b.total_bid_qty, len(asks), len(bids))]
    parts.extend(_LEVEL.pack(p, q) for p, q in asks)
    parts.extend(_LEVEL.pack(p, q) for p, q in bids)
    return b"".join(parts)


def decode_book(symbol: str, data: bytes) -> OrderBook:
    head = _BOOK_HEAD.size
    if len(data) < head or data[0] != VERSION:
        raise CodecError("not a version-1 order book")
    _, ts, total_ask, total_bid, n_asks, n_bids = _BOOK_HEAD.unpack_from(data)
    if len(data) != head + (n_asks + n_bids) * _LEVEL.size:
        raise CodecError("truncated order book")
    levels: list[tuple[int, int]] = list(_LEVEL.iter_unpack(data[head:]))
    return OrderBook(
        symbol=symbol,
        ts=ts,
        asks=tuple(levels[:n_asks]),
        bids=tuple(levels[n_asks:]),
        total_ask_qty=total_ask,
        total_bid_qty=total_bid,
    )
