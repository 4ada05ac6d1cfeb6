"""The KIS fake's market-data endpoints: master files, quotes, order book, charts, stock
search, buyable amount and the overseas inquiries public clients call for every account.

Registered by the server with one line each (``TR_TABLE.update``, ``master_routes``, the two
handler maps); everything here answers in KIS's wire format - strings for numbers, ``rt_cd``
``"0"`` with ``msg_cd``/``msg1`` - over the fake's own simulated market and generated master
(``fakes/master.py``). Symbols outside the bundle start trading in the fake the first time
anyone asks for them (``SimulatedMarket.set_catalog``).
"""

from __future__ import annotations

import random
from collections.abc import Callable
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from hoga.domain import krx
from hoga.domain.clock import KST
from hoga.domain.market import Instrument, Listing, Tick
from hoga.fakes.kis import frames
from hoga.fakes.master import kis_mst_zip

if TYPE_CHECKING:
    from hoga.fakes.kis.exchange import FakeAccountState
    from hoga.fakes.kis.server import KisFake

_Q = "/uapi/domestic-stock/v1/quotations"
_T = "/uapi/domestic-stock/v1/trading"
_O = "/uapi/overseas-stock/v1/trading"
PRICE = f"{_Q}/inquire-price"
ASKING = f"{_Q}/inquire-asking-price-exp-ccn"
DAILY = f"{_Q}/inquire-daily-itemchartprice"
MINUTE = f"{_Q}/inquire-time-itemchartprice"
SEARCH = f"{_Q}/search-info"
PSBL_ORDER = f"{_T}/inquire-psbl-order"
OVERSEAS_BALANCE = f"{_O}/inquire-balance"
OVERSEAS_PENDING = f"{_O}/inquire-nccs"
OVERSEAS_PRESENT = f"{_O}/inquire-present-balance"
OVERSEAS_CCNL = f"{_O}/inquire-ccnl"

TR_TABLE: dict[str, dict[str, set[str]]] = {
    ASKING: {"real": {"FHKST01010200"}, "mock": {"FHKST01010200"}},
    DAILY: {"real": {"FHKST03010100"}, "mock": {"FHKST03010100"}},
    MINUTE: {"real": {"FHKST03010200"}, "mock": {"FHKST03010200"}},
    SEARCH: {"real": {"CTPF1604R"}, "mock": set()},
    PSBL_ORDER: {"real": {"TTTC8908R"}, "mock": {"VTTC8908R"}},
    OVERSEAS_BALANCE: {"real": {"TTTS3012R"}, "mock": {"VTTS3012R"}},
    OVERSEAS_PENDING: {"real": {"TTTS3018R"}, "mock": set()},
    OVERSEAS_PRESENT: {"real": {"CTRP6504R"}, "mock": {"VTRP6504R"}},
    OVERSEAS_CCNL: {"real": {"TTTS3035R"}, "mock": {"VTTS3035R"}},
}
OK = {"rt_cd": "0", "msg_cd": "MCA00000", "msg1": "정상처리 되었습니다."}
NO_SYMBOL = ("APBK0656", "해당 종목정보가 없습니다.")


def _ok(**body: Any) -> JSONResponse:
    return JSONResponse({**OK, **body})


def _no_symbol(fake: KisFake) -> Response:
    return frames.biz(*NO_SYMBOL)


def _symbol(params: dict[str, Any], *names: str) -> str:
    for n in names:
        v = params.get(n) or params.get(n.lower())
        if isinstance(v, str) and v.strip():
            return v.strip().upper()
    return ""


def _traded(fake: KisFake, params: dict[str, Any]) -> tuple[str, Instrument, Tick] | None:
    """The symbol a quotation names (``FID_INPUT_ISCD``) with its instrument and last trade;
    None when the simulated market does not trade it."""
    symbol = _symbol(params, "FID_INPUT_ISCD")
    inst = fake.market.instrument(symbol)
    last = fake.market.last(symbol)
    return None if inst is None or last is None else (symbol, inst, last)


def _sign(diff: int) -> str:
    return "2" if diff > 0 else "5" if diff < 0 else "3"


# ------------------------------------------------------------------ master files


def master_routes(fake: KisFake) -> list[Route]:
    """``GET /common/master/kospi_code.mst.zip`` and ``kosdaq_code.mst.zip`` (no auth, as
    KIS's download host)."""
    cache: dict[str, bytes] = {}

    async def download(request: Request) -> Response:
        name = request.path_params["name"]
        market = {"kospi_code.mst.zip": "KOSPI", "kosdaq_code.mst.zip": "KOSDAQ"}.get(name)
        if market is None:
            return Response("Not Found", status_code=404)
        if name not in cache:
            cache[name] = kis_mst_zip(fake.master, market)
        return Response(cache[name], media_type="application/zip")

    return [Route("/common/master/{name}", download, methods=["GET"])]


def fallback_route(fake: KisFake) -> Route:
    """Any other path: a JSON error body (404), as KIS's gateway answers, never a bare page."""

    async def unknown(request: Request) -> Response:
        return frames.gw("EGW00203", "존재하지 않는 URL입니다. (fake: unknown path)", 404)

    return Route("/{path:path}", unknown, methods=["GET", "POST", "PUT", "DELETE", "PATCH"])


# ------------------------------------------------------------------ quotations


def price(fake: KisFake, params: dict[str, Any]) -> Response:
    """FHKST01010100 with the full output (every field public clients read)."""
    known = _traded(fake, params)
    if known is None:
        return _no_symbol(fake)
    symbol, inst, last = known
    listing = fake.listing(symbol)
    base = inst.base_price
    lower, upper = krx.price_limits(base, inst.kind)
    stats = fake.exchange.day_stats.get(symbol, {})
    diff = last.price - base
    shares = listing.listed_shares if listing else 0
    today = datetime.fromtimestamp(fake.clock.time(), KST).strftime("%Y%m%d")
    hi, lo = max(upper, last.price), min(lower, last.price)
    warn = {"caution": "01", "warning": "02", "risk": "03"}.get(
        listing.warning if listing else "", "00"
    )
    zero = "0"
    out = {
        "iscd_stat_cls_code": "58" if inst.halted else "55",
        "marg_rate": "40.00" if inst.designation else "20.00",
        "rprs_mrkt_kor_name": {"etf": "ETF", "etn": "ETN"}.get(inst.kind, inst.market),
        "new_hgpr_lwpr_cls_code": "",
        "bstp_kor_isnm": "전기·전자" if inst.kind == "stock" else "",
        "temp_stop_yn": "Y" if inst.halted else "N",
        "oprc_rang_cont_yn": "N",
        "clpr_rang_cont_yn": "N",
        "crdt_able_yn": "N" if inst.designation else "Y",
        "grmn_rate_cls_code": "40",
        "elw_pblc_yn": "N",
        "stck_prpr": str(last.price),
        "prdy_vrss": str(diff),
        "prdy_vrss_sign": _sign(diff),
        "prdy_ctrt": f"{diff * 100 / base:.2f}",
        "acml_tr_pbmn": str(stats.get("amount", last.price * last.cum_volume)),
        "acml_vol": str(last.cum_volume),
        "prdy_vrss_vol_rate": "100.00",
        "stck_oprc": str(stats.get("open", last.price)),
        "stck_hgpr": str(stats.get("high", last.price)),
        "stck_lwpr": str(stats.get("low", last.price)),
        "stck_mxpr": str(upper),
        "stck_llam": str(lower),
        "stck_sdpr": str(base),
        "wghn_avrg_stck_prc": f"{last.price:.2f}",
        "hts_frgn_ehrt": "12.34",
        "frgn_ntby_qty": zero,
        "pgtr_ntby_qty": zero,
        "pvt_scnd_dmrs_prc": str(upper),
        "pvt_frst_dmrs_prc": str(krx.round_to_tick((base + upper) // 2, inst.kind)),
        "pvt_pont_val": str(base),
        "pvt_frst_dmsp_prc": str(krx.round_to_tick((base + lower) // 2, inst.kind)),
        "pvt_scnd_dmsp_prc": str(lower),
        "dmrs_val": str(upper),
        "dmsp_val": str(lower),
        "cpfn": str(shares * 500 // 100_000_000),
        "rstc_wdth_prc": str(upper - base),
        "stck_fcam": "500" if inst.kind == "stock" else "0",
        "stck_sspr": str(krx.round_to_tick(base * 7 // 10, inst.kind)),
        "aspr_unit": str(krx.tick_size(last.price, inst.kind)),
        "hts_deal_qty_unit_val": "1",
        "lstn_stcn": str(shares),
        "hts_avls": str(shares * last.price // 100_000_000),
        "per": "12.50",
        "pbr": "1.10",
        "stac_month": "12",
        "vol_tnrt": f"{last.cum_volume * 100 / shares:.2f}" if shares else "0.00",
        "eps": str(max(last.price // 12, 1)),
        "bps": str(max(last.price * 10 // 11, 1)),
        "d250_hgpr": str(hi),
        "d250_hgpr_date": today,
        "d250_hgpr_vrss_prpr_rate": f"{(last.price - hi) * 100 / hi:.2f}",
        "d250_lwpr": str(lo),
        "d250_lwpr_date": today,
        "d250_lwpr_vrss_prpr_rate": f"{(last.price - lo) * 100 / lo:.2f}",
        "stck_dryy_hgpr": str(hi),
        "dryy_hgpr_vrss_prpr_rate": f"{(last.price - hi) * 100 / hi:.2f}",
        "dryy_hgpr_date": today,
        "stck_dryy_lwpr": str(lo),
        "dryy_lwpr_vrss_prpr_rate": f"{(last.price - lo) * 100 / lo:.2f}",
        "dryy_lwpr_date": today,
        "w52_hgpr": str(hi),
        "w52_hgpr_vrss_prpr_ctrt": f"{(last.price - hi) * 100 / hi:.2f}",
        "w52_hgpr_date": today,
        "w52_lwpr": str(lo),
        "w52_lwpr_vrss_prpr_ctrt": f"{(last.price - lo) * 100 / lo:.2f}",
        "w52_lwpr_date": today,
        "whol_loan_rmnd_rate": "0.10",
        "ssts_yn": "Y",
        "stck_shrn_iscd": symbol,
        "fcam_cnnm": "500",
        "cpfn_cnnm": f"{shares * 500 // 100_000_000} 억",
        "apprch_rate": "0.00",
        "frgn_hldn_qty": str(shares // 8),
        "vi_cls_code": "N",
        "ovtm_vi_cls_code": "N",
        "last_ssts_cntg_qty": zero,
        "invt_caful_yn": "Y" if warn == "01" else "N",
        "mrkt_warn_cls_code": warn,
        "short_over_yn": "N",
        "sltr_yn": "Y" if listing is not None and listing.liquidation else "N",
        "mang_issu_cls_code": "Y" if listing is not None and listing.admin_issue else "N",
    }
    return _ok(output=out)


def asking_price(fake: KisFake, params: dict[str, Any]) -> Response:
    """FHKST01010200: output1 the 10-level book, output2 the expected-match summary."""
    symbol = _symbol(params, "FID_INPUT_ISCD")
    book = fake.market.orderbook(symbol)
    last = fake.market.last(symbol)
    inst = fake.market.instrument(symbol)
    if book is None or last is None or inst is None:
        return _no_symbol(fake)
    t = datetime.fromtimestamp(book.ts, KST)
    out1: dict[str, str] = {"aspr_acpt_hour": t.strftime("%H%M%S")}
    for i in range(10):
        ap, aq = book.asks[i] if i < len(book.asks) else (0, 0)
        bp, bq = book.bids[i] if i < len(book.bids) else (0, 0)
        out1[f"askp{i + 1}"] = str(ap)
        out1[f"bidp{i + 1}"] = str(bp)
        out1[f"askp_rsqn{i + 1}"] = str(aq)
        out1[f"bidp_rsqn{i + 1}"] = str(bq)
        out1[f"askp_rsqn_icdc{i + 1}"] = "0"
        out1[f"bidp_rsqn_icdc{i + 1}"] = "0"
    out1.update(
        {
            "total_askp_rsqn": str(book.total_ask_qty),
            "total_bidp_rsqn": str(book.total_bid_qty),
            "total_askp_rsqn_icdc": "0",
            "total_bidp_rsqn_icdc": "0",
            "ovtm_total_askp_icdc": "0",
            "ovtm_total_bidp_icdc": "0",
            "ovtm_total_askp_rsqn": "0",
            "ovtm_total_bidp_rsqn": "0",
            "ntby_aspr_rsqn": str(book.total_bid_qty - book.total_ask_qty),
            "new_mkop_cls_code": "20",
        }
    )
    diff = last.price - inst.base_price
    out2 = {
        "antc_mkop_cls_code": "311",
        "stck_prpr": str(last.price),
        "stck_oprc": str(fake.exchange.day_stats.get(symbol, {}).get("open", last.price)),
        "stck_hgpr": str(fake.exchange.day_stats.get(symbol, {}).get("high", last.price)),
        "stck_sdpr": str(inst.base_price),
        "antc_cnpr": "0",
        "antc_cntg_vrss_sign": "3",
        "antc_cntg_vrss": "0",
        "antc_cntg_prdy_ctrt": "0.00",
        "antc_vol": "0",
        "stck_shrn_iscd": symbol,
        "vi_cls_code": "N",
        "prdy_vrss": str(diff),
        "prdy_vrss_sign": _sign(diff),
    }
    return _ok(output1=out1, output2=out2)


def _walk(symbol: str, start_price: int, kind: str, n: int, salt: int) -> list[int]:
    """A deterministic random walk of ``n`` closes ending at ``start_price`` (newest first)."""
    rng = random.Random(f"{symbol}:{salt}")
    out, p = [], start_price
    for _ in range(n):
        out.append(p)
        step = rng.choice((-3, -2, -1, -1, 0, 1, 1, 2, 3))
        p = max(krx.step_price(p, step, kind), krx.tick_size(1, kind))
    return out


def daily_chart(fake: KisFake, params: dict[str, Any]) -> Response:
    """FHKST03010100: up to 100 trading days from FID_INPUT_DATE_2 back to _DATE_1."""
    known = _traded(fake, params)
    if known is None:
        return _no_symbol(fake)
    symbol, inst, last = known
    try:
        d1 = datetime.strptime(str(params.get("FID_INPUT_DATE_1", "")), "%Y%m%d").date()
        d2 = datetime.strptime(str(params.get("FID_INPUT_DATE_2", "")), "%Y%m%d").date()
    except ValueError:
        return frames.biz("OPSQ2001", "ERROR : INPUT INVALID_CHECK_DATE (fake: YYYYMMDD)")
    today = datetime.fromtimestamp(fake.clock.time(), KST).date()
    days: list[date] = []
    d = min(d2, today)
    while d >= d1 and len(days) < 100:
        if d.weekday() < 5:
            days.append(d)
        d -= timedelta(days=1)
    closes = _walk(symbol, inst.base_price, inst.kind, len(days) + 1, 0)
    rows = []
    for i, day in enumerate(days):
        close = last.price if day == today else closes[i]
        prev = closes[i + 1]
        rng = random.Random(f"{symbol}:{day}")
        o = krx.round_to_tick(prev, inst.kind)
        h = max(o, close) + krx.tick_size(close, inst.kind) * rng.randint(0, 3)
        low = max(min(o, close) - krx.tick_size(close, inst.kind) * rng.randint(0, 3), 1)
        vol = rng.randint(10, 5000) * 100
        rows.append(
            {
                "stck_bsop_date": day.strftime("%Y%m%d"),
                "stck_clpr": str(close),
                "stck_oprc": str(o),
                "stck_hgpr": str(h),
                "stck_lwpr": str(low),
                "acml_vol": str(vol),
                "acml_tr_pbmn": str(vol * close),
                "flng_cls_code": "00",
                "prtt_rate": "0.00",
                "mod_yn": "N",
                "prdy_vrss_sign": _sign(close - prev),
                "prdy_vrss": str(close - prev),
                "revl_issu_reas": "",
            }
        )
    out1 = _summary(fake, symbol)
    return _ok(output1=out1, output2=rows)


def _summary(fake: KisFake, symbol: str) -> dict[str, str]:
    inst = fake.market.instrument(symbol)
    last = fake.market.last(symbol)
    assert inst is not None and last is not None
    diff = last.price - inst.base_price
    return {
        "prdy_vrss": str(diff),
        "prdy_vrss_sign": _sign(diff),
        "prdy_ctrt": f"{diff * 100 / inst.base_price:.2f}",
        "stck_prdy_clpr": str(inst.base_price),
        "acml_vol": str(last.cum_volume),
        "stck_prpr": str(last.price),
        "hts_kor_isnm": inst.name,
        "stck_shrn_iscd": symbol,
    }


def minute_chart(fake: KisFake, params: dict[str, Any]) -> Response:
    """FHKST03010200: today's 30 minutes up to FID_INPUT_HOUR_1, newest first."""
    known = _traded(fake, params)
    if known is None:
        return _no_symbol(fake)
    symbol, inst, last = known
    now = datetime.fromtimestamp(fake.clock.time(), KST)
    hhmmss = str(params.get("FID_INPUT_HOUR_1", "") or now.strftime("%H%M%S")).ljust(6, "0")
    if not hhmmss[:6].isdigit():
        return frames.biz("OPSQ2001", "ERROR : INPUT INVALID_CHECK_HOUR (fake: HHMMSS)")
    h, m = int(hhmmss[:2]), int(hhmmss[2:4])
    cursor = now.replace(hour=min(h, 23), minute=min(m, 59), second=0, microsecond=0)
    cursor = min(cursor, now.replace(second=0, microsecond=0))
    opening = now.replace(hour=9, minute=0, second=0, microsecond=0)
    rows: list[dict[str, str]] = []
    closes = _walk(symbol, last.price, inst.kind, 400, int(now.strftime("%Y%m%d")))
    while len(rows) < 30 and cursor >= opening:
        idx = int((now - cursor).total_seconds() // 60)
        close = closes[min(idx, len(closes) - 1)]
        prev = closes[min(idx + 1, len(closes) - 1)]
        rng = random.Random(f"{symbol}:{cursor.isoformat()}")
        vol = rng.randint(1, 300) * 10
        rows.append(
            {
                "stck_bsop_date": cursor.strftime("%Y%m%d"),
                "stck_cntg_hour": cursor.strftime("%H%M%S"),
                "stck_prpr": str(close),
                "stck_oprc": str(prev),
                "stck_hgpr": str(max(close, prev)),
                "stck_lwpr": str(min(close, prev)),
                "cntg_vol": str(vol),
                "acml_tr_pbmn": str(vol * close),
            }
        )
        cursor -= timedelta(minutes=1)
    return _ok(output1=_summary(fake, symbol), output2=rows)


def search_info(fake: KisFake, params: dict[str, Any]) -> Response:
    """CTPF1604R 상품기본조회: PDNO + PRDT_TYPE_CD (300 = stock/ETF/ETN)."""
    symbol = _symbol(params, "PDNO")
    listing = fake.listing(symbol)
    if listing is None:
        return _no_symbol(fake)
    clsf = {"etf": ("ETF", "ETF"), "etn": ("ETN", "ETN")}.get(listing.kind, ("주권", "주식"))
    out = {
        "pdno": listing.symbol,
        "prdt_type_cd": str(params.get("PRDT_TYPE_CD") or "300"),
        "prdt_name": listing.name,
        "prdt_name120": listing.name,
        "prdt_abrv_name": listing.name,
        "prdt_eng_name": listing.symbol,
        "prdt_eng_name120": listing.symbol,
        "prdt_eng_abrv_name": listing.symbol,
        "std_pdno": listing.std_code,
        "shtn_pdno": listing.symbol,
        "prdt_sale_stat_cd": "",
        "prdt_risk_grad_cd": "",
        "prdt_clsf_cd": "101210" if listing.kind == "stock" else "101410",
        "prdt_clsf_name": clsf[0],
        "sale_strt_dt": "",
        "sale_end_dt": "",
        "wrap_asst_type_cd": "",
        "ivst_prdt_type_cd": "",
        "ivst_prdt_type_cd_name": clsf[1],
        "frst_erlm_dt": listing.listed_on,
    }
    return _ok(output=out)


QUOTE_HANDLERS: dict[str, Callable[[KisFake, dict[str, Any]], Response]] = {
    PRICE: price,
    ASKING: asking_price,
    DAILY: daily_chart,
    MINUTE: minute_chart,
    SEARCH: search_info,
}


# ------------------------------------------------------------------ account inquiries


def psbl_order(
    fake: KisFake, acct: FakeAccountState, params: dict[str, Any], cont: str
) -> Response:
    """TTTC8908R 매수가능조회: cash after open buys, and how many shares it buys at
    ORD_UNPR (the current price when blank or a market order)."""
    symbol = _symbol(params, "PDNO")
    cash = acct.cash - fake.exchange.reserved_cash(acct)
    price_text = str(params.get("ORD_UNPR") or "").strip()
    unit = int(price_text) if price_text.isdigit() and int(price_text) > 0 else 0
    if symbol:
        last = fake.market.last(symbol)
        if last is None:
            return _no_symbol(fake)
        if unit == 0 or str(params.get("ORD_DVSN") or "00") == "01":
            inst = fake.market.instrument(symbol)
            assert inst is not None
            unit = krx.price_limits(inst.base_price, inst.kind)[1]
    rate = float(fake.commission_rate)
    qty = int(cash // (unit * (1 + rate))) if unit else 0
    out = {
        "ord_psbl_cash": str(cash),
        "ord_psbl_sbst": "0",
        "ruse_psbl_amt": "0",
        "fund_rpch_chgs": "0",
        "psbl_qty_calc_unpr": str(unit),
        "nrcvb_buy_amt": str(qty * unit),
        "nrcvb_buy_qty": str(qty),
        "max_buy_amt": str(qty * unit),
        "max_buy_qty": str(qty),
        "cma_evlu_amt": "0",
        "ovrs_re_use_amt_wcrc": "0",
        "ord_psbl_frcr_amt_wcrc": "0",
    }
    return _ok(output=out)


def overseas_balance(
    fake: KisFake, acct: FakeAccountState, params: dict[str, Any], cont: str
) -> Response:
    """No overseas holdings: empty lists, zero totals, rt_cd 0 (what KIS answers)."""
    totals = {
        "frcr_pchs_amt1": "0.00000",
        "ovrs_rlzt_pfls_amt": "0.00000",
        "ovrs_tot_pfls": "0.00000",
        "rlzt_erng_rt": "0.00000000",
        "tot_evlu_pfls_amt": "0.00000000",
        "tot_pftrt": "0.00000000",
        "frcr_buy_amt_smtl1": "0.000000",
        "ovrs_rlzt_pfls_amt2": "0.00000",
        "frcr_buy_amt_smtl2": "0.000000",
    }
    return JSONResponse(
        {**OK, "ctx_area_fk200": "", "ctx_area_nk200": "", "output1": [], "output2": totals},
        headers={"tr_cont": "D"},
    )


def overseas_pending(
    fake: KisFake, acct: FakeAccountState, params: dict[str, Any], cont: str
) -> Response:
    """미체결내역 (and 주문체결내역): no overseas orders."""
    return JSONResponse(
        {**OK, "ctx_area_fk200": "", "ctx_area_nk200": "", "output": []},
        headers={"tr_cont": "D"},
    )


def overseas_present(
    fake: KisFake, acct: FakeAccountState, params: dict[str, Any], cont: str
) -> Response:
    """체결기준현재잔고 (CTRP6504R): no holdings, a zero USD deposit row, zero totals."""
    usd = {
        "crcy_cd": "USD", "crcy_cd_name": "미국 달러", "frcr_buy_amt_smtl": "0.000000",
        "frcr_sll_amt_smtl": "0.000000", "frcr_dncl_amt_2": "0.00", "frst_bltn_exrt": "1400.00000000",
        "frcr_buy_mgn_amt": "0.00", "frcr_etc_mgna": "0.00", "frcr_drwg_psbl_amt_1": "0.00",
        "frcr_evlu_amt2": "0", "acpl_cstd_crcy_yn": "N", "nxdy_frcr_drwg_psbl_amt": "0.00",
    }  # fmt: skip
    totals = {
        "pchs_amt_smtl": "0", "evlu_amt_smtl": "0", "evlu_pfls_amt_smtl": "0", "dncl_amt": "0",
        "cma_evlu_amt": "0", "tot_dncl_amt": "0", "etc_mgna": "0", "wdrw_psbl_tot_amt": "0",
        "frcr_evlu_tota": "0", "evlu_erng_rt1": "0.00000000", "pchs_amt_smtl_amt": "0",
        "evlu_amt_smtl_amt": "0", "tot_evlu_pfls_amt": "0.00000000", "tot_asst_amt": "0",
        "buy_mgn_amt": "0", "mgna_tota": "0", "frcr_use_psbl_amt": "0.00",
        "ustl_sll_amt_smtl": "0", "ustl_buy_amt_smtl": "0", "tot_frcr_cblc_smtl": "0.000000",
        "tot_loan_amt": "0",
    }  # fmt: skip
    return _ok(output1=[], output2=[usd], output3=totals)


#: inquire-daily-ccld output1 fields public clients read beyond what the order paths fill
#: (python-kis maps ``excg_dvsn_cd`` to the exchange; 02 = KRX).
ORDER_ROW_EXTRAS: dict[str, str] = {
    "excg_dvsn_cd": "02", "loan_dt": "", "ordr_empno": "", "ccld_cndt_name": "없음",
    "inqr_ip_addr": "", "cpbc_ordp_ord_rcit_dvsn_cd": "", "cpbc_ordp_infm_mthd_dvsn_cd": "",
    "ctac_tlno": "", "prdt_type_cd": "300", "cpbc_ordp_mtrl_dvsn_cd": "", "ord_orgno": "",
    "rsvn_ord_end_dt": "", "stpm_cndt_pric": "0", "stpm_efct_occr_dtmd": "",
}  # fmt: skip


ACCOUNT_HANDLERS: dict[
    str, Callable[[KisFake, FakeAccountState, dict[str, Any], str], Response]
] = {
    PSBL_ORDER: psbl_order,
    OVERSEAS_BALANCE: overseas_balance,
    OVERSEAS_PENDING: overseas_pending,
    OVERSEAS_PRESENT: overseas_present,
    OVERSEAS_CCNL: overseas_pending,  # 주문체결내역: none, same empty shape
}


def listing_index(master: tuple[Listing, ...]) -> dict[str, Listing]:
    return {x.symbol: x for x in master}


# ------------------------------------------------------------------ H0STCNT0 day flow


class TradeFlow:
    """The day's running trade statistics per symbol, snapshotted at each trade, for the
    H0STCNT0 fields the trade alone cannot give: buy/sell-initiated counts and volumes
    (체결강도, 매수비율), the open/high/low prices with their times and the current price's
    distance from them, turnover against listed shares and volume against the previous day.

    A market listener (``on_tick``) records each trade's snapshot; ``fields(tick)`` hands it
    out while the frames are built (``pump``)."""

    def __init__(self, shares: Callable[[str], int], clock_day: Callable[[float], str]) -> None:
        self._shares = shares
        self._day = clock_day
        self._days: dict[str, str] = {}
        self._state: dict[str, dict[str, Any]] = {}
        self._at: dict[int, dict[str, str]] = {}

    def on_tick(self, tick: Any) -> None:
        day = self._day(tick.ts)
        st = self._state.get(tick.symbol)
        if st is None or self._days.get(tick.symbol) != day:
            st = self._state[tick.symbol] = {
                "sell_n": 0, "buy_n": 0, "sell_v": 0, "buy_v": 0, "amount": 0, "volume": 0,
                "open": tick.price, "open_t": tick.ts, "high": tick.price, "high_t": tick.ts,
                "low": tick.price, "low_t": tick.ts,
            }  # fmt: skip
            self._days[tick.symbol] = day
        buy = tick.price >= tick.ask > 0
        st["buy_n" if buy else "sell_n"] += 1
        st["buy_v" if buy else "sell_v"] += tick.volume
        st["amount"] += tick.price * tick.volume
        st["volume"] += tick.volume
        if tick.price > st["high"]:
            st["high"], st["high_t"] = tick.price, tick.ts
        if tick.price < st["low"]:
            st["low"], st["low_t"] = tick.price, tick.ts
        at = self._at
        at[id(tick)] = self._fields(tick, st)
        if len(at) > 20_000:  # snapshots of old trades: keep the newest half
            for k in list(at)[:10_000]:
                del at[k]

    def _fields(self, tick: Any, st: dict[str, Any]) -> dict[str, str]:
        def hms(ts: float) -> str:
            return datetime.fromtimestamp(ts, KST).strftime("%H%M%S")

        def vs(ref: int) -> tuple[str, str]:
            d = tick.price - ref
            return _sign(d), str(d)

        shares = max(self._shares(tick.symbol), 1)
        prev_day_volume = max(shares // 400, 1)
        # Yesterday by this time: the share of a 390-minute session that has passed.
        t = datetime.fromtimestamp(tick.ts, KST)
        elapsed = min(max((t.hour * 60 + t.minute) - 9 * 60, 1), 390)
        prev_same_time = max(prev_day_volume * elapsed // 390, 1)
        cum = max(tick.cum_volume, st["volume"])
        o_sign, o_diff = vs(st["open"])
        h_sign, h_diff = vs(st["high"])
        l_sign, l_diff = vs(st["low"])
        sell_v, buy_v = st["sell_v"], st["buy_v"]
        return {
            "WGHN_AVRG_STCK_PRC": str(st["amount"] // max(st["volume"], 1)),
            "STCK_OPRC": str(st["open"]),
            "STCK_HGPR": str(st["high"]),
            "STCK_LWPR": str(st["low"]),
            "ACML_TR_PBMN": str(st["amount"]),
            "SELN_CNTG_CSNU": str(st["sell_n"]),
            "SHNU_CNTG_CSNU": str(st["buy_n"]),
            "NTBY_CNTG_CSNU": str(st["buy_n"] - st["sell_n"]),
            "CTTR": f"{buy_v * 100 / sell_v:.2f}" if sell_v else "0.00",
            "SELN_CNTG_SMTN": str(sell_v),
            "SHNU_CNTG_SMTN": str(buy_v),
            "SHNU_RATE": f"{buy_v * 100 / max(sell_v + buy_v, 1):.2f}",
            "PRDY_VOL_VRSS_ACML_VOL_RATE": f"{cum * 100 / prev_day_volume:.2f}",
            "OPRC_HOUR": hms(st["open_t"]),
            "OPRC_VRSS_PRPR_SIGN": o_sign,
            "OPRC_VRSS_PRPR": o_diff,
            "HGPR_HOUR": hms(st["high_t"]),
            "HGPR_VRSS_PRPR_SIGN": h_sign,
            "HGPR_VRSS_PRPR": h_diff,
            "LWPR_HOUR": hms(st["low_t"]),
            "LWPR_VRSS_PRPR_SIGN": l_sign,
            "LWPR_VRSS_PRPR": l_diff,
            "VOL_TNRT": f"{cum * 100 / shares:.2f}",
            "PRDY_SMNS_HOUR_ACML_VOL": str(prev_same_time),
            "PRDY_SMNS_HOUR_ACML_VOL_RATE": f"{cum * 100 / prev_same_time:.2f}",
        }

    def fields(self, tick: Any) -> dict[str, str]:
        return self._at.get(id(tick), {})
