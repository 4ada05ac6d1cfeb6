"""CSV renderings of order and fill history, headers and words in the caller's language.

Money and quantities stay plain integers (no separators) so a spreadsheet can sum them.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Sequence

from hoga.api.language import localize
from hoga.domain.orders import Order
from hoga.execution.history import FillRecord
from hoga.marketdata.universe import Universe

_ORDER_HEADERS = {
    "ko": ["주문번호", "거래일", "주문시각", "종목코드", "종목명", "구분", "유형", "수량", "가격",
           "상태", "체결수량", "평균체결가", "수수료", "세금", "전략", "사유"],
    "en": ["order", "trading day", "placed at", "symbol", "name", "side", "type", "quantity",
           "price", "state", "filled", "average fill price", "commission", "tax", "strategy",
           "reason"],
}  # fmt: skip
_FILL_HEADERS = {
    "ko": ["체결번호", "체결시각", "주문번호", "종목코드", "종목명", "구분", "수량", "가격",
           "금액", "수수료", "세금", "전략"],
    "en": ["fill", "time", "order", "symbol", "name", "side", "quantity", "price", "amount",
           "commission", "tax", "strategy"],
}  # fmt: skip
_SIDE = {"ko": {"buy": "매수", "sell": "매도"}, "en": {"buy": "buy", "sell": "sell"}}
_TYPE = {
    "ko": {
        "limit": "지정가",
        "market": "시장가",
        "conditional": "조건부지정가",
        "best": "최유리지정가",
        "priority": "최우선지정가",
        "pre_close": "장전 시간외",
        "after_close": "장후 시간외",
        "single_price": "시간외 단일가",
    },
    # English: the API's own type names (``_TYPE[lang].get`` falls back to them).
    "en": {"limit": "limit", "market": "market"},
}
_STATE_KO = {
    "QUEUED": "대기",
    "SUBMITTING": "전송 중",
    "ACCEPTED": "접수",
    "PARTIALLY_FILLED": "일부 체결",
    "FILLED": "체결",
    "CANCEL_PENDING": "취소 중",
    "CANCELLED": "취소",
    "REJECTED": "거부",
    "DENIED": "차단",
    "EXPIRED": "만료",
    "UNKNOWN": "확인 중",
}


def _name(universe: Universe, symbol: str, lang: str) -> str:
    inst = universe.get(symbol)
    if inst is None:
        return symbol
    english = getattr(inst, "name_en", None)
    return str(english) if lang == "en" and english else inst.name


def _write(headers: Sequence[str], rows: Iterable[Sequence[object]]) -> str:
    buf = io.StringIO()
    # Excel on Windows expects CRLF; a cell that starts with = + - @ is data, not a formula.
    out = csv.writer(buf, lineterminator="\r\n")
    out.writerow(headers)
    for row in rows:
        out.writerow([_safe(v) for v in row])
    return buf.getvalue()


def _safe(value: object) -> object:
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@"):
        return "'" + value
    return "" if value is None else value


def orders_csv(orders: Sequence[Order], universe: Universe, lang: str) -> str:
    lang = "en" if lang == "en" else "ko"
    return _write(
        _ORDER_HEADERS[lang],
        (
            [
                o.id,
                o.trading_day.isoformat(),
                o.created_at.isoformat(timespec="seconds"),
                o.symbol,
                _name(universe, o.symbol, lang),
                _SIDE[lang][o.side.value],
                _TYPE[lang].get(o.type.value, o.type.value),
                o.qty,
                o.price,
                _STATE_KO.get(o.status.value, o.status.value) if lang == "ko" else o.status.value,
                o.filled_qty,
                o.avg_fill_price,
                o.commission,
                o.tax,
                o.strategy_id,
                localize(o.reason or "", lang),
            ]
            for o in orders
        ),
    )


def fills_csv(fills: Sequence[FillRecord], universe: Universe, lang: str) -> str:
    lang = "en" if lang == "en" else "ko"
    return _write(
        _FILL_HEADERS[lang],
        (
            [
                f.id,
                f.ts.isoformat(timespec="seconds"),
                f.order_id,
                f.symbol,
                _name(universe, f.symbol, lang),
                _SIDE[lang].get(f.side, f.side),
                f.qty,
                f.price,
                f.qty * f.price,
                f.commission,
                f.tax,
                f.strategy_id,
            ]
            for f in fills
        ),
    )
