"""The KIS fake's REST side: tokens and approval keys, and ``/uapi`` - orders, paged reports
and quotes - as ``shared/reference/kis.md`` describes them (see ``server.py``).

Every ``/uapi`` request passes the same gate in KIS's order: app key and secret, the key's
request rate (EGW00201 as HTTP 500), the token, then the fault knobs, the tr_id and the
account. Order requests may then meet the after-booking faults (``KisFaults``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
from datetime import datetime
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from hoga.domain import krx
from hoga.domain.clock import KST
from hoga.fakes.common import DroppedResponse, json_body
from hoga.fakes.kis import market as kis_market
from hoga.fakes.kis.exchange import FakeAccountState, FakeOrder, Refusal
from hoga.fakes.kis.frames import auth_error, biz, gw, pad

if TYPE_CHECKING:
    from hoga.fakes.kis.server import AppKey, KisFake

_T = "/uapi/domestic-stock/v1/trading"
_Q = "/uapi/domestic-stock/v1/quotations"
# path -> env -> accepted tr_ids (new ids and the older ones [PK] still uses, kis.md §4/§5)
TR_TABLE: dict[str, dict[str, set[str]]] = {
    f"{_T}/order-cash": {
        "real": {"TTTC0012U", "TTTC0011U", "TTTC0802U", "TTTC0801U"},
        "mock": {"VTTC0012U", "VTTC0011U", "VTTC0802U", "VTTC0801U"},
    },
    f"{_T}/order-rvsecncl": {
        "real": {"TTTC0013U", "TTTC0803U"},
        "mock": {"VTTC0013U", "VTTC0803U"},
    },
    f"{_T}/inquire-balance": {"real": {"TTTC8434R"}, "mock": {"VTTC8434R"}},
    f"{_T}/inquire-daily-ccld": {
        "real": {"TTTC0081R", "CTSC9215R", "TTTC8001R"},
        "mock": {"VTTC0081R", "VTSC9215R", "VTTC8001R"},
    },
    f"{_T}/inquire-psbl-rvsecncl": {"real": {"TTTC0084R", "TTTC8036R"}, "mock": set()},
    f"{_Q}/inquire-price": {"real": {"FHKST01010100"}, "mock": {"FHKST01010100"}},
}
TR_TABLE.update(kis_market.TR_TABLE)
SELL_TR = {"TTTC0011U", "TTTC0801U", "VTTC0011U", "VTTC0801U"}
NOTICE_TR = {"real": "H0STCNI0", "mock": "H0STCNI9"}
MARKET_TRS = ("H0STCNT0", "H0STASP0")
DVSN_NAMES = {
    "00": "지정가",
    "01": "시장가",
    "02": "조건부지정가",
    "03": "최유리지정가",
    "04": "최우선지정가",
    "05": "장전 시간외",
    "06": "장후 시간외",
    "07": "시간외 단일가",
    "11": "IOC지정가",
    "12": "FOK지정가",
    "13": "IOC시장가",
    "14": "FOK시장가",
    "15": "IOC최유리",
    "16": "FOK최유리",
}

BAD_APP_KEY = "EGW00103"


class KisRestApi:
    """The REST endpoints of one ``KisFake``; its state stays on the fake."""

    def __init__(self, fake: KisFake) -> None:
        self.fake = fake

    def routes(self) -> list[Route]:
        """Tokens first, then every ``/uapi`` path (``server.py`` adds the rest)."""
        return [
            Route("/oauth2/tokenP", self._token, methods=["POST"]),
            Route("/oauth2/Approval", self._approval, methods=["POST"]),
            Route("/oauth2/revokeP", self._revoke, methods=["POST"]),
            Route("/uapi/hashkey", self._hashkey, methods=["POST"]),
        ]

    def uapi_routes(self) -> list[Route]:
        return [Route(path, self._uapi, methods=["GET", "POST"]) for path in TR_TABLE]

    def _check_credentials(self, body: dict[str, Any], secret_field: str) -> AppKey | JSONResponse:
        key = self.fake.keys.get(str(body.get("appkey") or ""))
        if key is None or key.env != self.fake.env:
            # A real key on the mock host (or vice versa) is unknown here, as at KIS.
            return auth_error(BAD_APP_KEY, "유효하지 않은 AppKey입니다.")
        if str(body.get(secret_field) or "") != key.app_secret:
            return auth_error("EGW00105", "유효하지 않은 AppSecret입니다.")
        return key

    async def _token(self, request: Request) -> Response:
        await self.fake.faults.delay()
        body = await json_body(request, empty={})
        if body is None or body.get("grant_type") != "client_credentials":
            return auth_error("EGW00002", "grant_type이 올바르지 않습니다.", 400)
        got = self._check_credentials(body, "appsecret")
        if isinstance(got, JSONResponse):
            return got
        key = got
        now = self.fake.clock.time()
        if key.last_issue is not None and now - key.last_issue < self.fake.token_interval:
            self.fake.token_throttled[key.app_key] += 1
            return auth_error("EGW00133", "접근토큰 발급 잠시 후 다시 시도하세요(1분당 1회)")
        key.last_issue = now
        if key.token is None or key.token_expires <= now or now - key.token_issued > 6 * 3600:
            key.token = "eyJ" + secrets.token_urlsafe(96)
            key.token_issued = now
            key.token_expires = now + self.fake.token_ttl
        self.fake.token_issues[key.app_key] += 1
        expires = datetime.fromtimestamp(key.token_expires, KST)
        return JSONResponse(
            {
                "access_token": key.token,
                "token_type": "Bearer",
                "expires_in": int(key.token_expires - now),
                "access_token_token_expired": expires.strftime("%Y-%m-%d %H:%M:%S"),
            }
        )

    async def _approval(self, request: Request) -> Response:
        await self.fake.faults.delay()
        body = await json_body(request, empty={})
        if body is None:
            return auth_error("EGW00002", "요청 형식이 올바르지 않습니다.", 400)
        got = self._check_credentials(body, "secretkey")
        if isinstance(got, JSONResponse):
            return got
        now = self.fake.clock.monotonic()
        last = self.fake.last_approval.get(got.app_key)
        if last is not None and now - last < self.fake.approval_interval:
            self.fake.approvals_throttled += 1
            return gw("EGW00201", "초당 거래건수를 초과하였습니다.")
        self.fake.last_approval[got.app_key] = now
        approval = secrets.token_hex(18)
        self.fake.approvals[approval] = got.app_key
        self.fake.approvals_issued += 1
        return JSONResponse({"approval_key": approval})

    async def _revoke(self, request: Request) -> Response:
        body = await json_body(request, empty={}) or {}
        key = self.fake.keys.get(str(body.get("appkey") or ""))
        if key is not None and body.get("token") == key.token:
            key.token = None
        return JSONResponse({"code": 200, "message": "접근토큰 폐기에 성공하였습니다"})

    async def _hashkey(self, request: Request) -> Response:
        import hashlib

        raw = await request.body()
        return JSONResponse({"HASH": hashlib.sha256(raw).hexdigest(), "JsonBody": raw.decode()})

    def _admit(self, key: AppKey) -> bool:
        loop_now = asyncio.get_running_loop().time()
        w = key.window
        while w and w[0] <= loop_now - 1.0:
            w.popleft()
        limit = int(self.fake.rate) if self.fake.rate >= 1 else 1
        window = 1.0 if self.fake.rate >= 1 else 1.0 / self.fake.rate
        while w and w[0] <= loop_now - window:
            w.popleft()
        if len(w) >= limit:
            self.fake.rate_limited[key.app_key] += 1
            return False
        w.append(loop_now)
        self.fake.max_in_window[key.app_key] = max(self.fake.max_in_window[key.app_key], len(w))
        return True

    async def _uapi(self, request: Request) -> Response:
        path = request.url.path
        h = request.headers
        app_key = h.get("appkey", "")
        self.fake.requests[app_key] += 1
        self.fake.paths[path.rsplit("/", 1)[1]] += 1
        await self.fake.faults.delay()
        key = self.fake.keys.get(app_key)
        if key is None or key.env != self.fake.env:
            return gw("EGW00103", "유효하지 않은 AppKey입니다.")
        if h.get("appsecret", "") != key.app_secret:
            return gw("EGW00105", "유효하지 않은 AppSecret입니다.")
        if not self._admit(key):
            return gw("EGW00201", "초당 거래건수를 초과하였습니다.")
        auth = h.get("authorization", "")
        token = auth[7:] if auth.lower().startswith("bearer ") else ""
        if not token or token != key.token:
            return gw("EGW00121", "유효하지 않은 token 입니다.")
        if key.token_expires <= self.fake.clock.time():
            return gw("EGW00123", "기간이 만료된 token 입니다.")
        f = self.fake.faults
        if f.http500_next > 0:
            f.http500_next -= 1
            return PlainTextResponse("Internal Server Error", status_code=500)
        if f.random_500(self.fake.rng):
            return PlainTextResponse("Internal Server Error", status_code=500)
        tr_id = h.get("tr_id", "")
        allowed = TR_TABLE[path][self.fake.env]
        if not allowed:
            return biz("OPSQ0002", "모의투자에서는 해당업무가 제공되지 않습니다.")
        if tr_id not in allowed:
            return gw("EGW00202", f"GW라우팅 중 오류가 발생했습니다. (tr_id {tr_id or '없음'})")
        if request.method == "POST":
            body = await json_body(request, empty={})
            if body is None:
                return biz(
                    "OPSQ2001", "ERROR : INPUT JSON PARSE (fake: 요청 본문이 JSON이 아닙니다)"
                )
            params: dict[str, Any] = body
        else:
            params = dict(request.query_params)
        if request.method == "POST" and (f.http500_orders_next > 0 or f.plan.before()):
            # Orders only: refused before anything is booked.
            f.http500_orders_next = max(0, f.http500_orders_next - 1)
            return PlainTextResponse("Internal Server Error", status_code=500)
        quote = kis_market.QUOTE_HANDLERS.get(path)
        if quote is not None:
            return quote(self.fake, params)
        if path.endswith("/inquire-price"):
            return self._price(params)
        acct = self.fake.exchange.accounts.get(
            f"{params.get('CANO', '')}{params.get('ACNT_PRDT_CD', '')}"
        )
        if acct is None or acct.app_key != key.app_key:
            return biz("OPSQ2000", "ERROR : INPUT INVALID_CHECK_ACNO (fake: 계좌번호를 확인하세요)")
        account_handler = kis_market.ACCOUNT_HANDLERS.get(path)
        if account_handler is not None:
            return account_handler(self.fake, acct, params, h.get("tr_cont", ""))
        name = path.rsplit("/", 1)[1]
        if name == "order-cash":
            return await self._order_cash(request, acct, tr_id, params)
        if name == "order-rvsecncl":
            return await self._order_rvsecncl(request, acct, params)
        cont = h.get("tr_cont", "")
        if name == "inquire-balance":
            return self._balance(acct, params, cont)
        if name == "inquire-daily-ccld":
            return self._daily_ccld(acct, params, cont)
        return self._psbl(acct, params, cont)

    def _fields(
        self, params: dict[str, Any], names: tuple[str, ...]
    ) -> dict[str, str] | JSONResponse:
        out = {}
        for n in names:
            v = params.get(n)
            if v is None:
                return biz("OPSQ2001", f"ERROR : INPUT FIELD NOT FOUND [{n}] (fake wording)")
            if not isinstance(v, str):
                return biz(
                    "OPSQ2001", f"ERROR : INPUT FIELD TYPE [{n}] - 숫자도 문자열로 보내야 합니다"
                )
            out[n] = v
        return out

    async def _order_cash(
        self, request: Request, acct: FakeAccountState, tr_id: str, params: dict[str, Any]
    ) -> Response:
        got = self._fields(params, ("PDNO", "ORD_DVSN", "ORD_QTY", "ORD_UNPR"))
        if isinstance(got, JSONResponse):
            return got
        venue = str(params.get("EXCG_ID_DVSN_CD") or "KRX")
        if venue not in ("KRX", "NXT", "SOR"):
            return biz("APBK0918", f"거래소구분코드를 확인하세요 ({venue})")
        if venue != "KRX" and self.fake.env == "mock":
            return biz("APBK0918", "모의투자에서는 KRX 주문만 가능합니다")
        try:
            qty, price = int(got["ORD_QTY"]), int(got["ORD_UNPR"])
        except ValueError:
            return biz("OPSQ2001", "ERROR : INPUT FIELD VALUE [ORD_QTY/ORD_UNPR]")
        side = "01" if tr_id in SELL_TR else "02"
        try:
            order = self.fake.exchange.place(
                acct, got["PDNO"], side, got["ORD_DVSN"], qty, price, venue
            )
        except Refusal as e:
            return biz(e.msg_cd, e.msg1)
        return await self._order_reply(order, side)

    async def _order_rvsecncl(
        self, request: Request, acct: FakeAccountState, params: dict[str, Any]
    ) -> Response:
        got = self._fields(
            params,
            (
                "KRX_FWDG_ORD_ORGNO",
                "ORGN_ODNO",
                "ORD_DVSN",
                "RVSE_CNCL_DVSN_CD",
                "ORD_QTY",
                "ORD_UNPR",
                "QTY_ALL_ORD_YN",
            ),
        )
        if isinstance(got, JSONResponse):
            return got
        kind = got["RVSE_CNCL_DVSN_CD"]
        if kind not in ("01", "02"):
            return biz("APBK0918", "정정취소구분코드를 확인하세요 (01 정정, 02 취소)")
        try:
            orig = int(got["ORGN_ODNO"])
            qty, price = int(got["ORD_QTY"]), int(got["ORD_UNPR"])
        except ValueError:
            return biz("OPSQ2001", "ERROR : INPUT FIELD VALUE [ORGN_ODNO/ORD_QTY/ORD_UNPR]")
        target = self.fake.exchange.orders.get(orig)
        venue = str(params.get("EXCG_ID_DVSN_CD") or "KRX")
        if target is not None and target.account == acct.account and venue != target.venue:
            # The modify or cancel must go to the market that holds the order.
            return biz("APBK0918", f"원주문의 거래소({target.venue})와 다릅니다 ({venue})")
        try:
            order = self.fake.exchange.revise(
                acct,
                orig,
                got["KRX_FWDG_ORD_ORGNO"],
                kind,
                qty,
                got["QTY_ALL_ORD_YN"] == "Y",
                price,
                got["ORD_DVSN"],
            )
        except Refusal as e:
            return biz(e.msg_cd, e.msg1)
        return await self._order_reply(order, None)

    async def _order_reply(self, order: FakeOrder, side: str | None) -> Response:
        t = datetime.fromtimestamp(order.ts, KST)
        if self.fake.env == "real":
            msg_cd, msg1, odno = "APBK0013", "주문 전송 완료 되었습니다.", pad(order.odno)
        else:
            what = {"01": "매도주문", "02": "매수주문", None: "정정/취소주문"}[side]
            msg_cd, msg1, odno = "40600000", f"모의투자 {what}이 완료 되었습니다.", str(order.odno)
        body = {
            "rt_cd": "0",
            "msg_cd": msg_cd,
            "msg1": msg1,
            "output": {
                "KRX_FWDG_ORD_ORGNO": order.org_no,
                "ODNO": odno,
                "ORD_TMD": t.strftime("%H%M%S"),
            },
        }
        f = self.fake.faults
        planned = f.plan.after()
        if f.accept_then_timeout > 0 or planned == "hang":
            f.accept_then_timeout = max(0, f.accept_then_timeout - 1)
            fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self.fake.hanging.add(fut)
            try:
                await fut
            finally:
                self.fake.hanging.discard(fut)
            return PlainTextResponse("", status_code=504)
        raw = json.dumps(body, ensure_ascii=False).encode()
        if f.truncate_next > 0 or planned == "truncate":
            f.truncate_next = max(0, f.truncate_next - 1)
            return Response(raw[: len(raw) // 2], media_type="application/json")
        if f.drop_next > 0 or planned == "drop":
            f.drop_next = max(0, f.drop_next - 1)
            return DroppedResponse(raw)
        return Response(raw, media_type="application/json")

    def _page(
        self, rows: list[dict[str, Any]], params: dict[str, Any], cont: str, size: int
    ) -> tuple[list[dict[str, Any]], dict[str, str], dict[str, str]]:
        offset = 0
        if cont.strip() == "N":
            with contextlib.suppress(ValueError):
                offset = int(str(params.get("CTX_AREA_NK100") or "0").strip() or "0")
        page = rows[offset : offset + size]
        more = offset + size < len(rows)
        first = offset == 0
        tr_cont = ("F" if first else "M") if more else ("D" if first else "E")
        ctx = {
            "ctx_area_fk100": str(params.get("CANO", "")).ljust(100),
            "ctx_area_nk100": (str(offset + size) if more else "").ljust(100),
        }
        return page, ctx, {"tr_cont": tr_cont}

    def _balance(self, acct: FakeAccountState, params: dict[str, Any], cont: str) -> Response:
        rows = []
        evlu_total = pchs_total = 0
        for symbol, pos in sorted(acct.positions.items()):
            if pos.qty <= 0:
                continue
            last = self.fake.market.last(symbol)
            inst = self.fake.universe.get(symbol)
            px = last.price if last else pos.avg_price
            evlu = pos.qty * px
            evlu_total += evlu
            pchs_total += pos.cost
            rows.append(
                {
                    "pdno": symbol,
                    "prdt_name": inst.name if inst else symbol,
                    "hldg_qty": str(pos.qty),
                    "ord_psbl_qty": str(pos.qty - self.fake.exchange.open_sell_qty(acct, symbol)),
                    "pchs_avg_pric": f"{pos.cost / pos.qty:.4f}",
                    "pchs_amt": str(pos.cost),
                    "prpr": str(px),
                    "evlu_amt": str(evlu),
                    "evlu_pfls_amt": str(evlu - pos.cost),
                    "evlu_pfls_rt": f"{(evlu - pos.cost) * 100 / pos.cost:.2f}"
                    if pos.cost
                    else "0.00",
                    "thdt_buyqty": "0",
                    "thdt_sll_qty": "0",
                }
            )
        page, ctx, headers = self._page(rows, params, cont, self.fake.page_sizes["balance"])
        reserved = self.fake.exchange.reserved_cash(acct)
        totals = {
            "dnca_tot_amt": str(acct.cash),
            "nxdy_excc_amt": str(acct.cash),
            "prvs_rcdl_excc_amt": str(acct.cash - reserved),
            "scts_evlu_amt": str(evlu_total),
            "tot_evlu_amt": str(acct.cash + evlu_total),
            "nass_amt": str(acct.cash + evlu_total),
            "pchs_amt_smtl_amt": str(pchs_total),
            "evlu_amt_smtl_amt": str(evlu_total),
            "evlu_pfls_smtl_amt": str(evlu_total - pchs_total),
        }
        body = {
            "rt_cd": "0",
            "msg_cd": "MCA00000",
            "msg1": "정상처리 되었습니다.",
            **ctx,
            "output1": page,
            "output2": [totals],
        }
        return JSONResponse(body, headers=headers)

    def _order_row(self, o: FakeOrder) -> dict[str, str]:
        inst = self.fake.universe.get(o.symbol)
        t = datetime.fromtimestamp(o.ts, KST)
        orig = self.fake.exchange.orders.get(o.orig_odno) if o.orig_odno else None
        cancel_confirmed = sum(
            c.qty
            for c in self.fake.exchange.orders.values()
            if c.is_cancel and c.orig_odno == o.odno
        )
        return {
            "ord_dt": t.strftime("%Y%m%d"),
            "ord_gno_brno": o.org_no,
            "odno": pad(o.odno),
            "orgn_odno": pad(o.orig_odno),
            "ord_dvsn_name": DVSN_NAMES.get(o.dvsn, "지정가"),
            "sll_buy_dvsn_cd": o.side,
            "sll_buy_dvsn_cd_name": "매도" if o.side == "01" else "매수",
            "pdno": o.symbol,
            "prdt_name": inst.name if inst else o.symbol,
            "ord_qty": str(o.qty),
            "ord_unpr": str(o.price),
            "ord_tmd": t.strftime("%H%M%S"),
            "tot_ccld_qty": str(o.filled),
            "avg_prvs": str(o.filled_amount // o.filled) if o.filled else "0",
            "cncl_yn": "Y" if o.is_cancel else "N",
            "tot_ccld_amt": str(o.filled_amount),
            "ord_dvsn_cd": o.dvsn if not o.is_cancel else (orig.dvsn if orig else "00"),
            "cnc_cfrm_qty": str(o.qty if o.is_cancel else cancel_confirmed),
            "rmn_qty": str(0 if o.is_cancel else o.remaining),
            "rjct_qty": str(o.rejected),
            "infm_tmd": "",
            "excg_id_dvsn_Cd": o.venue,
            **kis_market.ORDER_ROW_EXTRAS,
        }

    def _daily_ccld(self, acct: FakeAccountState, params: dict[str, Any], cont: str) -> Response:
        start = str(params.get("INQR_STRT_DT") or "")
        end = str(params.get("INQR_END_DT") or "")
        side = str(params.get("SLL_BUY_DVSN_CD") or "00")
        ccld = str(params.get("CCLD_DVSN") or "00")
        pdno = str(params.get("PDNO") or "")
        odno = str(params.get("ODNO") or "").lstrip("0")
        orders = []
        for o in self.fake.exchange.orders.values():
            if o.account != acct.account:
                continue
            ymd = o.day.strftime("%Y%m%d")
            if (start and ymd < start) or (end and ymd > end):
                continue
            if side != "00" and o.side != side:
                continue
            if pdno and o.symbol != pdno:
                continue
            if odno and str(o.odno) != odno:
                continue
            if ccld == "01" and o.filled == 0:
                continue
            if ccld == "02" and (o.is_cancel or o.remaining == 0):
                continue
            orders.append(o)
        orders.sort(key=lambda o: o.odno, reverse=str(params.get("INQR_DVSN") or "00") == "00")
        rows = [self._order_row(o) for o in orders]
        page, ctx, headers = self._page(rows, params, cont, self.fake.page_sizes["ccld"])
        total_qty = sum(o.qty for o in orders if not o.is_cancel)
        filled = sum(o.filled for o in orders)
        amount = sum(o.filled_amount for o in orders)
        totals = {
            "tot_ord_qty": str(total_qty),
            "tot_ccld_qty": str(filled),
            "tot_ccld_amt": str(amount),
            "prsm_tlex_smtl": "0",
            "pchs_avg_pric": str(amount // filled) if filled else "0",
        }
        body = {
            "rt_cd": "0",
            "msg_cd": "MCA00000",
            "msg1": "정상처리 되었습니다.",
            **ctx,
            "output1": page,
            "output2": totals,
        }
        return JSONResponse(body, headers=headers)

    def _psbl(self, acct: FakeAccountState, params: dict[str, Any], cont: str) -> Response:
        rows = []
        for o in sorted(self.fake.exchange.orders.values(), key=lambda o: o.odno):
            if o.account != acct.account or not o.working:
                continue
            rows.append(
                {
                    "ord_gno_brno": o.org_no,
                    "odno": pad(o.odno),
                    "orgn_odno": pad(o.orig_odno),
                    "pdno": o.symbol,
                    "ord_qty": str(o.qty),
                    "ord_unpr": str(o.price),
                    "ord_tmd": datetime.fromtimestamp(o.ts, KST).strftime("%H%M%S"),
                    "tot_ccld_qty": str(o.filled),
                    "tot_ccld_amt": str(o.filled_amount),
                    "psbl_qty": str(o.remaining),
                    "sll_buy_dvsn_cd": o.side,
                    "ord_dvsn_cd": o.dvsn,
                    "excg_id_dvsn_cd": "KRX",
                }
            )
        page, ctx, headers = self._page(rows, params, cont, self.fake.page_sizes["psbl"])
        body = {
            "rt_cd": "0",
            "msg_cd": "MCA00000",
            "msg1": "정상처리 되었습니다.",
            **ctx,
            "output": page,
        }
        return JSONResponse(body, headers=headers)

    def _price(self, params: dict[str, Any]) -> Response:
        symbol = str(params.get("FID_INPUT_ISCD") or params.get("fid_input_iscd") or "")
        inst = self.fake.market.instrument(symbol)
        if inst is None:
            return biz("APBK0656", "해당 종목정보가 없습니다.")
        last = self.fake.market.last(symbol)
        assert last is not None
        lower, upper = krx.price_limits(inst.base_price, inst.kind)
        stats = self.fake.exchange.day_stats.get(symbol, {})
        diff = last.price - inst.base_price
        out = {
            "stck_prpr": str(last.price),
            "prdy_vrss": str(diff),
            "prdy_vrss_sign": "2" if diff > 0 else "5" if diff < 0 else "3",
            "prdy_ctrt": f"{diff * 100 / inst.base_price:.2f}",
            "acml_vol": str(last.cum_volume),
            "acml_tr_pbmn": str(stats.get("amount", 0)),
            "stck_oprc": str(stats.get("open", last.price)),
            "stck_hgpr": str(stats.get("high", last.price)),
            "stck_lwpr": str(stats.get("low", last.price)),
            "stck_mxpr": str(upper),
            "stck_llam": str(lower),
            "stck_sdpr": str(inst.base_price),
            "aspr_unit": str(krx.tick_size(last.price, inst.kind)),
        }
        return JSONResponse(
            {"rt_cd": "0", "msg_cd": "MCA00000", "msg1": "정상처리 되었습니다.", "output": out}
        )
