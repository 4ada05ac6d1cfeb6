"""How the fake writes answers and values, the way Kiwoom does (kiwoom.md A2): strings everywhere, prices
signed against the base price, amounts zero-padded, balance codes ``A``-prefixed.

Written independently of the adapter's parser on purpose: the adapter is tested against these.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from starlette.responses import Response

from hoga.domain.clock import KST


def padded(value: int, width: int = 12) -> str:
    """``17598258`` -> ``"000017598258"``; negatives keep their sign in front."""
    if value < 0:
        return "-" + str(-value).zfill(width)
    return str(value).zfill(width)


def signed(price: int, base: int, width: int = 0) -> str:
    """A price with its direction against ``base``: ``+71000`` above, ``-69000`` below, bare
    when unchanged (optionally zero-padded after the sign)."""
    digits = str(abs(price)).zfill(width) if width else str(abs(price))
    if price > base:
        return "+" + digits
    if price < base:
        return "-" + digits
    return digits


def change(value: int) -> str:
    """A signed difference: ``+500``, ``-1200``, ``0``."""
    return f"+{value}" if value > 0 else str(value)


def rate(part: int, whole: int) -> str:
    """A signed percentage with two decimals: ``"+1.23"``, ``"-0.50"``."""
    if not whole:
        return "0.00"
    r = part * 10000 // whole if part >= 0 else -((-part) * 10000 // whole)
    sign = "+" if r > 0 else "-" if r < 0 else ""
    return f"{sign}{abs(r) // 100}.{abs(r) % 100:02d}"


def hms(ts: float) -> str:
    return datetime.fromtimestamp(ts, KST).strftime("%H%M%S")


def ymdhms(ts: float) -> str:
    return datetime.fromtimestamp(ts, KST).strftime("%Y%m%d%H%M%S")


def balance_code(symbol: str) -> str:
    """Balance and execution-notice codes carry an ``A`` prefix."""
    return f"A{symbol}"


def reply(
    body: dict[str, Any],
    api_id: str,
    *,
    status: int = 200,
    cont: str = "N",
    next_key: str = "",
) -> Response:
    """A Kiwoom answer: JSON with the ``api-id`` and continuation headers."""
    return Response(
        json.dumps(body, ensure_ascii=False),
        status_code=status,
        media_type="application/json;charset=UTF-8",
        headers={"api-id": api_id, "cont-yn": cont, "next-key": next_key},
    )
