"""Trade history and daily profit for the dashboard.

* ``GET /api/history/orders`` and ``/api/history/fills``: pages under filters (trading-day range
  ``from``/``to``, ``symbol``, ``strategy_id``, orders also ``state``), newest first; with
  ``Accept: text/csv``, or at ``/api/history/orders.csv`` / ``fills.csv``, every matching row as
  CSV (UTF-8 with a BOM so Excel reads the Korean headers; headers in the caller's language).
* ``GET /api/portfolio/daily``: per-day realised/unrealised P&L, commission, tax and equity.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import date, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response

from hoga.api.bounds import FIRST_DAY, LAST_DAY, MAX_ID
from hoga.api.deps import User, get_hoga
from hoga.api.fills import fill_view
from hoga.api.history_csv import fills_csv, orders_csv
from hoga.api.language import preferred_language
from hoga.api.schemas import SIGNED_IN, answer, media
from hoga.api.schemas.history import DailyPnl, FillPage, OrderPage
from hoga.domain import krx
from hoga.domain.errors import InvalidInput
from hoga.domain.orders import OPEN, OrderStatus
from hoga.execution.history import MAX_DAYS, HistoryFilter, HistoryService
from hoga.execution.views import order_view

router = APIRouter(tags=["history"])

MAX_PAGE_SIZE = 500
# A CSV export holds at most this many rows (a year of a busy account); more is refused.
MAX_EXPORT = 50_000
_CSV = "text/csv; charset=utf-8"


def _service(request: Request) -> HistoryService:
    return get_hoga(request).history


def _filter(
    first: Annotated[date | None, Query(alias="from")] = None,
    last: Annotated[date | None, Query(alias="to")] = None,
    symbol: Annotated[str | None, Query(max_length=12)] = None,
    strategy_id: Annotated[int | None, Query(ge=1, le=MAX_ID)] = None,
    state: Annotated[str | None, Query(max_length=200)] = None,
) -> HistoryFilter:
    if first is not None and last is not None and first > last:
        raise InvalidInput(
            "시작일이 종료일보다 늦습니다 (from is after to)", "history.bad_range", field="from"
        )
    code = (symbol or "").strip().upper() or None
    if code is not None and not krx.is_valid_symbol(code):
        raise InvalidInput(
            "종목코드 형식이 올바르지 않습니다 (malformed symbol)",
            "history.bad_symbol",
            field="symbol",
        )
    statuses: list[str] = []
    for part in (p.strip() for p in (state or "").split(",") if p.strip()):
        if part.lower() == "open":
            statuses += [s.value for s in OPEN]
        elif part.upper() in OrderStatus.__members__:
            statuses.append(part.upper())
        else:
            raise InvalidInput(
                "알 수 없는 주문 상태입니다 (unknown order state)",
                "history.bad_state",
                field="state",
            )
    return HistoryFilter(first, last, code, strategy_id, tuple(statuses))


Filter = Annotated[HistoryFilter, Depends(_filter)]
Page = Annotated[int, Query(ge=1, le=100_000)]
PageSize = Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE)]


def _wants_csv(request: Request) -> bool:
    return "text/csv" in request.headers.get("accept", "")


def _csv_response(text: str, name: str) -> Response:
    return Response(
        ("\ufeff" + text).encode("utf-8"),
        media_type=_CSV,
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )


async def _all_orders(request: Request, uid: int, f: HistoryFilter) -> Response:
    orders, total = await _service(request).orders(uid, f, 1, MAX_EXPORT)
    _refuse_big(total)
    lang = preferred_language(request.headers.get("accept-language"))
    return _csv_response(orders_csv(orders, get_hoga(request).universe, lang), "orders.csv")


async def _all_fills(request: Request, uid: int, f: HistoryFilter) -> Response:
    fills, total = await _service(request).fills(uid, f, 1, MAX_EXPORT)
    _refuse_big(total)
    lang = preferred_language(request.headers.get("accept-language"))
    return _csv_response(fills_csv(fills, get_hoga(request).universe, lang), "fills.csv")


def _page(items: list[dict[str, Any]], total: int, page: int, page_size: int) -> dict[str, Any]:
    """One page of a history list, with what the client needs to ask for the next."""
    return {"items": items, "total": total, "page": page, "page_size": page_size}


def _refuse_big(total: int) -> None:
    if total > MAX_EXPORT:
        raise InvalidInput(
            f"내보낼 행이 너무 많습니다. 기간을 줄이세요 (more than {MAX_EXPORT} rows; narrow the dates)",
            "history.too_many_rows",
        )


def _csv_route(
    name: str, row: str, export: Callable[[Request, int, HistoryFilter], Awaitable[Response]]
) -> None:
    """Serve ``/api/history/<name>.csv``: every matching row as CSV, the same export as the
    list endpoint gives for ``Accept: text/csv``."""

    async def download(ctx: User, request: Request, f: Filter) -> Response:
        return await export(request, ctx.user_id, f)

    router.add_api_route(
        f"/api/history/{name}.csv",
        download,
        methods=["GET"],
        name=f"history_{name}_csv",
        response_class=Response,
        responses=media(_CSV, f"every matching {row}, as CSV", *SIGNED_IN, 422),
    )


@router.get("/api/history/orders", **answer(OrderPage, *SIGNED_IN, 422, also=_CSV))
async def history_orders(
    ctx: User, request: Request, f: Filter, page: Page = 1, page_size: PageSize = 50
) -> dict[str, Any] | Response:
    if _wants_csv(request):
        return await _all_orders(request, ctx.user_id, f)
    orders, total = await _service(request).orders(ctx.user_id, f, page, page_size)
    return _page([order_view(o) for o in orders], total, page, page_size)


_csv_route("orders", "order", _all_orders)


@router.get("/api/history/fills", **answer(FillPage, *SIGNED_IN, 422, also=_CSV))
async def history_fills(
    ctx: User, request: Request, f: Filter, page: Page = 1, page_size: PageSize = 50
) -> dict[str, Any] | Response:
    if f.statuses:
        raise InvalidInput(
            "체결 내역은 상태로 거를 수 없습니다 (fills have no state)",
            "history.bad_state",
            field="state",
        )
    if _wants_csv(request):
        return await _all_fills(request, ctx.user_id, f)
    fills, total = await _service(request).fills(ctx.user_id, f, page, page_size)
    return _page([fill_view(x) for x in fills], total, page, page_size)


_csv_route("fills", "fill", _all_fills)


@router.get("/api/portfolio/daily", **answer(DailyPnl, *SIGNED_IN, 422))
async def portfolio_daily(
    ctx: User,
    request: Request,
    first: Annotated[date | None, Query(alias="from")] = None,
    last: Annotated[date | None, Query(alias="to")] = None,
) -> dict[str, Any]:
    hoga = get_hoga(request)
    for day, name in ((first, "from"), (last, "to")):
        if day is not None and not FIRST_DAY <= day <= LAST_DAY:
            raise InvalidInput(
                f"날짜는 {FIRST_DAY}부터 {LAST_DAY}까지입니다 "
                f"(dates run from {FIRST_DAY} to {LAST_DAY})",
                "history.bad_range",
                field=name,
            )
    last = last or krx.trading_date(hoga.clock.now())
    first = first or last - timedelta(days=90)
    if first > last:
        raise InvalidInput(
            "시작일이 종료일보다 늦습니다 (from is after to)", "history.bad_range", field="from"
        )
    if (last - first).days > MAX_DAYS:
        raise InvalidInput(
            f"기간은 {MAX_DAYS}일까지입니다 (at most {MAX_DAYS} days)",
            "history.bad_range",
            field="from",
        )
    days = await _service(request).daily(ctx.user_id, first, last)
    return {
        "from": first.isoformat(),
        "to": last.isoformat(),
        "days": [
            {
                "date": d.day.isoformat(),
                "realized": d.realized,
                "unrealized": d.unrealized,
                "commission": d.commission,
                "tax": d.tax,
                "equity": d.equity,
                "trades": d.trades,
                "marked": d.marked,
            }
            for d in days
        ],
        "totals": {
            "realized": sum(d.realized for d in days),
            "commission": sum(d.commission for d in days),
            "tax": sum(d.tax for d in days),
        },
    }
