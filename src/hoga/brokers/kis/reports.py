"""The KIS reports an adapter reads: open orders, the day's orders, the balance (kis.md §5).

Paged inquiries through the key's client; rows become ``OrderStatusReport``s through the
tracker, which folds a modified order's numbers into the order hoga placed.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from hoga.brokers.base import Balance, BrokerRejected, OrderStatusReport, PositionReport
from hoga.brokers.kis import wire
from hoga.brokers.kis.client import KisKey
from hoga.brokers.kis.tracking import KisTracker
from hoga.domain.orders import OrderStatus

S = OrderStatus


def tr(op: str, key: KisKey) -> str:
    """The tr_id of ``op`` on the key's environment; refused where the mock server lacks it."""
    tr_id = wire.tr_id(op, key.env)
    if tr_id is None:
        raise BrokerRejected(
            f"모의투자에서는 제공되지 않는 조회입니다 ({op})", "kis.unsupported_on_mock"
        )
    return tr_id


def rows_of(body: dict[str, Any], name: str) -> list[dict[str, Any]]:
    """The rows under ``name`` of one answer (an object or a list of them)."""
    value = body.get(name)
    if isinstance(value, dict):
        return [value]
    if isinstance(value, list):
        return [r for r in value if isinstance(r, dict)]
    return []


async def open_orders(
    key: KisKey, account_id: int, account_no: str, tracker: KisTracker, today: date
) -> list[OrderStatusReport]:
    """Orders that can still be modified or cancelled.

    Real accounts ask ``inquire-psbl-rvsecncl``; the mock server does not offer it
    (kis.md §5.2), so mock accounts read today's unfilled orders from the daily list.
    """
    cano, prdt = wire.split_account(account_no)
    if wire.tr_id("psbl_rvsecncl", key.env) is None:
        return [
            r
            for r in await order_reports(key, account_id, account_no, tracker, today, today)
            if r.status in (S.ACCEPTED, S.PARTIALLY_FILLED)
        ]
    params = {
        "CANO": cano,
        "ACNT_PRDT_CD": prdt,
        "INQR_DVSN_1": "0",
        "INQR_DVSN_2": "0",
    }
    bodies = await key.client.pages(wire.INQUIRE_PSBL_RVSECNCL, tr("psbl_rvsecncl", key), params)
    out = []
    for body in bodies:
        for r in rows_of(body, "output"):
            orig = wire.norm_order_no(str(r.get("orgn_odno") or ""))
            odno = wire.norm_order_no(str(r.get("odno") or ""))
            if orig and odno and orig != odno:
                tracker.link(account_id, tracker.root_of(account_id, orig), odno)
            row = {**r, "rmn_qty": r.get("psbl_qty"), "ord_dt": today.strftime("%Y%m%d")}
            rep = tracker.report_from_row(account_id, row, today, today, set())
            if rep is not None:
                out.append(rep)
    return out


async def order_reports(
    key: KisKey, account_id: int, account_no: str, tracker: KisTracker, day: date, today: date
) -> list[OrderStatusReport]:
    cano, prdt = wire.split_account(account_no)
    ymd = day.strftime("%Y%m%d")
    params = {
        "CANO": cano,
        "ACNT_PRDT_CD": prdt,
        "INQR_STRT_DT": ymd,
        "INQR_END_DT": ymd,
        "SLL_BUY_DVSN_CD": "00",
        "INQR_DVSN": "01",
        "PDNO": "",
        "CCLD_DVSN": "00",
        "ORD_GNO_BRNO": "",
        "ODNO": "",
        "INQR_DVSN_3": "00",
        "INQR_DVSN_1": "",
        "EXCG_ID_DVSN_CD": "KRX",
    }
    bodies = await key.client.pages(wire.INQUIRE_DAILY_CCLD, tr("daily_ccld", key), params)
    rows: list[dict[str, Any]] = []
    for body in bodies:
        rows += rows_of(body, "output1")
    cancelled = {
        wire.norm_order_no(str(r.get("orgn_odno") or ""))
        for r in rows
        if str(r.get("cncl_yn", "")).upper() == "Y"
    }
    reports = []
    for r in rows:
        if str(r.get("cncl_yn", "")).upper() == "Y":
            continue  # the cancel request itself, not an order
        orig = wire.norm_order_no(str(r.get("orgn_odno") or ""))
        odno = wire.norm_order_no(str(r.get("odno") or ""))
        if orig and odno and orig != odno:
            # A modify: its row continues the order it replaced (rows come oldest first).
            tracker.link(account_id, tracker.root_of(account_id, orig), odno)
        rep = tracker.report_from_row(account_id, r, day, today, cancelled)
        if rep is not None:
            reports.append(rep)
    return tracker.fold_chains(account_id, reports)


async def balance(key: KisKey, account_no: str) -> Balance:
    cano, prdt = wire.split_account(account_no)
    params = {
        "CANO": cano,
        "ACNT_PRDT_CD": prdt,
        "AFHR_FLPR_YN": "N",
        "OFL_YN": "",
        "INQR_DVSN": "02",
        "UNPR_DVSN": "01",
        "FUND_STTL_ICLD_YN": "N",
        "FNCG_AMT_AUTO_RDPT_YN": "N",
        "PRCS_DVSN": "00",
    }
    bodies = await key.client.pages(wire.INQUIRE_BALANCE, tr("balance", key), params)
    positions: list[PositionReport] = []
    totals: dict[str, Any] = {}
    for body in bodies:
        for r in rows_of(body, "output1"):
            qty = wire.to_int(r.get("hldg_qty"))
            if qty > 0:
                positions.append(
                    PositionReport(
                        str(r.get("pdno") or ""), qty, wire.round_won(r.get("pchs_avg_pric"))
                    )
                )
        out2 = rows_of(body, "output2")
        if out2:
            totals = out2[0]
    cash = wire.to_int(totals.get("dnca_tot_amt"))
    orderable = wire.to_int(totals.get("prvs_rcdl_excc_amt"), cash)
    return Balance(cash=cash, orderable=orderable, positions=positions)
