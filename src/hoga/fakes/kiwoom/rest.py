"""The Kiwoom fake's REST side: tokens (``au10001``/``au10002``) and ``/api/dostk/*``
routed by path and ``api-id`` - orders, paged reports, deposit and quotes - as kiwoom.md
section A describes them (see ``server.py``).

Every API request passes the same gate: latency and one-shot faults before processing, the
token, the key's request rate (1700), path and ``api-id``; orders may then meet the
after-booking faults (``inject``, ``faults.plan``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from hoga.domain import krx
from hoga.domain.orders import Side
from hoga.domain.ratelimit import SlidingWindow
from hoga.fakes.common import drop_connection, json_body
from hoga.fakes.kiwoom import market as kiwoom_market
from hoga.fakes.kiwoom.exchange import FakeBook, FakeOrder, Refusal
from hoga.fakes.kiwoom.formats import change, padded, rate, reply, signed, ymdhms

if TYPE_CHECKING:
    from hoga.fakes.kiwoom.server import KiwoomFake

ORDER: Final = "/api/dostk/ordr"
ACCOUNT: Final = kiwoom_market.ACCOUNT
STOCK_INFO: Final = kiwoom_market.STOCK_INFO
API_PATHS: Final = {
    "kt10000": ORDER,
    "kt10001": ORDER,
    "kt10002": ORDER,
    "kt10003": ORDER,
    "kt00001": ACCOUNT,
    "kt00018": ACCOUNT,
    "ka10075": ACCOUNT,
    "ka10076": ACCOUNT,
    "ka00001": ACCOUNT,
    "ka10001": STOCK_INFO,
    **kiwoom_market.PATHS,
}
ORDER_APIS: Final = frozenset({"kt10000", "kt10001", "kt10002", "kt10003"})
FAULT_KINDS: Final = frozenset(
    {
        "http500",
        "http500_after",
        "drop_before",
        "drop",
        "timeout",
        "truncated",
        "malformed",
        "throttle",
        "token_invalid",
    }
)
_PRE: Final = frozenset({"http500", "drop_before", "throttle", "token_invalid"})
_POST: Final = frozenset({"http500_after", "drop", "timeout", "truncated", "malformed"})
# The fault plan's after-booking faults, as this fake's one-shot kinds.
_PLANNED: Final = {"drop": "drop", "truncate": "truncated", "hang": "timeout"}


@dataclass
class Token:
    """An access token the fake issued."""

    value: str
    app_key: str
    env: str
    expires_at: float
    revoked: bool = False


class KiwoomRestApi:
    """The REST endpoints of one ``KiwoomFake``; its state stays on the fake."""

    def __init__(self, fake: KiwoomFake) -> None:
        self.fake = fake

    def routes(self) -> list[Route]:
        return [
            Route("/oauth2/token", self._token, methods=["POST"]),
            Route("/oauth2/revoke", self._revoke, methods=["POST"]),
            Route("/api/dostk/{name}", self._api, methods=["POST"]),
        ]

    def _auth_error(self, code: str, text: str, api_id: str) -> Response:
        if self.fake.faults.auth_envelope == "direct":
            body: dict[str, Any] = {"return_code": int(code), "return_msg": text}
        else:
            body = {"return_code": 3, "return_msg": f"인증에 실패했습니다[{code}:{text}]"}
        return reply(body, api_id)

    def _input_error(self, code: str, text: str, api_id: str) -> Response:
        return reply({"return_code": 2, "return_msg": f"{text}[{code}:{text}]"}, api_id)

    def _throttled(self, api_id: str) -> Response:
        body = {
            "return_code": 5,
            "return_msg": f"허용된 요청 개수를 초과하였습니다[1700:허용된 요청 개수를 초과하였습니다. API ID={api_id}]",
        }
        status = 429 if self.fake.faults.throttle_envelope == "429" else 200
        return reply(body, api_id, status=status)

    def _take(self, kinds: frozenset[str], api_id: str) -> str | None:
        for fault in self.fake.one_shots:
            if fault.kind in kinds and (fault.api_ids is None or api_id in fault.api_ids):
                fault.remaining -= 1
                if fault.remaining <= 0:
                    self.fake.one_shots.remove(fault)
                return fault.kind
        return None

    def _admit(self, key: str, api_id: str, arrived: float) -> bool:
        """Count a request of ``key``; False if it is over the key's rate."""
        st = self.fake.stats[key]
        st.requests += 1
        st.api_ids[api_id] += 1
        lim = self.fake.limits.get(key)
        if lim is None:
            lim = (
                SlidingWindow(int(self.fake.rate), self.fake.window)
                if self.fake.rate >= 1
                else SlidingWindow(1, self.fake.window / self.fake.rate)
            )
            self.fake.limits[key] = lim
        if not lim.try_acquire(arrived):
            st.rate_limited += 1
            return False
        st.times.append(arrived)
        return True

    async def _token(self, request: Request) -> Response:
        arrived = asyncio.get_running_loop().time()
        self.fake.requests += 1
        api_id = "au10001"
        body = await json_body(request)
        if body is None:
            return self._input_error("1517", "입력 값 형식 오류입니다", api_id)
        grant = body.get("grant_type")
        if not grant:
            return self._auth_error("8011", "grant_type이 없습니다", api_id)
        if grant != "client_credentials":
            return self._auth_error("8012", "grant_type이 올바르지 않습니다", api_id)
        appkey, secretkey = body.get("appkey"), body.get("secretkey")
        if not appkey or not secretkey:
            return self._auth_error("8020", "appkey 또는 secretkey가 없습니다", api_id)
        book = self.fake.exchange.by_key(str(appkey))
        if book is None:
            return self._auth_error("8001", "App Key와 Secret Key 검증에 실패했습니다", api_id)
        if not self._admit(book.app_key, api_id, arrived):
            return self._throttled(api_id)
        if not secrets.compare_digest(book.app_secret, str(secretkey)):
            return self._auth_error("8002", "App Key와 Secret Key 검증에 실패했습니다", api_id)
        if book.env != self.fake.env:
            return self._auth_error(
                "8030", "실전/모의투자 구분이 일치하지 않습니다 (appkey)", api_id
            )
        await self.fake.faults.delay()
        old = self.fake.current.get(book.app_key)
        if old is not None and old in self.fake.tokens:
            # One token per app key: the previous one stops working now (observed).
            self.fake.tokens[old].revoked = True
        prefix = "R" if self.fake.env == "real" else "M"
        value = prefix + secrets.token_urlsafe(48)
        expires = self.fake.clock.time() + self.fake.token_ttl
        self.fake.tokens[value] = Token(value, book.app_key, self.fake.env, expires)
        self.fake.current[book.app_key] = value
        self.fake.stats[book.app_key].tokens_issued += 1
        return reply(
            {
                "expires_dt": ymdhms(expires),
                "token_type": "bearer",
                "token": value,
                "return_code": 0,
                "return_msg": "정상적으로 처리되었습니다",
            },
            api_id,
        )

    async def _revoke(self, request: Request) -> Response:
        api_id = "au10002"
        self.fake.requests += 1
        body = await json_body(request) or {}
        tok = self.fake.tokens.get(str(body.get("token") or ""))
        book = self.fake.exchange.by_key(str(body.get("appkey") or ""))
        if book is None or not secrets.compare_digest(
            book.app_secret, str(body.get("secretkey") or "")
        ):
            return self._auth_error("8001", "App Key와 Secret Key 검증에 실패했습니다", api_id)
        if tok is None or tok.app_key != book.app_key:
            return self._auth_error("8015", "토큰 폐기에 실패했습니다", api_id)
        tok.revoked = True
        return reply({"return_code": 0, "return_msg": "정상적으로 처리되었습니다"}, api_id)

    def token_of(self, header: str) -> Token | tuple[str, str]:
        if not header.lower().startswith("bearer "):
            return ("1514", "authorization 헤더가 올바르지 않습니다")
        value = header[7:].strip()
        tok = self.fake.tokens.get(value)
        if tok is None:
            other = "M" if self.fake.env == "real" else "R"
            if value.startswith(other):
                return ("8031", "실전/모의투자 구분이 일치하지 않습니다 (token)")
            return ("8005", "Token이 유효하지 않습니다")
        if tok.revoked or tok.expires_at <= self.fake.clock.time():
            return ("8005", "Token이 유효하지 않습니다")
        return tok

    async def _api(self, request: Request) -> Response:
        arrived = asyncio.get_running_loop().time()
        self.fake.requests += 1
        path = request.url.path
        api_id = request.headers.get("api-id", "").strip()
        if not api_id:
            return self._input_error("1501", "API ID가 없습니다", api_id)
        if api_id not in API_PATHS:
            return self._input_error("1505", f"존재하지 않는 API ID입니다 ({api_id[:10]})", api_id)
        if API_PATHS[api_id] != path:
            return self._input_error("1504", "해당 URI에서 지원하지 않는 API ID입니다", api_id)
        tok = self.token_of(request.headers.get("authorization", ""))
        if isinstance(tok, tuple):
            code, text = tok
            if code.startswith("15"):
                return self._input_error(code, text, api_id)
            return self._auth_error(code, text, api_id)
        key = tok.app_key
        if not self._admit(key, api_id, arrived):
            return self._throttled(api_id)
        body = await json_body(request)
        if body is None:
            return self._input_error("1517", "입력 값 형식 오류입니다", api_id)
        await self.fake.faults.delay()
        pre = self._take(_PRE, api_id)
        if pre is None and api_id in ORDER_APIS and self.fake.faults.plan.before() == "http500":
            pre = "http500"
        if pre == "http500" or (self.fake.faults.random_500(self.fake.rng)):
            return Response("<html><body>500 Internal Server Error</body></html>", 500)
        if pre == "drop_before":
            drop_connection(request)
            return Response(b"", 200)
        if pre == "throttle":
            self.fake.stats[key].forced_throttles += 1
            return self._throttled(api_id)
        if pre == "token_invalid":
            tok.revoked = True
            return self._auth_error("8005", "Token이 유효하지 않습니다", api_id)
        book = self.fake.exchange.by_key(key)
        if book is None:
            return self._auth_error("8001", "App Key와 Secret Key 검증에 실패했습니다", api_id)
        booked = False
        try:
            answer = self._dispatch(api_id, book, body, request.headers)
            booked = api_id in ORDER_APIS
        except Refusal as e:
            answer = reply({"return_code": 2, "return_msg": e.return_msg}, api_id)
        post = self._take(_POST, api_id)
        if post is None and booked:
            post = _PLANNED.get(self.fake.faults.plan.after() or "")
        if post is None:
            return answer
        if post == "http500_after":
            return Response("<html><body>500 Internal Server Error</body></html>", 500)
        if post == "drop":
            drop_connection(request)
            return answer
        if post == "timeout":
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.fake.release.wait(), self.fake.faults.hold_seconds)
            return answer
        raw = bytes(answer.body)
        if post == "truncated":
            return Response(raw[: max(1, len(raw) // 2)], 200, media_type="application/json")
        return Response(b"<html>502 Bad Gateway</html>", 200, media_type="text/html")

    def _dispatch(
        self, api_id: str, book: FakeBook, body: dict[str, Any], headers: Any
    ) -> Response:
        if api_id in ORDER_APIS:
            return self._order(api_id, book, body)
        if api_id in kiwoom_market.PATHS:
            return kiwoom_market.answer(self.fake, api_id, book, body, headers)
        if api_id == "ka00001":
            return reply(
                {
                    "acctNo": book.account_no,
                    "return_code": 0,
                    "return_msg": "조회가 완료되었습니다",
                },
                api_id,
            )
        if api_id == "kt00001":
            return self._deposit(api_id, book)
        if api_id == "ka10001":
            return self._quote(api_id, body)
        if api_id == "kt00018":
            rows = self.fake.exchange.holding_rows(book)
            return self.paged(api_id, "acnt_evlt_remn_indv_tot", rows, headers, self._totals(book))
        if api_id == "ka10075":
            rows = _narrowed(self.fake.exchange.open_rows(book), body, "trde_tp", "all_stk_tp")
            return self.paged(api_id, "oso", rows, headers, {})
        if api_id == "ka10076":
            rows = _narrowed(self.fake.exchange.executed_rows(book), body, "sell_tp", "qry_tp")
            return self.paged(api_id, "cntr", rows, headers, {})
        raise Refusal("1505", f"존재하지 않는 API ID입니다 ({api_id})", business=False)

    def paged(
        self,
        api_id: str,
        list_key: str,
        rows: list[dict[str, str]],
        headers: Any,
        extra: dict[str, Any],
    ) -> Response:
        offset = 0
        if headers.get("cont-yn", "").upper() == "Y":
            key = headers.get("next-key", "")
            if not key.isdigit():
                raise Refusal("1517", "연속조회키가 올바르지 않습니다", business=False)
            offset = int(key)
        page = rows[offset : offset + self.fake.page_size]
        more = offset + self.fake.page_size < len(rows)
        body = {
            **extra,
            list_key: page,
            "return_code": 0,
            "return_msg": "조회가 완료되었습니다",
        }
        return reply(
            body,
            api_id,
            cont="Y" if more else "N",
            next_key=str(offset + self.fake.page_size) if more else "",
        )

    def _totals(self, book: FakeBook) -> dict[str, str]:
        cost = sum(p.cost for p in book.positions.values())
        value = 0
        for symbol, pos in book.positions.items():
            tick = self.fake.market.last(symbol)
            value += pos.qty * (tick.price if tick else 0)
        return {
            "tot_pur_amt": padded(cost, 15),
            "tot_evlt_amt": padded(value, 15),
            "tot_evlt_pl": padded(value - cost, 15),
            "tot_prft_rt": rate(value - cost, cost),
            "prsm_dpst_aset_amt": padded(book.cash + value, 15),
            "tot_loan_amt": padded(0, 15),
        }

    def _deposit(self, api_id: str, book: FakeBook) -> Response:
        orderable = self.fake.exchange.orderable(book)
        return reply(
            {
                "entr": padded(book.cash, 15),
                "profa_ch": padded(0, 15),
                "ord_alow_amt": padded(orderable, 15),
                "pymn_alow_amt": padded(orderable, 15),
                "d1_entra": padded(book.cash, 15),
                "d2_entra": padded(book.cash, 15),
                "return_code": 0,
                "return_msg": "조회가 완료되었습니다",
            },
            api_id,
        )

    def _quote(self, api_id: str, body: dict[str, Any]) -> Response:
        symbol = _field(body, "stk_cd")
        inst = self.fake.market.instrument(symbol)
        if inst is None:
            raise Refusal("1902", "종목정보가 없습니다", business=False)
        tick = self.fake.market.last(symbol)
        base = inst.base_price
        price = tick.price if tick else base
        lower, upper = krx.price_limits(base, inst.kind)
        return reply(
            {
                "stk_cd": symbol,
                "stk_nm": inst.name,
                "cur_prc": signed(price, base),
                "pred_pre": change(price - base),
                "flu_rt": rate(price - base, base),
                "open_pric": signed(price, base),
                "high_pric": signed(price, base),
                "low_pric": signed(price, base),
                "upl_pric": signed(upper, base),
                "lst_pric": signed(lower, base),
                "base_pric": str(base),
                "trde_qty": str(tick.cum_volume if tick else 0),
                "return_code": 0,
                "return_msg": "조회가 완료되었습니다",
            },
            api_id,
        )

    def _order(self, api_id: str, book: FakeBook, body: dict[str, Any]) -> Response:
        required = {
            "kt10000": ("dmst_stex_tp", "stk_cd", "ord_qty", "trde_tp"),
            "kt10001": ("dmst_stex_tp", "stk_cd", "ord_qty", "trde_tp"),
            "kt10002": ("dmst_stex_tp", "orig_ord_no", "stk_cd", "mdfy_qty", "mdfy_uv"),
            "kt10003": ("dmst_stex_tp", "orig_ord_no", "stk_cd", "cncl_qty"),
        }[api_id]
        for name in required:
            if not _field(body, name):
                raise Refusal(
                    "1511", f"필수 입력 값에 값이 존재하지 않습니다 ({name})", business=False
                )
        venue = _field(body, "dmst_stex_tp")
        if venue not in ("KRX", "NXT", "SOR") or (venue != "KRX" and book.env != "real"):
            raise Refusal(
                "1901", "시장 코드값이 존재하지 않습니다 (모의투자는 KRX만)", business=False
            )
        symbol = _field(body, "stk_cd")
        if not krx.is_valid_symbol(symbol):
            raise Refusal("1902", "종목정보가 없습니다", business=False)
        if api_id in ("kt10000", "kt10001"):
            side = Side.BUY if api_id == "kt10000" else Side.SELL
            order = self.fake.exchange.place(
                book,
                side,
                symbol,
                _number(body, "ord_qty"),
                _number(body, "ord_uv") if _field(body, "ord_uv") else 0,
                _field(body, "trde_tp"),
                venue,
            )
            word = "매수" if side == Side.BUY else "매도"
            return reply(
                {
                    "ord_no": order.ord_no,
                    "dmst_stex_tp": venue,
                    "return_code": 0,
                    "return_msg": f"{word}주문이 완료되었습니다.",
                },
                api_id,
            )
        orig = _field(body, "orig_ord_no")
        target = self.fake.exchange.orders.get(orig)
        if target is not None and target.account_no == book.account_no and target.venue != venue:
            # A modify or cancel must go to the market that holds the order.
            raise Refusal("1901", f"원주문의 거래소({target.venue})와 다릅니다 ({venue})")
        if api_id == "kt10002":
            order = self.fake.exchange.modify(
                book, orig, symbol, _number(body, "mdfy_qty"), _number(body, "mdfy_uv")
            )
            return reply(
                {
                    "ord_no": order.ord_no,
                    "base_orig_ord_no": orig,
                    "mdfy_qty": padded(order.qty, 12),
                    "dmst_stex_tp": "KRX",
                    "return_code": 0,
                    "return_msg": "정정주문이 완료되었습니다.",
                },
                api_id,
            )
        order = self.fake.exchange.cancel(book, orig, symbol, _number(body, "cncl_qty"))
        return reply(
            {
                "ord_no": order.ord_no,
                "base_orig_ord_no": orig,
                "cncl_qty": padded(order.qty, 12),
                "return_code": 0,
                "return_msg": "취소주문이 완료되었습니다.",
            },
            api_id,
        )


def by_no(order: FakeOrder) -> str:
    return order.ord_no


def order_view(o: FakeOrder) -> dict[str, Any]:
    return {
        "account": o.account_no,
        "order_no": o.ord_no,
        "orig_order_no": o.orig or None,
        "kind": o.kind,
        "symbol": o.symbol,
        "side": o.side.value,
        "type": "market" if o.market else "limit",
        "qty": o.qty,
        "price": o.price,
        "filled": o.filled,
        "filled_amount": o.amount,
        "remaining": o.remaining if o.kind != "cancel" else 0,
        "day": o.day.isoformat(),
        "ts": o.ts,
    }


def _narrowed(
    rows: list[dict[str, Any]], body: dict[str, Any], side_key: str, one_stock_key: str
) -> list[dict[str, Any]]:
    """The order-list filters ka10075 and ka10076 share under different field names: a side
    (``1`` sell, ``2`` buy) and, when the flag says so, one stock (``stk_cd``)."""
    if _field(body, side_key) in ("1", "2"):
        word = "매도" if body[side_key] == "1" else "매수"
        rows = [r for r in rows if word in r["io_tp_nm"]]
    if _field(body, one_stock_key) == "1":
        rows = [r for r in rows if r["stk_cd"] == _field(body, "stk_cd")]
    return rows


def _field(body: dict[str, Any], name: str) -> str:
    value = body.get(name)
    if value is not None and not isinstance(value, str):
        # Kiwoom takes every field as a string: a JSON number is a format error.
        raise Refusal("1517", f"입력 값 형식 오류입니다 ({name})", business=False)
    return value.strip() if isinstance(value, str) else ""


def _number(body: dict[str, Any], name: str) -> int:
    text = _field(body, name)
    if not text.isdigit():
        raise Refusal("1517", f"입력 값 형식 오류입니다 ({name})", business=False)
    return int(text)


def loads(text: str) -> dict[str, Any] | None:
    try:
        msg = json.loads(text)
    except ValueError:
        return None
    return msg if isinstance(msg, dict) else None
