"""The OpenAPI+ wire facts the adapter needs: order codes (SendOrder's nOrderType and
sHogaGb), the opt10075 fields, and their reading as the REST rows ``kiwoom.tracking`` parses."""

from __future__ import annotations

BUY, SELL, CANCEL_BUY, CANCEL_SELL, MODIFY_BUY, MODIFY_SELL = 1, 2, 3, 4, 5, 6
LIMIT, MARKET = "00", "03"
REPORT_FIELDS = (
    "주문번호",
    "원주문번호",
    "종목코드",
    "주문구분",
    "매매구분",
    "주문수량",
    "주문가격",
    "미체결수량",
    "체결량",
    "체결가",
    "시간",
)


def digits(account_no: str) -> str:
    return "".join(ch for ch in account_no if ch.isdigit())


def report_row(r: dict[str, str]) -> dict[str, str]:
    """An opt10075 row in the field names ``ReportRow.parse`` reads (REST ka10075/76's)."""
    return {
        "ord_no": r.get("주문번호", ""),
        "orig_ord_no": r.get("원주문번호", ""),
        "stk_cd": r.get("종목코드", ""),
        "io_tp_nm": r.get("주문구분", ""),
        "trde_tp": r.get("매매구분", ""),
        "ord_qty": r.get("주문수량", ""),
        "ord_pric": r.get("주문가격", ""),
        "oso_qty": r.get("미체결수량", ""),
        "cntr_qty": r.get("체결량", ""),
        "cntr_pric": r.get("체결가", ""),
        "tm": r.get("시간", ""),
    }
