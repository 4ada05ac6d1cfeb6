"""Kiwoom OpenAPI+ through the bridge (``bridge/``): the broker protocol over a session pool.

An account is linked with the bridge's address (``base_url``, ``ws://`` on loopback or
``wss://``), the bridge's token (``app_secret``) and the Kiwoom login id the bridge logs in as
(``app_key``). The bridge holds one login at a time by default, so the adapter tells the
dispatcher so (``limits``: capacity 1, the switch cost, preparation only with a pool of two or
more) and implements the dispatcher's ``switch_session`` / ``prepare_session`` /
``activate_session`` with the bridge's ``switch`` and ``prepare``.

Orders are ``SendOrder`` (kiwoom.md B5): type 1/2 buy/sell, 5/6 modify, 3/4 cancel, ``00``
limit or ``03`` market. The outcome of a command maps onto the broker protocol's four: an order
number (accepted); ``rejected`` (the control or exchange refused: ``BrokerRejected``);
``not_processed`` (−308 beyond the bridge's retries, a failed login before sending:
``BrokerNotProcessed``); ``unknown`` / a dropped connection / a timeout
(``BrokerOutcomeUnknown``: reconcile, never resend).

Execution notices are the control's chejan FIDs, the same numbers Kiwoom's REST stream carries
(type 00), so the REST adapter's ``OrderTracker`` (order chains across modify/cancel numbers,
fill ids from cumulative quantities, matching an unanswered placement) is reused unchanged.
Reports come from ``opt10075`` (every order of the day with its executions), holdings from
``opw00018``, cash from ``opw00001``.

Reading reports needs a session of that user. So that reconciliation does not undo the
dispatcher's batching, an inquiry uses the user's session when it is logged in; otherwise it
switches only when this adapter has an order in doubt for the account (an unknown outcome) or
has not looked for ``report_switch_interval`` seconds - and else answers ``BrokerNotProcessed``
(try later). Balances never cause a switch.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from datetime import date
from typing import Any

from hoga.brokers.base import (
    AccountRef,
    Balance,
    BrokerAuthError,
    BrokerError,
    BrokerLimits,
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
)
from hoga.brokers.events import EventPump, PumpedEvents
from hoga.brokers.kiwoom.tracking import OrderTracker, ReportRow
from hoga.brokers.kiwoom.wire import (
    WireError,
    day_key,
    to_code,
    to_int,
    to_price,
    to_qty,
    to_text,
)
from hoga.brokers.kiwoom_openapi.client import BridgeClient, BridgeError
from hoga.brokers.kiwoom_openapi.errors import as_broker_error
from hoga.brokers.kiwoom_openapi.wire import (
    BUY,
    CANCEL_BUY,
    CANCEL_SELL,
    LIMIT,
    MARKET,
    MODIFY_BUY,
    MODIFY_SELL,
    REPORT_FIELDS,
    SELL,
    digits,
    report_row,
)
from hoga.domain.clock import Clock
from hoga.domain.orders import OrderType, Side, TimeInForce
from hoga.domain.secret import Secret, mask

log = logging.getLogger(__name__)


class KiwoomOpenApiBroker(PumpedEvents):
    """Kiwoom OpenAPI+ accounts through bridges; see the module docstring."""

    name = "kiwoom_openapi"

    def __init__(
        self,
        *,
        clock: Clock,
        rate: float = 5.0,
        switch_cost: float = 3.0,
        ca_file: str | None = None,
        order_timeout: float = 30.0,
        report_switch_interval: float = 600.0,
    ) -> None:
        self._clock = clock
        self.rate = rate
        self.switch_cost = switch_cost
        self.ca_file = ca_file
        self.order_timeout = order_timeout
        self.report_switch_interval = report_switch_interval
        self._clients: dict[tuple[str, str], BridgeClient] = {}
        self._accounts: dict[int, AccountRef] = {}
        self._trackers: dict[int, OrderTracker] = {}
        self._doubt: set[int] = set()
        self._looked: dict[int, float] = {}
        self._events = EventPump("kiwoom_openapi")
        self._quote_handlers: list[Any] = []
        self._aborts: set[asyncio.Task[None]] = set()

    # --- lifecycle

    def limits(self, account: AccountRef) -> BrokerLimits:
        client = self._clients.get(self._key(account))
        size = int(client.pool.get("size") or 1) if client is not None else 1
        return BrokerLimits(
            rate=self.rate, capacity=1, switch_cost=self.switch_cost, can_preload=size >= 2
        )

    async def start(self) -> None:
        await self._events.start()

    async def stop(self) -> None:
        await self._events.stop()
        for client in self._clients.values():
            await client.close()
        self._clients.clear()

    def add_quote_handler(self, handler: Any) -> None:
        """``handler(msg)`` receives the bridges' real-time frames (the feed's hook)."""
        self._quote_handlers.append(handler)

    # --- accounts and bridges

    @staticmethod
    def _key(account: AccountRef) -> tuple[str, str]:
        token = account.app_secret.reveal() if account.app_secret else ""
        return (account.base_url or "", token)

    @staticmethod
    def user_of(account: AccountRef) -> str:
        user = account.app_key.reveal() if account.app_key else ""
        if not user:
            raise BrokerRejected("no Kiwoom login id linked", "kiwoom_openapi.no_user")
        return user

    def client(self, account: AccountRef) -> BridgeClient:
        key = self._key(account)
        client = self._clients.get(key)
        if client is None:
            if not account.base_url or not account.app_secret:
                raise BrokerRejected(
                    "bridge address or token missing", "kiwoom_openapi.not_configured"
                )
            client = BridgeClient(
                account.base_url,
                Secret(key[1]),
                on_event=functools.partial(self._on_event, key),
                ca_file=self.ca_file,
            )
            self._clients[key] = client
        return client

    def _tracker(self, account: AccountRef | int) -> OrderTracker:
        aid = account if isinstance(account, int) else account.account_id
        tracker = self._trackers.get(aid)
        if tracker is None:
            tracker = self._trackers[aid] = OrderTracker(aid, self._clock)
        return tracker

    async def attach(self, account: AccountRef) -> None:
        self._accounts[account.account_id] = account
        self._tracker(account)
        try:
            await self.client(account).subscribe(self.user_of(account))
        except BridgeError as e:
            raise as_broker_error(e, "attach") from None

    async def detach(self, account_id: int) -> None:
        self._accounts.pop(account_id, None)
        self._trackers.pop(account_id, None)

    def _on_event(self, key: tuple[str, str], msg: dict[str, Any]) -> None:
        event = msg.get("event")
        if event == "real":
            for handler in list(self._quote_handlers):
                handler(msg)
            return
        if event != "chejan" or msg.get("gubun") != "0":
            return
        fids = msg.get("fids") or {}
        acc = digits(str(fids.get("9201", "")))
        for ref in list(self._accounts.values()):
            if self._key(ref) != key or digits(ref.account_no) != acc:
                continue
            self._emit_all(ref.account_id, self._tracker(ref).on_order_frame(fids))

    # --- sessions (the dispatcher's SessionBroker protocol)

    async def switch_session(self, account: AccountRef) -> None:
        await self._session("switch", account)

    async def prepare_session(self, account: AccountRef) -> None:
        await self._session("prepare", account)

    async def activate_session(self, account: AccountRef) -> None:
        # Instant when the bridge already holds the user (prepared); a full switch otherwise.
        await self._session("switch", account)

    async def _session(self, op: str, account: AccountRef) -> None:
        client = self.client(account)
        user = self.user_of(account)
        try:
            reply = await client.request(op, user=user, within=120.0)
        except BridgeError as e:
            raise as_broker_error(e, op) from None
        except asyncio.CancelledError:
            # The dispatcher abandoned this switch for an URGENT order elsewhere: stop the
            # login at the bridge too, or the next switch would queue behind it.
            task = asyncio.get_running_loop().create_task(self._abort(client, user))
            self._aborts.add(task)
            task.add_done_callback(self._aborts.discard)
            raise
        client.pool = dict(reply.get("pool") or client.pool)

    async def _abort(self, client: BridgeClient, user: str) -> None:
        with contextlib.suppress(BridgeError):
            await client.request("abort", user=user, within=10.0)

    # --- commands

    async def _order(self, account: AccountRef, what: str, **args: Any) -> str:
        client = self.client(account)
        try:
            reply = await client.request(
                "order",
                user=self.user_of(account),
                acc=digits(account.account_no),
                within=self.order_timeout,
                **args,
            )
        except BridgeError as e:
            if e.kind in ("disconnected", "timeout", "unknown"):
                self._doubt.add(account.account_id)
            raise as_broker_error(e, what) from None
        no = to_text(reply.get("order_no"))
        if not no:
            self._doubt.add(account.account_id)
            raise BrokerOutcomeUnknown(
                "주문번호가 없는 응답; 처리 여부 확인 중 (answer without an order number)",
                "kiwoom_openapi.bad_response",
            )
        return no

    async def place(self, account: AccountRef, request: PlaceRequest) -> PlaceAck:
        if (
            request.type not in (OrderType.LIMIT, OrderType.MARKET)
            or request.tif != TimeInForce.DAY
            or request.venue != "KRX"
        ):
            # The bridge sends 지정가/시장가 day orders on KRX only; anything else would go
            # out as the wrong order, so it is refused before it reaches Kiwoom.
            raise BrokerRejected(
                f"OpenAPI+ 브리지는 KRX 지정가·시장가 주문만 보냅니다 ({request.type}/"
                f"{request.tif}/{request.venue}) (the bridge sends KRX day limit and market "
                "orders only)",
                "kiwoom_openapi.unsupported_order",
            )
        limit = request.type == OrderType.LIMIT
        if limit and (request.price is None or request.price <= 0):
            raise BrokerRejected(
                "지정가 주문에 가격이 없습니다 (no price)", "kiwoom_openapi.no_price"
            )
        tracker = self._tracker(account)
        pending = tracker.expect(request)
        try:
            no = await self._order(
                account,
                "place",
                order_type=BUY if request.side == Side.BUY else SELL,
                code=request.symbol,
                qty=request.qty,
                price=request.price if limit and request.price else 0,
                hoga=LIMIT if limit else MARKET,
                orig="",
            )
        except (BrokerOutcomeUnknown, asyncio.CancelledError):
            self._emit_all(account.account_id, tracker.unanswered(pending))
            raise
        except BaseException:
            tracker.forget(pending)
            raise
        chain = tracker.placed(pending, no)
        return PlaceAck(broker_order_id=chain.order_id)

    async def modify(self, account: AccountRef, request: ModifyRequest) -> ModifyAck:
        """Modify an order: fewer shares through a partial cancel (``reduce_by`` shares), a
        new price through a modify of all that remains (OpenAPI+ modifies the price only,
        kiwoom.md B5). Each gets its own new number; the tracker follows the chain, so events
        and reports still name the root - the returned ``broker_order_id``."""
        if request.new_qty <= 0 or request.new_price <= 0 or request.reduce_by < 0:
            raise BrokerRejected(
                "정정 수량과 가격을 확인하세요 (bad modify quantity or price)",
                "kiwoom_openapi.bad_modify",
            )
        tracker = self._tracker(account)
        day, head, chain = await tracker.resolve(
            request.broker_order_id, lambda today: self._sync(account, today, force=True)
        )
        if chain is None:
            raise BrokerRejected("unknown order", "kiwoom_openapi.unknown_order")
        buy = chain.side == Side.BUY
        if request.reduce_by > 0:
            no = await self._order(
                account,
                "modify",
                order_type=CANCEL_BUY if buy else CANCEL_SELL,
                code=request.symbol,
                qty=request.reduce_by,
                price=0,
                hoga=LIMIT,
                orig=head,
            )
            tracker.reduced(chain, no, request.reduce_by)
        modify_no: str | None = None
        if request.reprice:
            no = await self._order(
                account,
                "modify",
                order_type=MODIFY_BUY if buy else MODIFY_SELL,
                code=request.symbol,
                qty=max(chain.remaining, 1),  # the quantity to re-price: all that remains
                price=request.new_price,
                hoga=LIMIT,
                orig=chain.head,
            )
            tracker.derived(chain, no, modify=True, price=request.new_price)
            modify_no = f"{day}-{no}"
        return ModifyAck(broker_order_id=chain.order_id, modify_order_no=modify_no)

    async def cancel(
        self, account: AccountRef, broker_order_id: str, symbol: str, qty: int
    ) -> None:
        """Cancel whatever is unfilled (quantity 0 = all remaining, so a fill racing the
        cancel cannot make the quantity wrong)."""
        tracker = self._tracker(account)
        _, head, chain = await tracker.resolve(
            broker_order_id, lambda today: self._sync(account, today, force=True)
        )
        if chain is None:
            raise BrokerRejected("unknown order", "kiwoom_openapi.unknown_order")
        no = await self._order(
            account,
            "cancel",
            order_type=CANCEL_BUY if chain.side == Side.BUY else CANCEL_SELL,
            code=symbol,
            qty=0,
            price=0,
            hoga=LIMIT,
            orig=head,
        )
        tracker.derived(chain, no, modify=False, price=None)

    # --- inquiries

    async def _tr(
        self, account: AccountRef, tr: str, *, force: bool, **args: Any
    ) -> dict[str, Any]:
        client = self.client(account)
        user = self.user_of(account)
        inputs = {"계좌번호": digits(account.account_no), **args.pop("inputs", {})}
        try:
            reply = await client.request(
                "tr", user=user, tr=tr, inputs=inputs, if_logged_in=not force, within=120.0, **args
            )
        except BridgeError as e:
            raise as_broker_error(e, tr) from None
        return reply

    async def _sync(
        self, account: AccountRef, day: date, *, force: bool = False
    ) -> tuple[list[OrderStatusReport], list[FillReport]]:
        tracker = self._tracker(account)
        if day != tracker.today():
            # opt10075 answers for today only: "cannot tell", never "no orders that day".
            raise ReportsUnavailable(
                "키움 OpenAPI+ 주문 조회는 당일만 가능합니다 (today's orders only)",
                "kiwoom_openapi.reports_today_only",
            )
        aid = account.account_id
        due = time.monotonic() - self._looked.get(aid, -1e9) >= self.report_switch_interval
        reply = await self._tr(
            account,
            "opt10075",
            force=force or aid in self._doubt or due,
            inputs={"전체종목구분": "0", "매매구분": "0", "종목코드": "", "체결구분": "0"},
            multi=list(REPORT_FIELDS),
            pages=50,
        )
        self._looked[aid] = time.monotonic()
        self._doubt.discard(aid)
        dk = day_key(day)
        try:
            rows = [ReportRow.parse(report_row(r), dk, self._clock.time()) for r in reply["rows"]]
            return tracker.sync(dk, rows)
        except WireError as e:
            raise BrokerError(
                f"주문 조회 응답을 해석할 수 없습니다 ({e})", "kiwoom_openapi.bad_response"
            ) from None

    async def order_reports(self, account: AccountRef, day: date) -> list[OrderStatusReport]:
        return (await self._sync(account, day))[0]

    async def fill_reports(self, account: AccountRef, day: date) -> list[FillReport]:
        tracker = self._tracker(account)
        return [f for c in tracker.chains(day_key(day)) for f in c.all_fills()]

    async def position_reports(self, account: AccountRef) -> list[PositionReport]:
        reply = await self._tr(
            account, "opw00018", force=False, multi=["종목번호", "보유수량", "매입가"]
        )
        try:
            out = [
                PositionReport(to_code(r["종목번호"]), to_qty(r["보유수량"]), to_price(r["매입가"]))
                for r in reply["rows"]
                if to_qty(r.get("보유수량"))
            ]
        except (WireError, KeyError) as e:
            raise BrokerError(
                f"잔고 응답을 해석할 수 없습니다 ({e})", "kiwoom_openapi.bad_response"
            ) from None
        return sorted(out, key=lambda p: p.symbol)

    async def balance(self, account: AccountRef) -> Balance:
        reply = await self._tr(account, "opw00001", force=False, single=["예수금", "주문가능금액"])
        try:
            cash = to_int(reply["single"].get("예수금"), None)
            orderable = to_int(reply["single"].get("주문가능금액"), None)
        except WireError as e:
            raise BrokerError(
                f"예수금 응답을 해석할 수 없습니다 ({e})", "kiwoom_openapi.bad_response"
            ) from None
        return Balance(
            cash=cash, orderable=orderable, positions=await self.position_reports(account)
        )

    async def test_connection(self, account: AccountRef) -> str:
        """Logs the bridge in as the user (a switch) and checks the account belongs to it."""
        client = self.client(account)
        try:
            reply = await client.request("switch", user=self.user_of(account), within=120.0)
        except BridgeError as e:
            raise as_broker_error(e, "test") from None
        client.pool = dict(reply.get("pool") or client.pool)
        mine = digits(account.account_no)
        if mine not in [digits(str(a)) for a in reply.get("accounts", [])]:
            raise BrokerAuthError(
                f"계좌 {mask(mine)}는 이 키움 사용자의 계좌가 아닙니다 "
                "(the account does not belong to this Kiwoom login)",
                "kiwoom_openapi.account_mismatch",
            )
        cash = (await self.balance(account)).cash
        return f"키움 OpenAPI+ 계좌 {mask(mine)} 연결 정상 (bridge): 예수금 {cash:,}원"
