"""The Kiwoom fake's market-data and account-evaluation APIs: ``ka10099`` (the stock list),
``ka10004`` (the 10-level book), ``ka10081`` / ``ka10080`` (daily / minute charts) and
``kt00004`` (계좌평가현황).

Registered by the server with one line each (``PATHS`` merged into its API table, ``answer``
called from its dispatcher). Every value goes out as a string, as Kiwoom sends it; request
fields must be strings too (a JSON number is refused with ``1517``, like the real host).
The stock list is the generated master (``fakes/master.py``); symbols beyond the bundle
start trading in the fake the first time they are asked for.
"""

from __future__ import annotations

import random
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Final

from starlette.responses import Response

from hoga.domain import krx
from hoga.domain.clock import KST
from hoga.fakes.kiwoom.exchange import FakeBook, Refusal
from hoga.fakes.kiwoom.formats import padded, reply, signed
from hoga.fakes.master import kiwoom_market, kiwoom_row

if TYPE_CHECKING:
    from hoga.fakes.kiwoom.server import KiwoomFake

STOCK_INFO: Final = "/api/dostk/stkinfo"
MARKET_COND: Final = "/api/dostk/mrkcond"
CHART: Final = "/api/dostk/chart"
ACCOUNT: Final = "/api/dostk/acnt"
PATHS: Final = {
    "ka10099": STOCK_INFO,
    "ka10004": MARKET_COND,
    "ka10081": CHART,
    "ka10080": CHART,
    "kt00004": ACCOUNT,
}
_MARKET_TYPES: Final = frozenset({"0", "10", "3", "8", "30", "50", "60", "4", "5", "6", "9"})


def _text(body: dict[str, Any], name: str, *, required: bool = True) -> str:
    value = body.get(name)
    if value is None or (isinstance(value, str) and not value.strip()):
        if required:
            raise Refusal("1511", f"필수 입력 값에 값이 존재하지 않습니다 ({name})", business=False)
        return ""
    if not isinstance(value, str):
        # Kiwoom takes every field as a string: 70000 (a number) is a format error.
        raise Refusal("1517", f"입력 값 형식 오류입니다 ({name})", business=False)
    return value.strip()


def answer(
    fake: KiwoomFake, api_id: str, book: FakeBook, body: dict[str, Any], headers: Any
) -> Response:
    if api_id == "ka10099":
        tp = _text(body, "mrkt_tp")
        if tp not in _MARKET_TYPES:
            raise Refusal("1517", "입력 값 형식 오류입니다 (mrkt_tp)", business=False)
        rows = [kiwoom_row(x) for x in fake.master if kiwoom_market(x) == tp]
        return fake.rest.paged(api_id, "list", rows, headers, {})
    if api_id == "ka10004":
        return _book(fake, api_id, _text(body, "stk_cd"))
    if api_id in ("ka10081", "ka10080"):
        return _chart(fake, api_id, body, headers)
    return _evaluation(fake, api_id, book, body)


def _instrument(fake: KiwoomFake, symbol: str) -> tuple[Any, Any]:
    inst = fake.market.instrument(symbol)
    last = fake.market.last(symbol)
    if inst is None or last is None:
        raise Refusal("1902", "종목정보가 없습니다", business=False)
    return inst, last


def _book(fake: KiwoomFake, api_id: str, symbol: str) -> Response:
    inst, _ = _instrument(fake, symbol)
    ob = fake.market.orderbook(symbol)
    assert ob is not None
    base = inst.base_price
    out: dict[str, Any] = {
        "bid_req_base_tm": datetime.fromtimestamp(ob.ts, KST).strftime("%H%M%S"),
        "tot_sel_req": str(ob.total_ask_qty),
        "tot_buy_req": str(ob.total_bid_qty),
        "return_code": 0,
        "return_msg": "조회가 완료되었습니다",
    }
    for i in range(10):
        ap, aq = ob.asks[i] if i < len(ob.asks) else (0, 0)
        bp, bq = ob.bids[i] if i < len(ob.bids) else (0, 0)
        if i == 0:
            names = ("sel_fpr_bid", "sel_fpr_req", "buy_fpr_bid", "buy_fpr_req")
        else:
            n = i + 1
            names = (f"sel_{n}th_pre_bid", f"sel_{n}th_pre_req", f"buy_{n}th_pre_bid",
                     f"buy_{n}th_pre_req")  # fmt: skip
        out[names[0]] = signed(ap, base) if ap else "0"
        out[names[1]] = str(aq)
        out[names[2]] = signed(bp, base) if bp else "0"
        out[names[3]] = str(bq)
    return reply(out, api_id)


def _walk(symbol: str, end_price: int, kind: str, n: int, salt: str) -> list[int]:
    rng = random.Random(f"{symbol}:{salt}")
    out, p = [], end_price
    for _ in range(n):
        out.append(p)
        p = max(krx.step_price(p, rng.choice((-2, -1, -1, 0, 1, 1, 2)), kind), 1)
    return out


def _chart(fake: KiwoomFake, api_id: str, body: dict[str, Any], headers: Any) -> Response:
    symbol = _text(body, "stk_cd")
    _text(body, "upd_stkpc_tp")
    inst, last = _instrument(fake, symbol)
    now = datetime.fromtimestamp(fake.clock.time(), KST)
    rows: list[dict[str, str]] = []
    if api_id == "ka10081":
        base_dt = _text(body, "base_dt")
        try:
            end = datetime.strptime(base_dt, "%Y%m%d").date()
        except ValueError:
            raise Refusal("1517", "입력 값 형식 오류입니다 (base_dt)", business=False) from None
        end = min(end, now.date())
        closes = _walk(symbol, inst.base_price, inst.kind, 601, "daily")
        day, i = end, 0
        while len(rows) < 600:
            if day.weekday() < 5:
                close = last.price if day == now.date() else closes[i]
                prev = closes[i + 1]
                tick = krx.tick_size(close, inst.kind)
                vol = random.Random(f"{symbol}:{day}").randint(10, 5000) * 100
                rows.append(
                    {
                        "cur_prc": str(close),
                        "trde_qty": str(vol),
                        "trde_prica": str(vol * close // 1_000_000),
                        "dt": day.strftime("%Y%m%d"),
                        "open_pric": str(prev),
                        "high_pric": str(max(prev, close) + tick),
                        "low_pric": str(max(min(prev, close) - tick, 1)),
                    }
                )
                i += 1
            day -= timedelta(days=1)
        return fake.rest.paged(api_id, "stk_dt_pole_chart_qry", rows, headers, {"stk_cd": symbol})
    _text(body, "tic_scope")
    closes = _walk(symbol, last.price, inst.kind, 400, now.strftime("%Y%m%d"))
    t = now.replace(second=0, microsecond=0)
    opening = now.replace(hour=9, minute=0, second=0, microsecond=0)
    i = 0
    while t >= opening and len(rows) < 390:
        close, prev = closes[i], closes[i + 1]
        rows.append(
            {
                "cur_prc": str(close),
                "trde_qty": str(random.Random(f"{symbol}:{t}").randint(1, 300) * 10),
                "cntr_tm": t.strftime("%Y%m%d%H%M%S"),
                "open_pric": str(prev),
                "high_pric": str(max(prev, close)),
                "low_pric": str(min(prev, close)),
            }
        )
        t -= timedelta(minutes=1)
        i += 1
    return fake.rest.paged(api_id, "stk_min_pole_chart_qry", rows, headers, {"stk_cd": symbol})


def _evaluation(fake: KiwoomFake, api_id: str, book: FakeBook, body: dict[str, Any]) -> Response:
    """``kt00004`` 계좌평가현황: deposit, totals and one row per holding."""
    _text(body, "qry_tp")
    _text(body, "dmst_stex_tp")
    rows = []
    total_value = total_cost = 0
    for symbol, pos in sorted(book.positions.items()):
        if not pos.qty:
            continue
        inst = fake.market.instrument(symbol)
        tick = fake.market.last(symbol)
        price = tick.price if tick else (inst.base_price if inst else 0)
        value = pos.qty * price
        total_value += value
        total_cost += pos.cost
        rows.append(
            {
                "stk_cd": f"A{symbol}",
                "stk_nm": inst.name if inst else "",
                "rmnd_qty": padded(pos.qty, 15),
                "avg_prc": padded(pos.avg_price, 15),
                "cur_prc": padded(price, 12),
                "evlt_amt": padded(value, 15),
                "pl_amt": padded(value - pos.cost, 15),
                "pl_rt": f"{(value - pos.cost) * 100 / pos.cost:.4f}" if pos.cost else "0.0000",
                "loan_dt": "",
                "pur_amt": padded(pos.cost, 15),
                "setl_remn": padded(pos.qty, 15),
                "pred_buyq": padded(0, 15),
                "pred_sellq": padded(0, 15),
                "tdy_buyq": padded(0, 15),
                "tdy_sellq": padded(0, 15),
            }
        )
    out = {
        "acnt_nm": "모의투자",
        "brch_nm": "키움은행",
        "entr": padded(book.cash, 15),
        "d2_entra": padded(book.cash, 15),
        "tot_est_amt": padded(total_value, 15),
        "aset_evlt_amt": padded(book.cash + total_value, 15),
        "tot_pur_amt": padded(total_cost, 15),
        "prsm_dpst_aset_amt": padded(book.cash + total_value, 15),
        "tot_grnt_sella": padded(0, 15),
        "tdy_lspft_amt": padded(0, 15),
        "invt_bncp": padded(0, 15),
        "mth_lspft_amt": padded(0, 15),
        "lspft_amt": padded(total_value - total_cost, 15),
        "tdy_lspft": padded(0, 15),
        "lspft2": padded(0, 15),
        "lspft": padded(total_value - total_cost, 15),
        "tdy_lspft_rt": "0.00",
        "lspft_ratio": "0.00",
        "lspft_rt": f"{(total_value - total_cost) * 100 / total_cost:.2f}"
        if total_cost
        else "0.00",
        "stk_acnt_evlt_prst": rows,
        "return_code": 0,
        "return_msg": "조회가 완료되었습니다",
    }
    return reply(out, api_id)
