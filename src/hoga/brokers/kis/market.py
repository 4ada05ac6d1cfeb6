"""KIS on-demand market data (a ``MarketDataSource``): quotes, order books and chart bars
over REST for symbols the WebSocket feed does not carry.

Calls go through an app key's ``KisClient`` (``HOGA_KIS_FEED_ACCOUNTS``' keys first, else any
attached key), so its pacer keeps them inside the key's budget together with its orders.
``inquire-price`` (FHKST01010100) gives the price, the day's base price (``stck_sdpr``) and
volume; ``inquire-asking-price-exp-ccn`` (FHKST01010200) the 10-level book (``output1``:
``askp1..10``, ``bidp1..10``, ``askp_rsqn1..10``, ``bidp_rsqn1..10``, totals);
``inquire-daily-itemchartprice`` (FHKST03010100) daily bars and
``inquire-time-itemchartprice`` (FHKST03010200) today's minute bars (30 per call, backwards).
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime, timedelta
from typing import Any, Final

from hoga.brokers.kis import wire
from hoga.brokers.kis.broker import KisBroker
from hoga.brokers.kis.client import KisKey
from hoga.domain.clock import KST, Clock
from hoga.domain.errors import ServiceUnavailable
from hoga.domain.market import Bar, OrderBook, Tick

_Q: Final = "/uapi/domestic-stock/v1/quotations"
ASKING_PRICE: Final = f"{_Q}/inquire-asking-price-exp-ccn"
DAILY_CHART: Final = f"{_Q}/inquire-daily-itemchartprice"
MINUTE_CHART: Final = f"{_Q}/inquire-time-itemchartprice"


class KisMarketData:
    """See the module docstring."""

    def __init__(self, broker: KisBroker, clock: Clock, account_ids: Collection[int] = ()) -> None:
        self.broker = broker
        self._clock = clock
        self.account_ids = set(account_ids)

    def _key(self) -> KisKey:
        keys = self.broker.keys
        preferred = [k for k in keys if any(a in self.account_ids for a in k.accounts)]
        pick = preferred or keys
        if not pick:
            raise ServiceUnavailable(
                "시세를 조회할 KIS 계좌가 없습니다 (no KIS account attached for quotes)",
                "market.no_source",
            )
        return pick[0]

    async def _get(self, path: str, tr: str, params: dict[str, str]) -> dict[str, Any]:
        reply = await self._key().client.request("GET", path, tr, params=params)
        return reply.data

    async def quote(self, symbol: str) -> Tick | None:
        data = await self._get(
            wire.INQUIRE_PRICE,
            "FHKST01010100",
            {"FID_COND_MRKT_DIV_CODE": "J", "FID_INPUT_ISCD": symbol},
        )
        out = data.get("output") or {}
        price = wire.to_int(out.get("stck_prpr"))
        if price <= 0:
            return None
        base = wire.to_int(out.get("stck_sdpr")) or price - wire.to_int(out.get("prdy_vrss"))
        return Tick(
            symbol=symbol,
            price=price,
            volume=0,
            ts=self._clock.time(),
            cum_volume=wire.to_int(out.get("acml_vol")),
            base_price=base,
        )

    async def orderbook(self, symbol: str) -> OrderBook | None:
        data = await self._get(
            ASKING_PRICE,
            "FHKST01010200",
            {"FID_COND_MRKT_DIV_CODE": "J", "FID_INPUT_ISCD": symbol},
        )
        out = data.get("output1") or {}
        to_int = wire.to_int
        asks = [
            (to_int(out.get(f"askp{i}")), to_int(out.get(f"askp_rsqn{i}"))) for i in range(1, 11)
        ]
        bids = [
            (to_int(out.get(f"bidp{i}")), to_int(out.get(f"bidp_rsqn{i}"))) for i in range(1, 11)
        ]
        return OrderBook(
            symbol=symbol,
            ts=self._ts(str(out.get("aspr_acpt_hour") or "")),
            asks=tuple((p, q) for p, q in asks if p > 0),
            bids=tuple((p, q) for p, q in bids if p > 0),
            total_ask_qty=to_int(out.get("total_askp_rsqn")),
            total_bid_qty=to_int(out.get("total_bidp_rsqn")),
        )

    def _ts(self, hhmmss: str) -> float:
        try:
            return wire.kst_ts(self._clock.now().astimezone(KST).date(), hhmmss)
        except ValueError:
            return self._clock.time()

    async def bars(self, symbol: str, interval: int, start: float, end: float) -> list[Bar]:
        if interval >= 86400:
            return await self._daily(symbol, start, end)
        return await self._minutes(symbol, start, end)

    async def _daily(self, symbol: str, start: float, end: float) -> list[Bar]:
        d0 = datetime.fromtimestamp(start, KST).strftime("%Y%m%d")
        d1 = datetime.fromtimestamp(end, KST).strftime("%Y%m%d")
        data = await self._get(
            DAILY_CHART,
            "FHKST03010100",
            {
                "FID_COND_MRKT_DIV_CODE": "J",
                "FID_INPUT_ISCD": symbol,
                "FID_INPUT_DATE_1": d0,
                "FID_INPUT_DATE_2": d1,
                "FID_PERIOD_DIV_CODE": "D",
                "FID_ORG_ADJ_PRC": "0",
            },
        )
        bars = []
        for row in data.get("output2") or []:
            day = str(row.get("stck_bsop_date") or "")
            if len(day) != 8 or not day.isdigit():
                continue
            t0 = datetime(int(day[:4]), int(day[4:6]), int(day[6:]), tzinfo=KST).timestamp()
            bar = _bar(symbol, t0, 86400, row, "stck_oprc", "stck_hgpr", "stck_lwpr", "stck_clpr")
            if bar is not None and start <= t0 < end:
                bars.append(bar)
        return sorted(bars, key=lambda b: b.start)

    async def _minutes(self, symbol: str, start: float, end: float) -> list[Bar]:
        """Today's minute bars, newest first from KIS (30 a call), walked back to ``start``."""
        now = self._clock.now().astimezone(KST)
        cursor = min(datetime.fromtimestamp(end, KST), now)
        if cursor.date() != now.date():
            return []
        out: dict[float, Bar] = {}
        for _ in range(14):  # 14 x 30 minutes covers a session
            data = await self._get(
                MINUTE_CHART,
                "FHKST03010200",
                {
                    "FID_ETC_CLS_CODE": "",
                    "FID_COND_MRKT_DIV_CODE": "J",
                    "FID_INPUT_ISCD": symbol,
                    "FID_INPUT_HOUR_1": cursor.strftime("%H%M%S"),
                    "FID_PW_DATA_INCU_YN": "N",
                },
            )
            rows = data.get("output2") or []
            oldest = None
            for row in rows:
                hms = str(row.get("stck_cntg_hour") or "")
                try:
                    t0 = wire.kst_ts(now.date(), hms)
                except ValueError:
                    continue
                bar = _bar(symbol, t0, 60, row, "stck_oprc", "stck_hgpr", "stck_lwpr", "stck_prpr")
                if bar is not None and start <= t0 < end:
                    out[t0] = bar
                oldest = t0 if oldest is None else min(oldest, t0)
            if not rows or oldest is None or oldest <= start:
                break
            cursor = datetime.fromtimestamp(oldest, KST) - timedelta(minutes=1)
        return [out[k] for k in sorted(out)]


def _bar(symbol: str, t0: float, interval: int, row: dict[str, Any], *names: str) -> Bar | None:
    o, h, low, c = (wire.to_int(row.get(n)) for n in names)
    if min(o, h, low, c) <= 0:
        return None
    return Bar(
        symbol, t0, interval, o, h, low, c, wire.to_int(row.get("cntg_vol") or row.get("acml_vol"))
    )
