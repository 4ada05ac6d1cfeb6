"""The KIS (한국투자증권) adapter: hoga's ``Broker`` protocol over the KIS Open API.

One instance serves every KIS account of the server, real and mock. Accounts that share an app
key share that key's ``KisClient`` (one token, one pacer) and ``KisSocket`` (one WebSocket
session carrying the key's execution notices and any market data). Per-account ``base_url`` /
``ws_url`` override the default hosts (kis.md §1), which is how an account is pointed at the
local fake (``hoga fake-broker kis``).

Orders go out through ``order-cash`` / ``order-rvsecncl``; state comes back from execution
notices (H0STCNI0/H0STCNI9, registered with the HTS id, decrypted into ``FillEvent`` and
``OrderUpdate``) and from the paged reports (``inquire-daily-ccld``, ``inquire-balance``).

KIS lists orders with their *cumulative* executions, not individual fills. ``fill_reports``
therefore returns the executions this process saw as notices (same fill ids as the events, so
they de-duplicate), and ``order_reports`` carries each order's cumulative filled quantity and
average price, from which the reconciler books whatever the notices missed. To keep a notice
that arrives after such a catch-up from being booked twice, a notice whose cumulative quantity
is already covered by a report this process has seen is not delivered again. A notice's fill
carries the order's cumulative quantity (``cum_qty``) when this process has counted every
execution of the order (placed here, or counted on from a report's total); the pipeline then
books it once whatever else it heard (``domain/fills.py``).
"""

from __future__ import annotations

import logging
from dataclasses import replace
from datetime import date
from typing import Any

import httpx

from hoga.brokers.base import (
    AccountRef,
    Balance,
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
    TokenStore,
)
from hoga.brokers.events import EventPump, PumpedEvents
from hoga.brokers.kis import reports, wire
from hoga.brokers.kis.client import KisKey, KisKeys, KisOptions
from hoga.brokers.kis.tracking import KisTracker, Known
from hoga.domain.clock import KST, Clock
from hoga.domain.orders import OrderStatus, Side
from hoga.domain.secret import mask

log = logging.getLogger(__name__)
S = OrderStatus


class KisBroker(PumpedEvents):
    """See the module docstring."""

    name = "kis"

    def __init__(
        self,
        clock: Clock,
        token_store: TokenStore,
        *,
        options: KisOptions | None = None,
        realtime: bool = True,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._clock = clock
        self.options = options or KisOptions()
        self.realtime = realtime
        self._keys = KisKeys(
            clock, token_store, options=self.options, transport=transport, on_notice=self._on_notice
        )
        self.tracker = KisTracker()
        self._events = EventPump("kis")

    # ------------------------------------------------------------------ lifecycle

    def limits(self, account: AccountRef) -> BrokerLimits:
        return BrokerLimits(rate=self.options.rate(account.env), window=1.0)

    async def start(self) -> None:
        self._keys.http()
        await self._events.start()

    async def stop(self) -> None:
        await self._keys.close()
        await self._events.stop()

    # ------------------------------------------------------------------ keys and accounts

    def key(self, account: AccountRef) -> KisKey:
        """The app-key state serving ``account`` (created on first use)."""
        return self._keys.key(account)

    @property
    def keys(self) -> list[KisKey]:
        return self._keys.all()

    def realtime_state(self, account_id: int) -> bool | None:
        """Whether the account's execution-notice socket is connected; None when it has none
        to keep (no HTS id, realtime off, not attached). Read by the server's broker health."""
        key = self._keys.of(account_id)
        ref = key.accounts.get(account_id) if key is not None else None
        if key is None or ref is None or not self.realtime or not ref.hts_id:
            return None
        return key.socket.connected

    async def attach(self, account: AccountRef) -> None:
        try:
            wire.split_account(account.account_no)
        except ValueError as e:
            raise BrokerRejected(str(e), "kis.bad_account_no") from None
        key = self.key(account)
        if self.realtime and account.hts_id:
            tr = wire.NOTICE_TR[key.env]
            key.socket.persistent.add((tr, account.hts_id))
            key.socket.refused.pop((tr, account.hts_id), None)
            key.socket.keep_persistent()

    async def detach(self, account_id: int) -> None:
        await self._keys.detach(account_id)

    @staticmethod
    def _split(account: AccountRef) -> tuple[str, str]:
        try:
            return wire.split_account(account.account_no)
        except ValueError as e:
            raise BrokerRejected(str(e), "kis.bad_account_no") from None

    # ------------------------------------------------------------------ commands

    async def place(self, account: AccountRef, request: PlaceRequest) -> PlaceAck:
        cano, prdt = self._split(account)
        key = self.key(account)
        if request.qty <= 0:
            raise BrokerRejected("주문수량이 올바르지 않습니다", "kis.bad_qty")
        priced = request.type.needs_price
        if priced and not request.price:
            raise BrokerRejected("지정가 주문에는 가격이 필요합니다", "kis.no_price")
        dvsn = wire.ord_dvsn(request.type, request.tif)
        if dvsn is None:
            raise BrokerRejected(
                f"KIS에 없는 주문구분입니다 ({request.type}/{request.tif}) "
                "(no such KIS order type)",
                "kis.bad_order_type",
            )
        body = {
            "CANO": cano,
            "ACNT_PRDT_CD": prdt,
            "PDNO": request.symbol,
            "ORD_DVSN": dvsn,
            "ORD_QTY": str(request.qty),
            "ORD_UNPR": str(request.price or 0) if priced else "0",
            "EXCG_ID_DVSN_CD": request.venue if request.venue in wire.VENUES else "KRX",
        }
        if request.side == Side.SELL:
            body["SLL_TYPE"] = "01"
        op = "buy" if request.side == Side.BUY else "sell"
        reply = await key.client.request(
            "POST", wire.ORDER_CASH, reports.tr(op, key), body=body, command=True
        )
        odno, org = _order_output(reply.data)
        self.tracker.known[(account.account_id, odno)] = Known(
            org_no=org,
            client_order_id=request.client_order_id,
            symbol=request.symbol,
            side=request.side,
            type=request.type,
            qty=request.qty,
            price=request.price if request.type.needs_price else None,
            venue=body["EXCG_ID_DVSN_CD"],
        )
        return PlaceAck(broker_order_id=odno, org_no=org)

    async def modify(self, account: AccountRef, request: ModifyRequest) -> ModifyAck:
        """Modify an open order through ``order-rvsecncl`` (kis.md §5.1).

        Fewer shares: a partial cancel (``02``, ``QTY_ALL_ORD_YN=N``) of ``reduce_by``; a new
        price: a modify (``01``) of all that remains (``QTY_ALL_ORD_YN=Y``). KIS gives the
        modify a new order number; the adapter keeps it as an alias of the original, so events
        and reports keep naming the order hoga placed. When both are asked and the re-price
        fails after the reduction took, the error is raised and the reports show the smaller
        order (a reduction never needs undoing).
        """
        if request.new_qty <= 0 or request.new_price <= 0 or request.reduce_by < 0:
            raise BrokerRejected(
                "정정 수량과 가격을 확인하세요 (bad modify quantity or price)", "kis.bad_modify"
            )
        root = wire.norm_order_no(request.broker_order_id)
        head = await self._current(account, root)
        known = await self._order_info(account, head)
        key = self.key(account)
        tr = reports.tr("rvsecncl", key)
        venue = request.venue if request.venue in wire.VENUES else "KRX"
        root_known = self.tracker.known.setdefault((account.account_id, root), replace(known))
        if request.reduce_by > 0:
            body = self._rvse_body(
                account, known, head, "02", request.reduce_by, 0, all_qty=False, venue=venue
            )
            # Its cancel notice is a reduction, not the end of the order.
            self.tracker.reductions[(account.account_id, head)] = request.reduce_by
            try:
                await key.client.request("POST", wire.ORDER_RVSECNCL, tr, body=body, command=True)
            except BrokerRejected:
                self.tracker.reductions.pop((account.account_id, head), None)
                raise
            root_known.qty = request.new_qty
        if not request.reprice:
            return ModifyAck(broker_order_id=root, org_no=known.org_no)
        body = self._rvse_body(
            account, known, head, "01", 0, request.new_price, all_qty=True, venue=venue
        )
        reply = await key.client.request("POST", wire.ORDER_RVSECNCL, tr, body=body, command=True)
        odno, org = _order_output(reply.data)
        root_known.qty, root_known.price = request.new_qty, request.new_price
        self.tracker.known[(account.account_id, odno)] = replace(
            known,
            org_no=org or known.org_no,
            qty=request.new_qty,
            price=request.new_price,
            client_order_id=root_known.client_order_id,
        )
        self.tracker.link(account.account_id, root, odno)
        return ModifyAck(broker_order_id=root, modify_order_no=odno, org_no=org)

    async def _current(self, account: AccountRef, root: str) -> str:
        """The number now carrying the order hoga knows as ``root`` (itself unless modified).

        A process that did not place the order (a restart) learns modify chains from the
        open-order list, whose rows name the order each modify replaced."""
        ck = (account.account_id, root)
        if ck not in self.tracker.head and ck not in self.tracker.known:
            await self.open_orders(account)
        return self.tracker.head.get(ck, root)

    async def cancel(
        self, account: AccountRef, broker_order_id: str, symbol: str, qty: int
    ) -> None:
        root = wire.norm_order_no(broker_order_id)
        head = await self._current(account, root)
        known = await self._order_info(account, head)
        body = self._rvse_body(account, known, head, "02", 0, 0, all_qty=True, venue=known.venue)
        key = self.key(account)
        await key.client.request(
            "POST", wire.ORDER_RVSECNCL, reports.tr("rvsecncl", key), body=body, command=True
        )

    def _rvse_body(
        self,
        account: AccountRef,
        known: Known,
        odno: str,
        kind: str,
        qty: int,
        price: int,
        *,
        all_qty: bool,
        venue: str = "KRX",
    ) -> dict[str, str]:
        cano, prdt = self._split(account)
        return {
            "CANO": cano,
            "ACNT_PRDT_CD": prdt,
            "KRX_FWDG_ORD_ORGNO": known.org_no or "",
            "ORGN_ODNO": odno,
            # A modify keeps the order's type where it names a price (limit, conditional).
            "ORD_DVSN": (
                wire.ORD_DVSN.get(known.type, "00")
                if kind == "02" or known.type.needs_price
                else "00"
            ),
            "RVSE_CNCL_DVSN_CD": kind,
            "ORD_QTY": "0" if all_qty else str(qty),
            "ORD_UNPR": str(price),
            "QTY_ALL_ORD_YN": "Y" if all_qty else "N",
            "EXCG_ID_DVSN_CD": venue,
        }

    async def _order_info(self, account: AccountRef, broker_order_id: str) -> Known:
        """The order's branch number (needed to modify/cancel), from memory or the reports."""
        odno = wire.norm_order_no(broker_order_id)
        known = self.tracker.known.get((account.account_id, odno))
        if known is not None and known.org_no:
            return known
        await self.open_orders(account)
        known = self.tracker.known.get((account.account_id, odno))
        if known is None or not known.org_no:
            raise BrokerRejected(
                f"KIS에서 주문 {odno}을(를) 찾을 수 없습니다 (order not found at KIS)",
                "kis.order_not_found",
            )
        return known

    # ------------------------------------------------------------------ reports

    async def open_orders(self, account: AccountRef) -> list[OrderStatusReport]:
        """Orders that can still be modified or cancelled (``reports.open_orders``)."""
        self._split(account)
        key = self.key(account)
        return await reports.open_orders(
            key, account.account_id, account.account_no, self.tracker, self._today()
        )

    async def order_reports(self, account: AccountRef, day: date) -> list[OrderStatusReport]:
        self._split(account)
        key = self.key(account)
        return await reports.order_reports(
            key, account.account_id, account.account_no, self.tracker, day, self._today()
        )

    def _today(self) -> date:
        return self._clock.now().astimezone(KST).date()

    async def fill_reports(self, account: AccountRef, day: date) -> list[FillReport]:
        """Executions seen as notices by this process (see the module docstring)."""
        return self.tracker.fill_reports(account.account_id, day)

    async def balance(self, account: AccountRef) -> Balance:
        self._split(account)
        return await reports.balance(self.key(account), account.account_no)

    async def position_reports(self, account: AccountRef) -> list[PositionReport]:
        return (await self.balance(account)).positions

    async def test_connection(self, account: AccountRef) -> str:
        cano, prdt = self._split(account)
        key = self.key(account)
        reused = key.client.tokens.reused
        await key.client.tokens.access_token()
        token_note = "기존 토큰 재사용" if key.client.tokens.reused > reused else "토큰 확인"
        bal = await self.balance(account)
        env = "실전" if key.env == "real" else "모의"
        notice = ""
        if self.realtime and account.hts_id:
            reg = (wire.NOTICE_TR[key.env], account.hts_id)
            refused = key.socket.refused.get(reg)
            if refused is not None:
                notice = (
                    f", 실시간 체결통보 거부됨 ({refused[0]}: {refused[1]}) - HTS ID를 확인하세요"
                )
            elif key.socket.is_registered(*reg):
                notice = ", 실시간 체결통보 연결됨"
            else:
                notice = ", 실시간 체결통보 연결 대기"
        return (
            f"KIS {env} 계좌 {mask(cano)}-{prdt} 연결 정상: 예수금 {bal.cash:,}원, "
            f"주문가능 {bal.orderable:,}원, 보유 {len(bal.positions)}종목 ({token_note}{notice}) "
            f"/ connected: cash {bal.cash:,} KRW, {len(bal.positions)} holdings"
        )

    # ------------------------------------------------------------------ execution notices

    def _account_of(self, key: KisKey, acnt_no: str) -> int | None:
        digits = "".join(ch for ch in acnt_no if ch.isdigit())
        best: int | None = None
        for account_id, ref in key.accounts.items():
            try:
                cano, prdt = wire.split_account(ref.account_no)
            except ValueError:
                continue
            if digits == cano + prdt:
                return account_id
            if digits[:8] == cano and best is None:
                best = account_id
        return best

    # ------------------------------------------------------------------ views

    def _on_notice(self, key: KisKey, rec: list[str]) -> None:
        f = dict(zip(wire.NOTICE_FIELDS, rec, strict=False))
        account_id = self._account_of(key, f.get("ACNT_NO", ""))
        if account_id is None:
            return
        event = self.tracker.notice(account_id, f, self._clock.now().astimezone(KST).date())
        if event is not None:
            self._events.emit(account_id, event)

    # ------------------------------------------------------------------ views

    def status(self) -> dict[str, Any]:
        return {
            k.id: {
                "env": k.env,
                "accounts": sorted(k.accounts),
                "tokens_issued": k.client.tokens.issued,
                "tokens_reused": k.client.tokens.reused,
                "rate_limited": k.client.rate_limited,
                "ws_connected": k.socket.connected,
                "ws_registrations": k.socket.registrations,
                "ws_reconnects": max(0, k.socket.connects - 1),
            }
            for k in self._keys.all()
        }


def _order_output(data: dict[str, Any]) -> tuple[str, str | None]:
    out = data.get("output")
    if isinstance(out, list):
        out = out[0] if out else None
    if not isinstance(out, dict):
        out = {}
    odno = str(out.get("ODNO") or out.get("odno") or "").strip()
    if not odno:
        # rt_cd said yes but the order number is missing: the order may exist.
        raise BrokerOutcomeUnknown(
            "KIS가 주문번호 없이 응답했습니다; 주문 상태를 대조합니다 (no order number)",
            "kis.bad_reply",
        )
    org = str(out.get("KRX_FWDG_ORD_ORGNO") or out.get("krx_fwdg_ord_orgno") or "").strip()
    return wire.norm_order_no(odno), org or None
