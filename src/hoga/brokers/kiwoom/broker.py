"""The Kiwoom REST adapter: hoga's ``Broker`` protocol over Kiwoom's 2025 REST API.

Commands (kiwoom.md A4), all ``POST /api/dostk/ordr``: ``kt10000`` buy, ``kt10001`` sell,
``kt10002`` modify, ``kt10003`` cancel - on KRX (``dmst_stex_tp``), ``trde_tp`` 0 limit / 3
market. Modify and cancel answer with a new order number; ``tracking.OrderTracker`` keeps the
chain so events and reports always name the order hoga placed.

Reports: ``ka10075`` (open orders) and ``ka10076`` (orders with executions) for order and fill
reports - both cover *today only*, so reports for an earlier day are empty; ``kt00018`` for
positions; ``kt00001`` for cash; ``ka00001`` to check that the linked account number is the
app key's account (checked before the first order of an account, and by ``test_connection``).

Execution notices: the account's app key's realtime session registers types ``00`` (orders
and executions) and ``04`` (balance) - both delivered without items - and ``00`` frames become
``OrderUpdate``/``FillEvent`` for the sink, in order, through one delivery task. ``04`` frames
are kept as the latest pushed holdings per account (``pushed_balance``); they carry no order
state, so they produce no events.

Every call of an app key - orders, reports, tokens - goes through that key's client
(``client.KiwoomClient``): one strict sliding-window budget (``rate`` per ``window``; Kiwoom's
real limit is unverified, kiwoom.md A8, so it is a setting: ``HOGA_KIWOOM_RATE``), one token.
A command that fails before reaching Kiwoom, or that Kiwoom refused, is ``BrokerRejected``;
throttled (1700/429) is ``BrokerNotProcessed``; anything that may have reached the matching
engine without an answer is ``BrokerOutcomeUnknown`` and is never resent.
"""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import date, timedelta
from typing import Any, Final

from hoga.brokers.base import (
    AccountRef,
    Balance,
    BrokerAuthError,
    BrokerError,
    BrokerLimits,
    BrokerNotProcessed,
    BrokerOutcomeUnknown,
    BrokerRejected,
    FillReport,
    ModifyAck,
    ModifyRequest,
    OrderStatusReport,
    PlaceAck,
    PlaceRequest,
    PositionReport,
    ReportsUnavailable,
    TokenStore,
)
from hoga.brokers.events import EventPump, PumpedEvents
from hoga.brokers.kiwoom.client import (
    ACCOUNT_PATH,
    ORDER_PATH,
    STOCK_INFO_PATH,
    ClientOptions,
    KiwoomClient,
    KiwoomWire,
)
from hoga.brokers.kiwoom.errors import describe
from hoga.brokers.kiwoom.realtime import RealtimeConnection, RealtimeOptions
from hoga.brokers.kiwoom.tracking import OrderTracker, ReportRow
from hoga.brokers.kiwoom.wire import (
    WireError,
    day_key,
    fmt_qty,
    to_code,
    to_int,
    to_price,
    to_qty,
    to_text,
    trde_tp,
)
from hoga.domain.clock import Clock
from hoga.domain.market import Tick
from hoga.domain.orders import Side
from hoga.domain.secret import mask

log = logging.getLogger(__name__)

EXEC_GROUP: Final = "1"
EXEC_TYPES: Final = ("00", "04")
VENUES: Final = ("KRX", "NXT", "SOR")


def _digits(text: str) -> str:
    return "".join(ch for ch in text if ch.isdigit())


def _same_account(linked: str, wire: str) -> bool:
    """Account numbers agree in their digits (``50123456-01`` is ``5012345601``); a longer form
    with a product-code suffix still matches its 8+ digit prefix."""
    a, b = _digits(linked), _digits(wire)
    if a == b:
        return True
    short, long_ = sorted((a, b), key=len)
    return len(short) >= 8 and long_.startswith(short)


class KiwoomBroker(PumpedEvents):
    """Kiwoom REST (real and mock) for any number of accounts; see the module docstring."""

    name = "kiwoom"

    def __init__(
        self,
        *,
        clock: Clock,
        token_store: TokenStore,
        options: ClientOptions,
        realtime: RealtimeOptions | None = None,
        report_cache_seconds: float = 2.0,
    ) -> None:
        self.options = options
        self._clock = clock
        self.wire = KiwoomWire(clock=clock, store=token_store, options=options, realtime=realtime)
        self.report_cache_seconds = report_cache_seconds
        self._accounts: dict[int, AccountRef] = {}
        self._trackers: dict[int, OrderTracker] = {}
        self._verified: set[int] = set()
        self._pushed: dict[int, dict[str, dict[str, Any]]] = {}
        self._synced: dict[tuple[int, str], tuple[float, list[OrderStatusReport], list[FillReport]]]
        self._synced = {}
        self._events = EventPump("kiwoom")
        self._hooked: set[int] = set()
        self._day: date | None = None

    # --- lifecycle

    def limits(self, account: AccountRef) -> BrokerLimits:
        return BrokerLimits(rate=self.options.rate, window=self.options.window)

    async def start(self) -> None:
        await self._events.start()

    async def stop(self) -> None:
        await self._events.stop()
        await self.wire.close()
        self._hooked.clear()

    # --- accounts

    def client(self, account: AccountRef) -> KiwoomClient:
        """The shared client of the account's app key (raises if the key is missing)."""
        if not account.app_key or not account.app_secret:
            raise BrokerAuthError(
                describe("no_credentials", "앱키와 시크릿키가 없습니다 (app key/secret missing)"),
                "kiwoom.no_credentials",
            )
        client = self.wire.client(
            account.env, account.app_key, account.app_secret, account.base_url, account.ws_url
        )
        client.tokens.adopt(account.account_id)
        return client

    def realtime_state(self, account_id: int) -> bool | None:
        """Whether the account's app-key realtime session (execution notices) is logged in;
        None when the account is not attached. Read by the server's broker health."""
        account = self._accounts.get(account_id)
        if account is None or not account.app_key or not account.app_secret:
            return None
        client = self.wire.client(
            account.env, account.app_key, account.app_secret, account.base_url, account.ws_url
        )
        return client.realtime is not None and client.realtime.connected.is_set()

    def realtime(self, client: KiwoomClient) -> RealtimeConnection:
        """The app key's realtime session, with this adapter listening for types 00/04."""
        rt = self.wire.realtime(client)
        if id(rt) not in self._hooked:
            self._hooked.add(id(rt))
            rt.on_real(EXEC_TYPES, lambda kind, item, values: self._on_frame(client, kind, values))
        return rt

    def _tracker(self, account: AccountRef | int) -> OrderTracker:
        account_id = account if isinstance(account, int) else account.account_id
        tracker = self._trackers.get(account_id)
        if tracker is None:
            tracker = self._trackers[account_id] = OrderTracker(account_id, self._clock)
        today = tracker.today()
        if self._day != today:
            # Order numbers restart daily; chains of older days are of no further use.
            self._day = today
            keep = {day_key(today), day_key(today - timedelta(days=1))}
            for t in self._trackers.values():
                t.prune(keep)
            self._synced.clear()
        return tracker

    async def attach(self, account: AccountRef) -> None:
        self._accounts[account.account_id] = account
        client = self.client(account)
        rt = self.realtime(client)
        await rt.register(EXEC_GROUP, [""], EXEC_TYPES)

    async def detach(self, account_id: int) -> None:
        account = self._accounts.pop(account_id, None)
        self._verified.discard(account_id)
        if account is None or not account.app_key or not account.app_secret:
            return
        client = self.client(account)
        client.tokens.account_ids.discard(account_id)
        others = [a for a in self._accounts.values() if self._same_key(a, account)]
        if not others and client.realtime is not None:
            await client.realtime.drop_group(EXEC_GROUP)

    @staticmethod
    def _same_key(a: AccountRef, b: AccountRef) -> bool:
        return (a.app_key, a.base_url, a.env) == (b.app_key, b.base_url, b.env)

    def _accounts_of(self, client: KiwoomClient) -> list[AccountRef]:
        return [
            a
            for a in self._accounts.values()
            if a.app_key
            and a.app_secret
            and self.wire.client(a.env, a.app_key, a.app_secret, a.base_url, a.ws_url) is client
        ]

    def _on_frame(self, client: KiwoomClient, kind: str, values: dict[str, Any]) -> None:
        accounts = self._accounts_of(client)
        if not accounts:
            return
        number = _digits(to_text(values.get("9201")))
        if number:
            # A notice for an account hoga does not know under this key (an order from the
            # HTS, or a linked number that is not the key's) is not ours to deliver.
            chosen = [a for a in accounts if _same_account(a.account_no, number)]
        else:
            chosen = accounts[:1] if len(accounts) == 1 else []
        for account in chosen:
            if kind == "00":
                self._emit_all(account.account_id, self._tracker(account).on_order_frame(values))
            elif kind == "04":
                try:
                    symbol = to_code(values.get("9001"))
                except WireError:
                    continue
                self._pushed.setdefault(account.account_id, {})[symbol] = dict(values)

    def pushed_balance(self, account_id: int) -> dict[str, dict[str, Any]]:
        """The latest type-04 (balance) frame per symbol pushed for an account."""
        return dict(self._pushed.get(account_id, {}))

    async def _account_numbers(self, client: KiwoomClient) -> list[str]:
        reply = await client.call("ka00001", ACCOUNT_PATH, {})
        raw = reply.body.get("acctNo")
        values = raw if isinstance(raw, list) else str(raw or "").replace(",", ";").split(";")
        return [_digits(str(v)) for v in values if _digits(str(v))]

    async def _check_account(self, account: AccountRef, client: KiwoomClient) -> None:
        if account.account_id not in self._verified:
            await self._verify_account(account, client, BrokerRejected)

    async def _verify_account(
        self, account: AccountRef, client: KiwoomClient, refusal: type[BrokerError]
    ) -> None:
        """Check that the account number belongs to the app key, raising ``refusal`` if not:
        a command refuses the order, a connection test reports wrong credentials."""
        numbers = await self._account_numbers(client)
        mine = _digits(account.account_no)
        if not any(_same_account(mine, n) for n in numbers):
            theirs = ", ".join(mask(n) for n in numbers) or "없음"
            raise refusal(
                describe(
                    "account_mismatch",
                    f"등록한 계좌번호({mask(mine)})가 이 앱키의 계좌({theirs})와 다릅니다 "
                    "(the account number does not belong to this app key)",
                ),
                "kiwoom.account_mismatch",
            )
        self._verified.add(account.account_id)

    async def _before_command(self, account: AccountRef) -> KiwoomClient:
        """Everything a command needs before it is sent; failures mean nothing was sent."""
        try:
            client = self.client(account)
            await client.tokens.get()
            await self._check_account(account, client)
        except (BrokerRejected, BrokerNotProcessed):
            raise
        except BrokerError as e:
            raise BrokerRejected(
                f"{e.message} - 주문은 전송되지 않았습니다 (not sent)", e.code
            ) from None
        return client

    # --- commands

    async def place(self, account: AccountRef, request: PlaceRequest) -> PlaceAck:
        client = await self._before_command(account)
        tracker = self._tracker(account)
        priced = request.type.needs_price
        if priced and (request.price is None or request.price <= 0):
            raise BrokerRejected(
                describe("no_price", "지정가 주문에 가격이 없습니다"), "kiwoom.no_price"
            )
        code = trde_tp(request.type, request.tif)
        if code is None:
            raise BrokerRejected(
                f"키움에 없는 매매구분입니다 ({request.type}/{request.tif}) (no such trde_tp)",
                "kiwoom.bad_order_type",
            )
        body = {
            "dmst_stex_tp": request.venue if request.venue in VENUES else "KRX",
            "stk_cd": request.symbol,
            "ord_qty": fmt_qty(request.qty),
            "ord_uv": fmt_qty(request.price) if priced and request.price else "",
            "trde_tp": code,
            "cond_uv": "",
        }
        api_id = "kt10000" if request.side == Side.BUY else "kt10001"
        pending = tracker.expect(request)
        try:
            reply = await client.call(api_id, ORDER_PATH, body, order=True)
        except (BrokerOutcomeUnknown, asyncio.CancelledError):
            self._emit_all(account.account_id, tracker.unanswered(pending))
            raise
        except BrokerError as e:
            tracker.forget(pending)
            raise _not_executed(e) from None
        except BaseException:
            tracker.forget(pending)
            raise
        ord_no = to_text(reply.body.get("ord_no"))
        if not ord_no:
            self._emit_all(account.account_id, tracker.unanswered(pending))
            raise BrokerOutcomeUnknown(
                describe(api_id, "주문번호가 없는 응답; 처리 여부 확인 중 (answer without ord_no)"),
                "kiwoom.bad_response",
            )
        chain = tracker.placed(pending, ord_no)
        return PlaceAck(broker_order_id=chain.order_id)

    async def modify(self, account: AccountRef, request: ModifyRequest) -> ModifyAck:
        """Modify an order: fewer shares through a partial ``kt10003`` (``cncl_qty`` =
        ``reduce_by``), a new price through ``kt10002`` of all that remains. Kiwoom gives each
        its own new number (kiwoom.md A4); the tracker follows the chain, so later events and
        reports still name the order hoga placed (the returned ``broker_order_id``).
        """
        if request.new_qty <= 0 or request.new_price <= 0 or request.reduce_by < 0:
            raise BrokerRejected(
                "정정 수량과 가격을 확인하세요 (bad modify quantity or price)",
                "kiwoom.bad_modify",
            )
        client = await self._before_command(account)
        tracker = self._tracker(account)
        day, head, chain = await tracker.resolve(
            request.broker_order_id, lambda today: self._sync(account, today)
        )
        venue = request.venue if request.venue in VENUES else "KRX"
        modify_no: str | None = None
        if request.reduce_by > 0:
            body = {
                "dmst_stex_tp": venue,
                "orig_ord_no": head,
                "stk_cd": request.symbol,
                "cncl_qty": fmt_qty(request.reduce_by),
            }
            cancel_no = await self._command(client, "kt10003", body)
            if chain is not None:
                tracker.reduced(chain, cancel_no, request.reduce_by)
        if request.reprice:
            remaining = (
                max(chain.remaining, 1) if chain is not None else request.new_qty
            )  # the fake and Kiwoom take the quantity to re-price: all that remains
            body = {
                "dmst_stex_tp": venue,
                "orig_ord_no": head,
                "stk_cd": request.symbol,
                "mdfy_qty": fmt_qty(remaining),
                "mdfy_uv": fmt_qty(request.new_price),
                "mdfy_cond_uv": "",
            }
            modify_no = await self._command(client, "kt10002", body)
            if chain is not None:
                tracker.derived(chain, modify_no, modify=True, price=request.new_price)
        root = chain.order_id if chain is not None else request.broker_order_id
        return ModifyAck(
            broker_order_id=root, modify_order_no=f"{day}-{modify_no}" if modify_no else None
        )

    async def _command(self, client: KiwoomClient, api_id: str, body: dict[str, str]) -> str:
        """Send a modify or cancel; the new order number Kiwoom gave it."""
        try:
            reply = await client.call(api_id, ORDER_PATH, body, order=True)
        except BrokerOutcomeUnknown:
            raise
        except BrokerError as e:
            raise _not_executed(e) from None
        ord_no = to_text(reply.body.get("ord_no"))
        if not ord_no:
            raise BrokerOutcomeUnknown(
                describe(api_id, "주문번호가 없는 응답 (answer without ord_no)"),
                "kiwoom.bad_response",
            )
        return ord_no

    async def cancel(
        self, account: AccountRef, broker_order_id: str, symbol: str, qty: int
    ) -> None:
        """Cancel whatever is still unfilled (``cncl_qty`` "0" = all remaining, so a fill that
        raced the cancel cannot make the quantity wrong)."""
        client = await self._before_command(account)
        tracker = self._tracker(account)
        _, head, chain = await tracker.resolve(
            broker_order_id, lambda today: self._sync(account, today)
        )
        venue = chain.venue if chain is not None else "KRX"
        body = {"dmst_stex_tp": venue, "orig_ord_no": head, "stk_cd": symbol, "cncl_qty": "0"}
        try:
            reply = await client.call("kt10003", ORDER_PATH, body, order=True)
        except BrokerOutcomeUnknown:
            raise
        except BrokerError as e:
            raise _not_executed(e) from None
        ord_no = to_text(reply.body.get("ord_no"))
        if ord_no and chain is not None:
            tracker.derived(chain, ord_no, modify=False, price=None)

    # --- reports

    async def _sync(
        self, account: AccountRef, day: date
    ) -> tuple[list[OrderStatusReport], list[FillReport]]:
        tracker = self._tracker(account)
        if day != tracker.today():
            # ka10075/ka10076 answer for today only: "no rows" would read as "never placed".
            raise ReportsUnavailable(
                f"키움 주문/체결 조회는 당일분만 제공됩니다 ({day.isoformat()}) "
                f"(Kiwoom reports cover today only; {day.isoformat()} cannot be listed)"
            )
        key = (account.account_id, day_key(day))
        cached = self._synced.get(key)
        now = time.monotonic()
        if cached is not None and now - cached[0] < self.report_cache_seconds:
            return cached[1], cached[2]
        client = self.client(account)
        open_rows, _ = await client.pages(
            "ka10075",
            ACCOUNT_PATH,
            {"all_stk_tp": "0", "trde_tp": "0", "stk_cd": "", "stex_tp": "0"},
            "oso",
        )
        fill_rows, _ = await client.pages(
            "ka10076",
            ACCOUNT_PATH,
            {"stk_cd": "", "qry_tp": "0", "sell_tp": "0", "ord_no": "", "stex_tp": "0"},
            "cntr",
        )
        dk = day_key(day)
        try:
            rows = [ReportRow.parse(r, dk, self._clock.time()) for r in open_rows + fill_rows]
            reports, fills = tracker.sync(dk, rows)
        except WireError as e:
            raise BrokerError(
                describe("bad_report", f"주문/체결 조회 응답을 해석할 수 없습니다 ({e})"),
                "kiwoom.bad_response",
            ) from None
        # Stamped when the pages are all in: a paged sync can outlast the cache's life, and the
        # fill_reports() call that follows order_reports() must reuse it, not page it all again.
        self._synced[key] = (time.monotonic(), reports, fills)
        return reports, fills

    async def order_reports(self, account: AccountRef, day: date) -> list[OrderStatusReport]:
        self._synced.pop((account.account_id, day_key(day)), None)
        return (await self._sync(account, day))[0]

    async def fill_reports(self, account: AccountRef, day: date) -> list[FillReport]:
        return (await self._sync(account, day))[1]

    async def position_reports(self, account: AccountRef) -> list[PositionReport]:
        rows, _ = await self.client(account).pages(
            "kt00018",
            ACCOUNT_PATH,
            {"qry_tp": "1", "dmst_stex_tp": "KRX"},
            "acnt_evlt_remn_indv_tot",
        )
        out: list[PositionReport] = []
        try:
            for r in rows:
                qty = to_qty(r.get("rmnd_qty"))
                if qty:
                    out.append(
                        PositionReport(to_code(r.get("stk_cd")), qty, to_price(r.get("pur_pric")))
                    )
        except WireError as e:
            raise BrokerError(
                describe("kt00018", f"잔고 응답을 해석할 수 없습니다 ({e})"), "kiwoom.bad_response"
            ) from None
        return sorted(out, key=lambda p: p.symbol)

    async def _cash(self, client: KiwoomClient) -> tuple[int, int]:
        body = (await client.call("kt00001", ACCOUNT_PATH, {"qry_tp": "3"})).body
        try:
            return to_int(body.get("entr"), None), to_int(body.get("ord_alow_amt"), None)
        except WireError as e:
            raise BrokerError(
                describe("kt00001", f"예수금 응답을 해석할 수 없습니다 ({e})"),
                "kiwoom.bad_response",
            ) from None

    async def balance(self, account: AccountRef) -> Balance:
        cash, orderable = await self._cash(self.client(account))
        return Balance(
            cash=cash, orderable=orderable, positions=await self.position_reports(account)
        )

    async def quote(self, account: AccountRef, symbol: str) -> Tick:
        """``ka10001``: the current price and the day's base price of one stock."""
        body = (
            await self.client(account).call("ka10001", STOCK_INFO_PATH, {"stk_cd": symbol})
        ).body
        try:
            price = to_price(body.get("cur_prc"), None)
            base = to_price(body.get("base_pric")) or price - to_int(body.get("pred_pre"))
            return Tick(
                symbol=to_code(body.get("stk_cd") or symbol),
                price=price,
                volume=0,
                ts=self._clock.time(),
                cum_volume=to_qty(body.get("trde_qty")),
                base_price=base,
            )
        except WireError as e:
            raise BrokerError(
                describe("ka10001", f"시세 응답을 해석할 수 없습니다 ({e})"), "kiwoom.bad_response"
            ) from None

    async def test_connection(self, account: AccountRef) -> str:
        """Token (issued or reused), the account number check, and the cash balance."""
        client = self.client(account)
        await client.tokens.get()
        await self._verify_account(account, client, BrokerAuthError)
        cash, orderable = await self._cash(client)
        env, mine = "실전" if account.env == "real" else "모의", _digits(account.account_no)
        return (
            f"키움증권 {env}투자 계좌 {mask(mine)} 연결 정상: 예수금 {cash:,}원, "
            f"주문가능 {orderable:,}원"
        )


def _not_executed(e: BrokerError) -> BrokerError:
    """A command error that is not 'unknown' means Kiwoom did not act on it."""
    if isinstance(e, (BrokerRejected, BrokerNotProcessed, BrokerOutcomeUnknown)):
        return e
    return BrokerRejected(e.message, e.code)
