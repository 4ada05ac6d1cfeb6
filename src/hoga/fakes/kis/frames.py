"""What the KIS fake puts on the wire: REST answer envelopes (§6) and realtime data (§8).

Written independently of the adapter's parser on purpose: the fake is the other side of the
protocol, and sharing code would let one misreading pass both ways.
"""

from __future__ import annotations

import base64
import json
from datetime import datetime
from typing import Any

from cryptography.hazmat.primitives import padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from starlette.responses import JSONResponse

from hoga.domain import krx
from hoga.domain.clock import KST
from hoga.domain.market import Tick

# §8.6: 46 fields, in order.
TRADE_LAYOUT = (
    "MKSC_SHRN_ISCD", "STCK_CNTG_HOUR", "STCK_PRPR", "PRDY_VRSS_SIGN", "PRDY_VRSS", "PRDY_CTRT",
    "WGHN_AVRG_STCK_PRC", "STCK_OPRC", "STCK_HGPR", "STCK_LWPR", "ASKP1", "BIDP1", "CNTG_VOL",
    "ACML_VOL", "ACML_TR_PBMN", "SELN_CNTG_CSNU", "SHNU_CNTG_CSNU", "NTBY_CNTG_CSNU", "CTTR",
    "SELN_CNTG_SMTN", "SHNU_CNTG_SMTN", "CCLD_DVSN", "SHNU_RATE", "PRDY_VOL_VRSS_ACML_VOL_RATE",
    "OPRC_HOUR", "OPRC_VRSS_PRPR_SIGN", "OPRC_VRSS_PRPR", "HGPR_HOUR", "HGPR_VRSS_PRPR_SIGN",
    "HGPR_VRSS_PRPR", "LWPR_HOUR", "LWPR_VRSS_PRPR_SIGN", "LWPR_VRSS_PRPR", "BSOP_DATE",
    "NEW_MKOP_CLS_CODE", "TRHT_YN", "ASKP_RSQN1", "BIDP_RSQN1", "TOTAL_ASKP_RSQN",
    "TOTAL_BIDP_RSQN", "VOL_TNRT", "PRDY_SMNS_HOUR_ACML_VOL", "PRDY_SMNS_HOUR_ACML_VOL_RATE",
    "HOUR_CLS_CODE", "MRKT_TRTM_CLS_CODE", "VI_STND_PRC",
)  # fmt: skip

# §8.7: 59 fields.
_LEVELS = ("ASKP", "BIDP", "ASKP_RSQN", "BIDP_RSQN")
BOOK_LAYOUT = (
    "MKSC_SHRN_ISCD", "BSOP_HOUR", "HOUR_CLS_CODE",
    *(f"{name}{i}" for name in _LEVELS for i in range(1, 11)),
    "TOTAL_ASKP_RSQN", "TOTAL_BIDP_RSQN", "OVTM_TOTAL_ASKP_RSQN", "OVTM_TOTAL_BIDP_RSQN",
    "ANTC_CNPR", "ANTC_CNQN", "ANTC_VOL", "ANTC_CNTG_VRSS", "ANTC_CNTG_VRSS_SIGN",
    "ANTC_CNTG_PRDY_CTRT", "ACML_VOL", "TOTAL_ASKP_RSQN_ICDC", "TOTAL_BIDP_RSQN_ICDC",
    "OVTM_TOTAL_ASKP_ICDC", "OVTM_TOTAL_BIDP_ICDC", "STCK_DEAL_CLS_CODE",
)  # fmt: skip

# §8.8: the current 26-field execution-notice layout.
NOTICE_LAYOUT = (
    "CUST_ID", "ACNT_NO", "ODER_NO", "OODER_NO", "SELN_BYOV_CLS", "RCTF_CLS", "ODER_KIND",
    "ODER_COND", "STCK_SHRN_ISCD", "CNTG_QTY", "CNTG_UNPR", "STCK_CNTG_HOUR", "RFUS_YN",
    "CNTG_YN", "ACPT_YN", "BRNC_NO", "ODER_QTY", "ACNT_NAME", "ORD_COND_PRC", "ORD_EXG_GB",
    "POPUP_YN", "FILLER", "CRDT_CLS", "CRDT_LOAN_DATE", "CNTG_ISNM40", "ODER_PRC",
)  # fmt: skip

assert len(TRADE_LAYOUT) == 46 and len(BOOK_LAYOUT) == 59 and len(NOTICE_LAYOUT) == 26


def encrypt(key: str, iv: str, text: str) -> str:
    """AES-256-CBC, PKCS7, base64 - what KIS does to execution notices."""
    padder = padding.PKCS7(128).padder()
    data = padder.update(text.encode("utf-8")) + padder.finalize()
    enc = Cipher(algorithms.AES(key.encode()), modes.CBC(iv.encode())).encryptor()
    return base64.b64encode(enc.update(data) + enc.finalize()).decode()


def frame(
    tr_id: str,
    records: list[dict[str, str]],
    layout: tuple[str, ...],
    *,
    key_iv: tuple[str, str] | None = None,
) -> str:
    payload = "^".join("^".join(r.get(name, "") for name in layout) for r in records)
    if key_iv is not None:
        return f"1|{tr_id}|{len(records):03d}|{encrypt(key_iv[0], key_iv[1], payload)}"
    return f"0|{tr_id}|{len(records):03d}|{payload}"


def control(
    tr_id: str,
    tr_key: str,
    rt_cd: str,
    msg_cd: str,
    msg1: str,
    output: dict[str, str] | None = None,
) -> str:
    body: dict[str, Any] = {"rt_cd": rt_cd, "msg_cd": msg_cd, "msg1": msg1}
    if output:
        body["output"] = output
    return json.dumps(
        {"header": {"tr_id": tr_id, "tr_key": tr_key, "encrypt": "N"}, "body": body},
        ensure_ascii=False,
    )


def pingpong(now: datetime) -> str:
    return json.dumps({"header": {"tr_id": "PINGPONG", "datetime": now.strftime("%Y%m%d%H%M%S")}})


def _sign(price: int, base: int, lower: int, upper: int) -> str:
    if price >= upper:
        return "1"
    if price <= lower:
        return "4"
    return "2" if price > base else "5" if price < base else "3"


def trade_record(tick: Tick, kind: str, day_stats: dict[str, int]) -> dict[str, str]:
    """H0STCNT0 fields for one simulated trade; ``day_stats`` holds open/high/low/amount."""
    base = tick.base_price or tick.price
    lower, upper = krx.price_limits(base, kind)
    t = datetime.fromtimestamp(tick.ts, KST)
    diff = tick.price - base
    rate = f"{diff * 100 / base:.2f}" if base else "0.00"
    return {
        "MKSC_SHRN_ISCD": tick.symbol,
        "STCK_CNTG_HOUR": t.strftime("%H%M%S"),
        "STCK_PRPR": str(tick.price),
        "PRDY_VRSS_SIGN": _sign(tick.price, base, lower, upper),
        "PRDY_VRSS": str(diff),
        "PRDY_CTRT": rate,
        "WGHN_AVRG_STCK_PRC": str(day_stats["amount"] // max(tick.cum_volume, 1)),
        "STCK_OPRC": str(day_stats["open"]),
        "STCK_HGPR": str(day_stats["high"]),
        "STCK_LWPR": str(day_stats["low"]),
        "ASKP1": str(tick.ask),
        "BIDP1": str(tick.bid),
        "CNTG_VOL": str(tick.volume),
        "ACML_VOL": str(tick.cum_volume),
        "ACML_TR_PBMN": str(day_stats["amount"]),
        "CCLD_DVSN": "1" if tick.price >= tick.ask else "5",
        "BSOP_DATE": t.strftime("%Y%m%d"),
        "NEW_MKOP_CLS_CODE": "20",
        "TRHT_YN": "N",
        "ASKP_RSQN1": str(tick.ask_size),
        "BIDP_RSQN1": str(tick.bid_size),
        "TOTAL_ASKP_RSQN": str(tick.ask_size * 10),
        "TOTAL_BIDP_RSQN": str(tick.bid_size * 10),
        "HOUR_CLS_CODE": "0",
        "MRKT_TRTM_CLS_CODE": "N",
        "VI_STND_PRC": str(base),
    }


def book_record(tick: Tick, kind: str) -> dict[str, str]:
    """H0STASP0 fields: ten levels each side stepped on the KRX tick grid from the top."""
    t = datetime.fromtimestamp(tick.ts, KST)
    rec = {"MKSC_SHRN_ISCD": tick.symbol, "BSOP_HOUR": t.strftime("%H%M%S"), "HOUR_CLS_CODE": "0"}
    ask, bid = tick.ask, tick.bid
    for i in range(1, 11):
        rec[f"ASKP{i}"] = str(ask)
        rec[f"BIDP{i}"] = str(bid)
        rec[f"ASKP_RSQN{i}"] = str(tick.ask_size if i == 1 else 100 * i)
        rec[f"BIDP_RSQN{i}"] = str(tick.bid_size if i == 1 else 100 * i)
        ask = krx.step_price(ask, 1, kind) if ask else 0
        bid = krx.step_price(bid, -1, kind) if bid > 0 else 0
    rec["TOTAL_ASKP_RSQN"] = str(tick.ask_size + 5400)
    rec["TOTAL_BIDP_RSQN"] = str(tick.bid_size + 5400)
    rec["ACML_VOL"] = str(tick.cum_volume)
    rec["STCK_DEAL_CLS_CODE"] = "00"
    return rec


def pad(odno: int | None) -> str:
    """An order number as KIS writes it on the real host (ten digits)."""
    return "" if odno is None else f"{odno:010d}"


def auth_error(code: str, desc: str, status: int = 403) -> JSONResponse:
    return JSONResponse({"error_code": code, "error_description": desc}, status_code=status)


def gw(code: str, msg: str, status: int = 500) -> JSONResponse:
    """A gateway refusal (no ``output``), HTTP 500 unless said otherwise."""
    return JSONResponse({"rt_cd": "1", "msg_cd": code, "msg1": msg}, status_code=status)


def biz(code: str, msg: str, rt_cd: str = "1") -> JSONResponse:
    """A business answer: HTTP 200 with ``rt_cd``, ``msg_cd``, ``msg1``."""
    return JSONResponse({"rt_cd": rt_cd, "msg_cd": code, "msg1": msg, "output": {}})
