"""Kiwoom on-demand market data and the stock list, over one app key's REST client.

* ``KiwoomListSource`` (an ``InstrumentSource``): ``ka10099`` 종목정보 리스트,
  ``POST /api/dostk/stkinfo`` with ``mrkt_tp`` 0 KOSPI, 10 KOSDAQ, 50 KONEX, 8 ETF, 60 ETN,
  paged with ``cont-yn``/``next-key``. Each ``list`` item carries ``code``, ``name``,
  ``listCount``, ``auditInfo`` (정상 / 투자주의 / 투자경고 / 투자위험 / 관리종목 / 정리매매...),
  ``regDay``, ``lastPrice``, ``state`` (거래정지 when halted), ``marketCode``, ``orderWarning``
  and ``nxtEnable`` - all strings.
* ``KiwoomMarketData`` (a ``MarketDataSource``): ``ka10001`` 주식기본정보 for a quote,
  ``ka10004`` 주식호가 (``POST /api/dostk/mrkcond``) for the 10-level book (kiwoom.md:
  ``sel_fpr_bid``/``sel_fpr_req`` best ask, ``buy_fpr_bid``/``buy_fpr_req`` best bid,
  ``sel_{n}th_pre_bid``/``_req`` and ``buy_{n}th_pre_bid``/``_req`` for levels 2-10,
  ``tot_sel_req``/``tot_buy_req``), and chart history from ``ka10081`` (daily,
  ``stk_dt_pole_chart_qry``: ``dt``, ``open_pric``, ``high_pric``, ``low_pric``, ``cur_prc``,
  ``trde_qty``) and ``ka10080`` (minute, ``stk_min_pole_chart_qry`` with ``cntr_tm``
  ``YYYYMMDDHHMMSS``) under ``POST /api/dostk/chart``, newest first, read page by page back
  to the start asked for.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Final

from hoga.brokers.kiwoom.client import STOCK_INFO_PATH, KiwoomClient
from hoga.brokers.kiwoom.wire import WireError, to_code, to_int, to_price, to_qty
from hoga.domain.clock import KST, Clock
from hoga.domain.market import Bar, Listing, OrderBook, Tick

MARKET_COND_PATH: Final = "/api/dostk/mrkcond"
CHART_PATH: Final = "/api/dostk/chart"
MAX_CHART_PAGES: Final = 20
#: mrkt_tp -> (market, kind)
MARKETS: Final = {
    "0": ("KOSPI", "stock"),
    "10": ("KOSDAQ", "stock"),
    "50": ("KONEX", "stock"),
    "8": ("KOSPI", "etf"),
    "60": ("KOSPI", "etn"),
}
_AUDIT: Final = (
    ("정리매매", "liquidation"),
    ("관리", "admin"),
    ("투자위험", "risk"),
    ("투자경고", "warning"),
    ("투자주의", "caution"),
)
_GROUPS: Final = {"stock": "ST", "etf": "EF", "etn": "EN"}


def listing_from(row: dict[str, Any], mrkt_tp: str) -> Listing | None:
    """One ``ka10099`` item as a Listing (None when the code is unusable)."""
    try:
        symbol = to_code(row.get("code"))
    except WireError:
        return None
    market, kind = MARKETS.get(str(row.get("marketCode") or mrkt_tp), MARKETS[mrkt_tp])
    if mrkt_tp in ("8", "60"):
        kind = MARKETS[mrkt_tp][1]
    audit = f"{row.get('auditInfo') or ''} {row.get('state') or ''}"
    designation = next((d for word, d in _AUDIT if word in audit), "")
    try:
        shares = to_int(row.get("listCount"))
        price = to_int(row.get("lastPrice"))
    except WireError:
        shares, price = 0, 0
    return Listing(
        symbol=symbol,
        name=str(row.get("name") or "").strip(),
        market=market,
        kind=kind,
        group=_GROUPS[kind],
        base_price=max(price, 0),
        listed_shares=max(shares, 0),
        nxt=str(row.get("nxtEnable") or "").upper() == "Y",
        halted="거래정지" in str(row.get("state") or ""),
        admin_issue=designation == "admin",
        warning=designation if designation in ("caution", "warning", "risk") else "",
        liquidation=designation == "liquidation",
        listed_on=str(row.get("regDay") or "")[:8],
    )


class KiwoomListSource:
    """See the module docstring."""

    name = "kiwoom"

    def __init__(self, client: KiwoomClient, markets: tuple[str, ...] = tuple(MARKETS)) -> None:
        self.client = client
        self.markets = markets

    async def listings(self) -> list[Listing]:
        out: list[Listing] = []
        for tp in self.markets:
            rows, _ = await self.client.pages(
                "ka10099", STOCK_INFO_PATH, {"mrkt_tp": tp}, "list", max_pages=200
            )
            out += [x for x in (listing_from(r, tp) for r in rows) if x is not None]
        return out


class KiwoomMarketData:
    """See the module docstring."""

    def __init__(self, client: KiwoomClient, clock: Clock) -> None:
        self.client = client
        self._clock = clock

    async def quote(self, symbol: str) -> Tick | None:
        body = (await self.client.call("ka10001", STOCK_INFO_PATH, {"stk_cd": symbol})).body
        price = to_price(body.get("cur_prc"))
        if price <= 0:
            return None
        base = to_price(body.get("base_pric")) or price - to_int(body.get("pred_pre"))
        return Tick(
            symbol=symbol,
            price=price,
            volume=0,
            ts=self._clock.time(),
            cum_volume=to_qty(body.get("trde_qty")),
            base_price=base,
        )

    async def orderbook(self, symbol: str) -> OrderBook | None:
        body = (await self.client.call("ka10004", MARKET_COND_PATH, {"stk_cd": symbol})).body
        asks = [(to_price(body.get("sel_fpr_bid")), to_qty(body.get("sel_fpr_req")))]
        bids = [(to_price(body.get("buy_fpr_bid")), to_qty(body.get("buy_fpr_req")))]
        for n in range(2, 11):
            asks.append(
                (to_price(body.get(f"sel_{n}th_pre_bid")), to_qty(body.get(f"sel_{n}th_pre_req")))
            )
            bids.append(
                (to_price(body.get(f"buy_{n}th_pre_bid")), to_qty(body.get(f"buy_{n}th_pre_req")))
            )
        return OrderBook(
            symbol=symbol,
            ts=self._clock.time(),
            asks=tuple((p, q) for p, q in asks if p > 0),
            bids=tuple((p, q) for p, q in bids if p > 0),
            total_ask_qty=to_qty(body.get("tot_sel_req")),
            total_bid_qty=to_qty(body.get("tot_buy_req")),
        )

    async def bars(self, symbol: str, interval: int, start: float, end: float) -> list[Bar]:
        daily = interval >= 86400
        if daily:
            api_id, key = "ka10081", "stk_dt_pole_chart_qry"
            last_day = datetime.fromtimestamp(end - 1, KST).strftime("%Y%m%d")
            body = {"stk_cd": symbol, "base_dt": last_day, "upd_stkpc_tp": "1"}
        else:
            api_id, key = "ka10080", "stk_min_pole_chart_qry"
            body = {"stk_cd": symbol, "tic_scope": "1", "upd_stkpc_tp": "1"}
        out: dict[float, Bar] = {}
        cont_yn, next_key = "", ""
        for _ in range(MAX_CHART_PAGES):
            reply = await self.client.call(
                api_id, CHART_PATH, body, cont_yn=cont_yn, next_key=next_key
            )
            rows = reply.body.get(key) or []
            oldest = None
            for row in rows if isinstance(rows, list) else []:
                t0 = _chart_time(row, daily)
                if t0 is None:
                    continue
                oldest = t0 if oldest is None else min(oldest, t0)
                try:
                    o, h, low, c = (
                        to_price(row.get(n))
                        for n in ("open_pric", "high_pric", "low_pric", "cur_prc")
                    )
                    vol = to_qty(row.get("trde_qty"))
                except WireError:
                    continue
                if start <= t0 < end and min(o, h, low, c) > 0:
                    out[t0] = Bar(symbol, t0, 86400 if daily else 60, o, h, low, c, vol)
            if oldest is None or oldest < start or reply.cont_yn != "Y" or not reply.next_key:
                break
            cont_yn, next_key = "Y", reply.next_key
        return [out[k] for k in sorted(out)]


def _chart_time(row: dict[str, Any], daily: bool) -> float | None:
    text = str(row.get("dt" if daily else "cntr_tm") or "")
    try:
        if daily:
            return datetime.strptime(text[:8], "%Y%m%d").replace(tzinfo=KST).timestamp()
        return datetime.strptime(text[:14], "%Y%m%d%H%M%S").replace(tzinfo=KST).timestamp()
    except ValueError:
        return None
