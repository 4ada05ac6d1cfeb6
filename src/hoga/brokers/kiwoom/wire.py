"""Kiwoom's wire formats: how values look on the wire and how to read them (pure, no I/O).

Kiwoom sends every number as a string (kiwoom.md A2): prices are often prefixed with ``+``/``-``
(the direction against the previous close, not a negative price), amounts are zero-padded
(``"000000017598258"``), stock codes in balances carry an ``A`` prefix (``"A005930"``) and
realtime items may carry an exchange suffix (``"005930_NX"``). Errors put the detailed code
inside ``return_msg`` (``...[8005:Token이 유효하지 않습니다]``, ``[2000](855056:...)``) or
directly in ``return_code``; ``broker_code`` finds it either way.
"""

from __future__ import annotations

import re
from datetime import date, datetime, time
from typing import Any, Final

from hoga.domain import krx
from hoga.domain.clock import KST
from hoga.domain.orders import OrderType, TimeInForce

_NUMBER: Final = re.compile(r"[+-]?\d+")
_DECIMAL: Final = re.compile(r"[+-]?\d+(\.\d+)?")
#: ``[8005:Token이 유효하지 않습니다]`` or ``[1700:허용된 요청 개수를 초과하였습니다]``
_BRACKET_CODE: Final = re.compile(r"\[(\d{3,8})\s*:")
#: ``[2000](855056:매수증거금이 부족합니다...)`` - the business code in parentheses
_PAREN_CODE: Final = re.compile(r"\((\d{3,8})\s*:")
#: WebSocket LOGIN failures may say ``CODE=8005``
_EQ_CODE: Final = re.compile(r"CODE\s*=\s*(\d{3,8})", re.IGNORECASE)
_EXCHANGE_SUFFIX: Final = re.compile(r"_(NX|AL)$", re.IGNORECASE)


class WireError(ValueError):
    """A value on the wire does not have the shape the protocol promises."""


def to_int(value: Any, default: int | None = 0) -> int:
    """A Kiwoom number string as an int: ``"+000070000"`` -> 70000, ``"-20800"`` -> -20800.

    Blank values (``""``, ``None``, spaces) give ``default``; with ``default=None`` they are an
    error. Thousands separators are tolerated; anything else raises WireError.
    """
    if isinstance(value, bool):
        raise WireError(f"not a number: {value!r}")
    if isinstance(value, int):
        return value
    if value is None:
        if default is None:
            raise WireError("missing number")
        return default
    if not isinstance(value, str):
        raise WireError(f"not a number: {type(value).__name__}")
    text = value.strip().replace(",", "")
    if not text:
        if default is None:
            raise WireError("missing number")
        return default
    if not _NUMBER.fullmatch(text):
        raise WireError(f"not a number: {value[:32]!r}")
    return int(text)


def to_price(value: Any, default: int | None = 0) -> int:
    """A price without its direction sign: ``"-20800"`` -> 20800 (a price is never negative)."""
    return abs(to_int(value, default))


def to_qty(value: Any, default: int | None = 0) -> int:
    """A share count; volumes on trade frames are signed by aggressor side, so take abs."""
    return abs(to_int(value, default))


def to_rate(value: Any) -> float:
    """A percentage string such as ``"-1.23"`` (display only; never used for money)."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    text = str(value or "").strip().replace(",", "")
    if not text:
        return 0.0
    if not _DECIMAL.fullmatch(text):
        raise WireError(f"not a rate: {text[:32]!r}")
    return float(text)


def to_code(value: Any) -> str:
    """A stock code as hoga spells it: ``"A005930"``, ``" 005930_NX"`` -> ``"005930"``."""
    if not isinstance(value, str):
        raise WireError(f"not a stock code: {value!r}")
    code = krx.normalize_symbol(_EXCHANGE_SUFFIX.sub("", value.strip()))
    if not krx.is_valid_symbol(code):
        raise WireError(f"not a stock code: {value[:16]!r}")
    return code


def to_text(value: Any) -> str:
    return value.strip() if isinstance(value, str) else ""


def fmt_qty(qty: int) -> str:
    """How hoga writes a quantity or price into a request body (plain digits)."""
    if qty < 0:
        raise ValueError("quantities and prices are never negative")
    return str(qty)


def return_code(body: dict[str, Any]) -> int | None:
    """``return_code`` as an int (it arrives as a number or a string), None if absent/garbled."""
    raw = body.get("return_code")
    if isinstance(raw, bool) or raw is None:
        return None
    try:
        return int(str(raw).strip())
    except ValueError:
        return None


def broker_code(rc: int | None, message: str) -> str | None:
    """The most specific code in an error: the business code in ``(NNNNNN:``, else the
    ``[NNNN:`` or ``CODE=NNNN`` detail, else ``return_code`` itself (None when 0/absent)."""
    for pattern in (_PAREN_CODE, _BRACKET_CODE, _EQ_CODE):
        m = pattern.search(message or "")
        if m:
            return m.group(1)
    if rc is None or rc == 0:
        return None
    return str(rc)


def parse_expires(value: Any) -> float:
    """``expires_dt`` (``YYYYMMDDHHMMSS``, KST) as POSIX seconds."""
    text = to_text(value)
    try:
        dt = datetime.strptime(text, "%Y%m%d%H%M%S").replace(tzinfo=KST)
    except ValueError:
        raise WireError(f"bad expires_dt: {text[:20]!r}") from None
    return dt.timestamp()


def parse_hms(value: Any, day: date) -> float | None:
    """``HHMMSS`` on ``day`` (KST) as POSIX seconds; None when blank or malformed."""
    text = to_text(value)
    if len(text) < 6 or not text[:6].isdigit():
        return None
    try:
        t = time(int(text[0:2]), int(text[2:4]), int(text[4:6]))
    except ValueError:
        return None
    return datetime.combine(day, t, KST).timestamp()


def day_key(day: date) -> str:
    return day.strftime("%Y%m%d")


def external_order_id(day: date | str, ord_no: str) -> str:
    """hoga's id for a Kiwoom order: order numbers restart daily, so the day is part of it."""
    d = day if isinstance(day, str) else day_key(day)
    return f"{d}-{ord_no}"


def split_order_id(order_id: str, today: date) -> tuple[str, str]:
    """(``YYYYMMDD``, order number) from hoga's id; a bare number means today."""
    if "-" in order_id:
        d, _, no = order_id.partition("-")
        if len(d) == 8 and d.isdigit() and no:
            return d, no
    return day_key(today), order_id


def blank_order_no(value: Any) -> bool:
    """Kiwoom writes "no original order" as empty or all zeros."""
    text = to_text(value)
    return not text or set(text) == {"0"}


# --- order types (kiwoom.md A4, ``trde_tp``) ---------------------------------------------

_OT = OrderType
_TF = TimeInForce
TRDE_TP: Final[dict[tuple[OrderType, TimeInForce], str]] = {
    (_OT.LIMIT, _TF.DAY): "0",
    (_OT.MARKET, _TF.DAY): "3",
    (_OT.CONDITIONAL, _TF.DAY): "5",
    (_OT.BEST, _TF.DAY): "6",
    (_OT.PRIORITY, _TF.DAY): "7",
    (_OT.LIMIT, _TF.IOC): "10",
    (_OT.MARKET, _TF.IOC): "13",
    (_OT.BEST, _TF.IOC): "16",
    (_OT.LIMIT, _TF.FOK): "20",
    (_OT.MARKET, _TF.FOK): "23",
    (_OT.BEST, _TF.FOK): "26",
    (_OT.PRE_CLOSE, _TF.DAY): "61",
    (_OT.SINGLE_PRICE, _TF.DAY): "62",
    (_OT.AFTER_CLOSE, _TF.DAY): "81",
}
KIND_OF_TRDE_TP: Final = {code: kind for kind, code in TRDE_TP.items()}


def trde_tp(kind: OrderType, tif: TimeInForce = TimeInForce.DAY) -> str | None:
    """Kiwoom's ``trde_tp`` for an order type and time in force; None when it has none."""
    return TRDE_TP.get((kind, tif))


#: The type text Kiwoom's notices and lists carry (FID 906, ka10075 ``trde_tp``).
TRADE_TYPE_TEXT: Final[dict[OrderType, str]] = {
    _OT.LIMIT: "보통",
    _OT.MARKET: "시장가",
    _OT.CONDITIONAL: "조건부지정가",
    _OT.BEST: "최유리지정가",
    _OT.PRIORITY: "최우선지정가",
    _OT.PRE_CLOSE: "장시작전시간외",
    _OT.SINGLE_PRICE: "시간외단일가",
    _OT.AFTER_CLOSE: "장마감후시간외",
}


def type_of_text(text: str) -> OrderType:
    """The order type a trade-type text names (IOC/FOK variants give their base type)."""
    for kind, word in sorted(TRADE_TYPE_TEXT.items(), key=lambda kv: -len(kv[1])):
        if kind != _OT.LIMIT and word in text:
            return kind
    if "최유리" in text:
        return _OT.BEST
    if "최우선" in text:
        return _OT.PRIORITY
    return _OT.LIMIT
