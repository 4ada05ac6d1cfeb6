"""KIS wire facts the adapter needs: hosts, paths, tr_ids, error codes, realtime layouts.

Everything here comes from ``shared/reference/kis.md`` (section numbers in comments). Nothing in
this module performs I/O.
"""

from __future__ import annotations

import base64
import functools
import re
from datetime import date, datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Final

from cryptography.hazmat.primitives import padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from hoga.domain.clock import KST
from hoga.domain.orders import OrderType, Side, TimeInForce

# §1 hosts
REST_HOSTS: Final = {
    "real": "https://openapi.koreainvestment.com:9443",
    "mock": "https://openapivts.koreainvestment.com:29443",
}
WS_HOSTS: Final = {
    "real": "ws://ops.koreainvestment.com:21000",
    "mock": "ws://ops.koreainvestment.com:31000",
}
WS_PATH: Final = "/tryitout"

# §2 auth
TOKEN_PATH: Final = "/oauth2/tokenP"  # noqa: S105 - a name, not a secret
APPROVAL_PATH: Final = "/oauth2/Approval"

# §4, §5 endpoints
_T = "/uapi/domestic-stock/v1/trading"
ORDER_CASH: Final = f"{_T}/order-cash"
ORDER_RVSECNCL: Final = f"{_T}/order-rvsecncl"
INQUIRE_BALANCE: Final = f"{_T}/inquire-balance"
INQUIRE_DAILY_CCLD: Final = f"{_T}/inquire-daily-ccld"
INQUIRE_PSBL_RVSECNCL: Final = f"{_T}/inquire-psbl-rvsecncl"
INQUIRE_PRICE: Final = "/uapi/domestic-stock/v1/quotations/inquire-price"

# tr_ids: (real, mock); None = the mock server does not offer it (§5.2).
TR_IDS: Final[dict[str, tuple[str, str | None]]] = {
    "buy": ("TTTC0012U", "VTTC0012U"),
    "sell": ("TTTC0011U", "VTTC0011U"),
    "rvsecncl": ("TTTC0013U", "VTTC0013U"),
    "balance": ("TTTC8434R", "VTTC8434R"),
    "daily_ccld": ("TTTC0081R", "VTTC0081R"),
    "psbl_rvsecncl": ("TTTC0084R", None),
    "price": ("FHKST01010100", "FHKST01010100"),
}


def tr_id(op: str, env: str) -> str | None:
    real, mock = TR_IDS[op]
    return real if env == "real" else mock


# §4 ORD_DVSN: (order type, time in force) <-> code.
_T_ = OrderType
_TIF = TimeInForce
ORD_DVSN_CODES: Final[dict[tuple[OrderType, TimeInForce], str]] = {
    (_T_.LIMIT, _TIF.DAY): "00",
    (_T_.MARKET, _TIF.DAY): "01",
    (_T_.CONDITIONAL, _TIF.DAY): "02",
    (_T_.BEST, _TIF.DAY): "03",
    (_T_.PRIORITY, _TIF.DAY): "04",
    (_T_.PRE_CLOSE, _TIF.DAY): "05",
    (_T_.AFTER_CLOSE, _TIF.DAY): "06",
    (_T_.SINGLE_PRICE, _TIF.DAY): "07",
    (_T_.LIMIT, _TIF.IOC): "11",
    (_T_.LIMIT, _TIF.FOK): "12",
    (_T_.MARKET, _TIF.IOC): "13",
    (_T_.MARKET, _TIF.FOK): "14",
    (_T_.BEST, _TIF.IOC): "15",
    (_T_.BEST, _TIF.FOK): "16",
}
ORD_KIND_OF: Final = {code: kind for kind, code in ORD_DVSN_CODES.items()}
#: Day-order codes by type, and the type of any code (IOC/FOK codes give their base type).
ORD_DVSN: Final = {t: c for (t, tif), c in ORD_DVSN_CODES.items() if tif == _TIF.DAY}
ORD_TYPE_OF: Final = {code: t for code, (t, _) in ORD_KIND_OF.items()}


def ord_dvsn(kind: OrderType, tif: TimeInForce = TimeInForce.DAY) -> str | None:
    """The ``ORD_DVSN`` code of an order type and time in force; None when KIS has none."""
    return ORD_DVSN_CODES.get((kind, tif))


#: Venue codes (``EXCG_ID_DVSN_CD``).
VENUES: Final = frozenset({"KRX", "NXT", "SOR"})
# §5.3/§8.8: 01 sell, 02 buy
SIDE_CODE: Final = {Side.SELL: "01", Side.BUY: "02"}
SIDE_OF: Final = {"01": Side.SELL, "02": Side.BUY}

# §6 error codes
RATE_LIMITED: Final = "EGW00201"
TOKEN_EXPIRED: Final = "EGW00123"  # noqa: S105 - a name, not a secret
TOKEN_INVALID: Final = "EGW00121"  # noqa: S105 - a name, not a secret
TOKEN_THROTTLED: Final = "EGW00133"  # noqa: S105 - a name, not a secret
BAD_APP_KEY: Final = "EGW00103"
BAD_APP_SECRET: Final = "EGW00105"  # noqa: S105 - a name, not a secret

# §8.9
MAX_REGISTRATIONS: Final = 41

# §8.5 realtime TRs
TRADE_TR: Final = "H0STCNT0"
BOOK_TR: Final = "H0STASP0"
NOTICE_TR: Final = {"real": "H0STCNI0", "mock": "H0STCNI9"}

# §8.6 H0STCNT0, 46 fields
TRADE_FIELDS: Final = [
    "MKSC_SHRN_ISCD",
    "STCK_CNTG_HOUR",
    "STCK_PRPR",
    "PRDY_VRSS_SIGN",
    "PRDY_VRSS",
    "PRDY_CTRT",
    "WGHN_AVRG_STCK_PRC",
    "STCK_OPRC",
    "STCK_HGPR",
    "STCK_LWPR",
    "ASKP1",
    "BIDP1",
    "CNTG_VOL",
    "ACML_VOL",
    "ACML_TR_PBMN",
    "SELN_CNTG_CSNU",
    "SHNU_CNTG_CSNU",
    "NTBY_CNTG_CSNU",
    "CTTR",
    "SELN_CNTG_SMTN",
    "SHNU_CNTG_SMTN",
    "CCLD_DVSN",
    "SHNU_RATE",
    "PRDY_VOL_VRSS_ACML_VOL_RATE",
    "OPRC_HOUR",
    "OPRC_VRSS_PRPR_SIGN",
    "OPRC_VRSS_PRPR",
    "HGPR_HOUR",
    "HGPR_VRSS_PRPR_SIGN",
    "HGPR_VRSS_PRPR",
    "LWPR_HOUR",
    "LWPR_VRSS_PRPR_SIGN",
    "LWPR_VRSS_PRPR",
    "BSOP_DATE",
    "NEW_MKOP_CLS_CODE",
    "TRHT_YN",
    "ASKP_RSQN1",
    "BIDP_RSQN1",
    "TOTAL_ASKP_RSQN",
    "TOTAL_BIDP_RSQN",
    "VOL_TNRT",
    "PRDY_SMNS_HOUR_ACML_VOL",
    "PRDY_SMNS_HOUR_ACML_VOL_RATE",
    "HOUR_CLS_CODE",
    "MRKT_TRTM_CLS_CODE",
    "VI_STND_PRC",
]

# §8.7 H0STASP0, 59 fields
BOOK_FIELDS: Final = (
    ["MKSC_SHRN_ISCD", "BSOP_HOUR", "HOUR_CLS_CODE"]
    + [f"ASKP{i}" for i in range(1, 11)]
    + [f"BIDP{i}" for i in range(1, 11)]
    + [f"ASKP_RSQN{i}" for i in range(1, 11)]
    + [f"BIDP_RSQN{i}" for i in range(1, 11)]
    + [
        "TOTAL_ASKP_RSQN",
        "TOTAL_BIDP_RSQN",
        "OVTM_TOTAL_ASKP_RSQN",
        "OVTM_TOTAL_BIDP_RSQN",
        "ANTC_CNPR",
        "ANTC_CNQN",
        "ANTC_VOL",
        "ANTC_CNTG_VRSS",
        "ANTC_CNTG_VRSS_SIGN",
        "ANTC_CNTG_PRDY_CTRT",
        "ACML_VOL",
        "TOTAL_ASKP_RSQN_ICDC",
        "TOTAL_BIDP_RSQN_ICDC",
        "OVTM_TOTAL_ASKP_ICDC",
        "OVTM_TOTAL_BIDP_ICDC",
        "STCK_DEAL_CLS_CODE",
    ]
)

# §8.8 H0STCNI0/H0STCNI9, the current 26-field layout
NOTICE_FIELDS: Final = [
    "CUST_ID",
    "ACNT_NO",
    "ODER_NO",
    "OODER_NO",
    "SELN_BYOV_CLS",
    "RCTF_CLS",
    "ODER_KIND",
    "ODER_COND",
    "STCK_SHRN_ISCD",
    "CNTG_QTY",
    "CNTG_UNPR",
    "STCK_CNTG_HOUR",
    "RFUS_YN",
    "CNTG_YN",
    "ACPT_YN",
    "BRNC_NO",
    "ODER_QTY",
    "ACNT_NAME",
    "ORD_COND_PRC",
    "ORD_EXG_GB",
    "POPUP_YN",
    "FILLER",
    "CRDT_CLS",
    "CRDT_LOAN_DATE",
    "CNTG_ISNM40",
    "ODER_PRC",
]

_ACCOUNT_RE: Final = re.compile(r"(\d{8})-?(\d{2})")


def split_account(account_no: str) -> tuple[str, str]:
    """``50123456-01`` -> (CANO ``50123456``, ACNT_PRDT_CD ``01``); ValueError otherwise."""
    m = _ACCOUNT_RE.fullmatch(account_no.strip())
    if m is None:
        raise ValueError("KIS account numbers are 8 digits, a dash, and 2 digits (50123456-01)")
    return m.group(1), m.group(2)


def norm_order_no(odno: str) -> str:
    """Order numbers come zero-padded from some endpoints and not from others (§4)."""
    s = odno.strip()
    return s.lstrip("0") or "0" if s.isdigit() else s


def kst_ts(day: date | str, hhmmss: str) -> float:
    """POSIX seconds of ``day`` (a date or YYYYMMDD) at ``hhmmss`` (KST)."""
    ymd = day.strftime("%Y%m%d") if isinstance(day, date) else day
    return _kst_ts(ymd, hhmmss)


@functools.lru_cache(maxsize=8192)
def _kst_ts(ymd: str, hhmmss: str) -> float:
    # On the tick path: no strptime, and trades within one second share the answer.
    if len(ymd) != 8 or not ymd.isdigit():
        raise ValueError(f"not a YYYYMMDD date: {ymd!r}")
    t = (hhmmss or "000000").strip().ljust(6, "0")[:6]
    if not t.isdigit():
        t = "000000"
    when = datetime(
        int(ymd[:4]), int(ymd[4:6]), int(ymd[6:]), int(t[:2]), int(t[2:4]), int(t[4:]), tzinfo=KST
    )
    return when.timestamp()


def to_int(value: object, default: int = 0) -> int:
    """KIS sends numbers as strings, sometimes with decimals ("71500.0000") or blank."""
    if value is None:
        return default
    s = str(value).strip()
    if not s:
        return default
    try:
        return int(s)
    except ValueError:
        try:
            return int(float(s))
        except ValueError:
            return default


def round_won(value: object) -> int:
    """A decimal text (an average price) rounded half up to whole won; 0 when unreadable."""
    try:
        return int(Decimal(str(value or "0").strip() or "0").to_integral_value(ROUND_HALF_UP))
    except ArithmeticError:
        return 0


def aes_decrypt(key: str, iv: str, data: str) -> str:
    """AES-256-CBC, base64 payload, PKCS7 padding; key and iv are UTF-8 strings (§8.4)."""
    cipher = Cipher(algorithms.AES(key.encode()), modes.CBC(iv.encode()))
    dec = cipher.decryptor()
    padded = dec.update(base64.b64decode(data)) + dec.finalize()
    unpadder = padding.PKCS7(128).unpadder()
    return (unpadder.update(padded) + unpadder.finalize()).decode("utf-8")


def parse_frame(text: str) -> tuple[bool, str, int, str] | None:
    """A realtime data frame ``<enc>|<tr_id>|<count>|<payload>`` (§8.4), or None."""
    parts = text.split("|", 3)
    if len(parts) != 4 or parts[0] not in ("0", "1"):
        return None
    try:
        count = int(parts[2])
    except ValueError:
        return None
    return parts[0] == "1", parts[1], count, parts[3]


def records(payload: str, count: int, width: int) -> list[list[str]]:
    """Split a ``^``-joined payload of ``count`` records of ``width`` fields each."""
    values = payload.split("^")
    if count < 1 or len(values) < count * width:
        # Tolerate a single record with trailing extras; refuse anything shorter.
        if len(values) >= width:
            return [values[:width]]
        return []
    return [values[i * width : (i + 1) * width] for i in range(count)]
