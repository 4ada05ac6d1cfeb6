"""Market data over HTTP: the universe, cached quotes, bars and per-symbol trading rules."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import APIRouter, Query, Request

from hoga.api.bounds import MAX_ID
from hoga.api.deps import User, get_hoga
from hoga.api.schemas import SIGNED_IN, answer
from hoga.api.schemas.market import BarList, OrderBookView, QuoteList, SymbolList, TradingRules
from hoga.api.views import bar_view, orderbook_view, quote_view
from hoga.domain import krx
from hoga.domain.clock import KST
from hoga.domain.errors import Conflict, InvalidInput, NotFound
from hoga.domain.market import OrderBook
from hoga.marketdata.bars import aggregate

router = APIRouter(prefix="/api/market", tags=["market"])

MAX_QUOTES = 200
#: Symbols one quotes request may fetch from the broker on demand: the rest of a long list
#: of unwatched symbols would hold the app key's request budget (orders share it) for seconds.
MAX_ON_DEMAND = 10
MAX_BARS = 5000
INTERVALS = {
    "1m": 60,
    "3m": 180,
    "5m": 300,
    "10m": 600,
    "15m": 900,
    "30m": 1800,
    "60m": 3600,
    "1d": 86400,
}


def parse_symbols(raw: str, universe: Any, cap: int) -> list[str]:
    symbols = [s.strip().upper() for s in raw.split(",") if s.strip()]
    if not symbols:
        raise InvalidInput(
            "symbols가 비어 있습니다 (give comma-separated codes)",
            "market.no_symbols",
            field="symbols",
        )
    if len(symbols) > cap:
        raise InvalidInput(
            f"한 번에 {cap}종목까지 조회할 수 있습니다 (at most {cap} symbols)",
            "market.too_many_symbols",
            field="symbols",
        )
    bad = [s for s in symbols if not krx.is_valid_symbol(s)]
    if bad:
        raise InvalidInput(
            f"종목코드 형식이 올바르지 않습니다: {', '.join(bad[:5])}",
            "market.bad_symbol",
            field="symbols",
            symbols=bad,
        )
    unknown = [s for s in symbols if s not in universe]
    if unknown:
        raise InvalidInput(
            f"알 수 없는 종목입니다: {', '.join(unknown[:5])}",
            "market.unknown_symbol",
            field="symbols",
            symbols=unknown,
        )
    return list(dict.fromkeys(symbols))


@router.get("/symbols", **answer(SymbolList, *SIGNED_IN, 422))
async def symbols(
    ctx: User,
    request: Request,
    q: str | None = Query(None, max_length=40),
    market: str | None = Query(None, max_length=10),
    limit: int = Query(500, ge=1, le=1000),
) -> dict[str, Any]:
    hoga = get_hoga(request)
    insts = hoga.universe.search(q, limit) if q else list(hoga.universe.instruments)
    if market:
        insts = [i for i in insts if i.market == market.upper()]
    return {
        "symbols": [
            {
                "symbol": i.symbol,
                "name": i.name,
                "market": i.market,
                "kind": i.kind,
                "halted": i.halted,
                "designation": i.designation,
            }
            for i in insts[:limit]
        ]
    }


@router.get("/quotes", **answer(QuoteList, *SIGNED_IN, 422))
async def quotes(
    ctx: User, request: Request, symbols: str = Query(..., max_length=2000)
) -> dict[str, Any]:
    hoga = get_hoga(request)
    out = []
    fetches = 0
    for s in parse_symbols(symbols, hoga.universe, MAX_QUOTES):
        # The hub's or simulator's quote; for a symbol nobody subscribes to, the broker's
        # (on demand, cached briefly and paced: marketdata/lookup.py), a few per request.
        tick = hoga.hub.last(s) or hoga.quotes.last(s)
        if tick is None and fetches < MAX_ON_DEMAND:
            fetches += 1
            tick = await hoga.lookup.quote(s)
        if tick is not None:
            out.append(quote_view(tick))
    return {"quotes": out}


@router.get("/orderbook", **answer(OrderBookView, *SIGNED_IN, 404, 422))
async def orderbook(
    ctx: User, request: Request, symbol: str = Query(..., max_length=12)
) -> dict[str, Any]:
    """The 10-level order book (contracts.md): the feed's latest, else the simulated market's
    or the broker's on demand; empty levels when nothing is known yet."""
    hoga = get_hoga(request)
    sym = symbol.strip().upper()
    if not krx.is_valid_symbol(sym) or sym not in hoga.universe:
        raise NotFound(f"알 수 없는 종목입니다: {sym} (unknown symbol)", "market.unknown_symbol")
    book = await hoga.lookup.orderbook(sym)
    tick = await hoga.lookup.quote(sym)
    last = tick.price if tick is not None else None
    if book is None:
        book = OrderBook(sym, hoga.clock.time(), (), (), 0, 0)
    return orderbook_view(book, last)


@router.get("/rules", **answer(TradingRules, *SIGNED_IN, 409, 422))
async def rules(
    ctx: User,
    request: Request,
    symbol: str = Query(..., max_length=12),
    price: int | None = Query(None, ge=1, le=MAX_ID),
) -> dict[str, Any]:
    """Tick size, the day's limit band and the neighbouring valid prices (for order tickets)."""
    hoga = get_hoga(request)
    (sym,) = parse_symbols(symbol, hoga.universe, 1)
    await hoga.lookup.prime(sym)
    inst = hoga.lookup.instrument(sym)
    assert inst is not None
    if inst.base_price <= 0:
        raise Conflict(
            f"{sym} 종목의 오늘 기준가를 아직 받지 못했습니다. 시세를 구독하면 곧 표시됩니다 "
            "(no live quote for this symbol yet: subscribe to it first)",
            "market.no_quote",
        )
    lower, upper = krx.price_limits(inst.base_price, inst.kind)
    last = hoga.lookup.last(sym)
    p = price or (last.price if last is not None else inst.base_price)
    on_grid = krx.round_to_tick(p, inst.kind)
    return {
        "symbol": sym,
        "name": inst.name,
        "market": inst.market,
        "kind": inst.kind,
        "base_price": inst.base_price,
        "lower": lower,
        "upper": upper,
        "price": p,
        "valid": krx.is_valid_price(p, inst.base_price, inst.kind),
        "tick_size": krx.tick_size(on_grid, inst.kind),
        "price_up": min(upper, krx.step_price(on_grid, 1, inst.kind)),
        "price_down": max(
            lower, krx.step_price(on_grid, -1, inst.kind) if on_grid == p else on_grid
        ),
        "halted": inst.halted,
        "designation": inst.designation,
        "session_phase": krx.session_phase(hoga.clock.now()),
        "market_open": hoga.market_open(),
    }


def _parse_time(value: str | None, field: str) -> float | None:
    if value is None:
        return None
    try:
        dt = datetime.fromisoformat(value)
    except ValueError:
        raise InvalidInput(
            f"{field}: ISO date or datetime expected", "market.bad_time", field=field
        ) from None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=KST)
    return dt.timestamp()


@router.get("/bars", **answer(BarList, *SIGNED_IN, 422))
async def bars(
    ctx: User,
    request: Request,
    symbol: str = Query(..., max_length=12),
    interval: str = Query("1m"),
    start: str | None = Query(None, max_length=40),
    end: str | None = Query(None, max_length=40),
    limit: int = Query(1000, ge=1, le=MAX_BARS),
) -> dict[str, Any]:
    hoga = get_hoga(request)
    (sym,) = parse_symbols(symbol, hoga.universe, 1)
    if interval not in INTERVALS:
        raise InvalidInput(
            f"interval must be one of {', '.join(INTERVALS)}",
            "market.bad_interval",
            field="interval",
        )
    step = INTERVALS[interval]
    now = hoga.clock.time()
    t_end = _parse_time(end, "end") or now + 60
    t_start = _parse_time(start, "start")
    if t_start is None:
        t_start = t_end - min(step * limit, 30 * 86400)
    if t_start >= t_end:
        raise InvalidInput("start must be before end", "market.bad_range", field="start")
    if (t_end - t_start) / 60 > 31 * 24 * 60:
        raise InvalidInput(
            "range too long: at most 31 days of minute bars", "market.range_too_long", field="start"
        )
    minute_bars = await hoga.queries.minute_bars(sym, t_start, t_end)
    if not minute_bars:
        # A fresh server (or a symbol nobody watched): the broker's chart history.
        if step >= 86400:
            daily = await hoga.lookup.history(sym, 86400, t_start, t_end)
            return {
                "symbol": sym,
                "interval": interval,
                "bars": [bar_view(b) for b in daily[-limit:]],
            }
        minute_bars = await hoga.lookup.history(sym, 60, t_start, t_end)
    out = aggregate(minute_bars, step) if step != 60 else minute_bars
    return {"symbol": sym, "interval": interval, "bars": [bar_view(b) for b in out[-limit:]]}
