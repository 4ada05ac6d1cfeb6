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

import asyncio
import functools
import logging
from collections import defaultdict
from dataclasses import dataclass, replace
from datetime import date, datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

import httpx

from hoga.brokers.base import (
    AccountRef,
    Balance,
    BrokerLimits,
    BrokerOutcomeUnknown,
    BrokerRejected,
    EventSink,
    FillEvent,
    FillReport,
    ModifyAck,
    ModifyRequest,
    OrderStatusReport,
    OrderUpdate,
    PlaceAck,
    PlaceRequest,
    PositionReport,
    TokenStore,
)
from hoga.brokers.events import EventPump
from hoga.brokers.kis import wire
from hoga.brokers.kis.client import KisClient, key_id
from hoga.brokers.kis.realtime import KisSocket
from hoga.brokers.pacing import Pacer
from hoga.domain.clock import KST, Clock
from hoga.domain.orders import OrderStatus, OrderType, Side
from hoga.domain.secret import mask

log = logging.getLogger(__name__)
S = OrderStatus


@dataclass
class _Known:
    """What the adapter remembers of an order (KIS has no client order ids)."""

    org_no: str | None = None
    client_order_id: str | None = None
    symbol: str = ""
    side: Side | None = None
    type: OrderType = OrderType.LIMIT
    qty: int = 0
    price: int | None = None
    venue: str = "KRX"


@dataclass
class KisKey:
    """One app key: its REST client, its realtime session and the accounts using it."""

    id: str
    env: str
    client: KisClient
    socket: KisSocket
    accounts: dict[int, AccountRef]


class KisBroker:
    """See the module docstring."""

    name = "kis"

    def __init__(
        self,
        clock: Clock,
        token_store: TokenStore,
        *,
        real_rate: float = 18.0,
        mock_rate: float = 1.0,
        timeout: float = 8.0,
        realtime: bool = True,
        pacer_margin: float = 0.01,
        renew_before: float = 600.0,
        ws_backoff_max: float = 30.0,
        command_wait: float = 3.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._clock = clock
        self._store = token_store
        self.real_rate = real_rate
        self.mock_rate = mock_rate
        self.timeout = timeout
        self.realtime = realtime
        self.pacer_margin = pacer_margin
        self.renew_before = renew_before
        self.ws_backoff_max = ws_backoff_max
        self.command_wait = command_wait
        self._transport = transport
        self._http: httpx.AsyncClient | None = None
        self._keys: dict[str, KisKey] = {}
        self._account_key: dict[int, KisKey] = {}
        self._known: dict[tuple[int, str], _Known] = {}
        self._notice_fills: dict[int, list[FillReport]] = defaultdict(list)
        self._fill_ids: dict[int, set[str]] = defaultdict(set)
        self._notice_cum: dict[tuple[int, str], int] = {}
        self._reported_cum: dict[tuple[int, str], int] = {}
        # Modify chains: a modify's number -> the number it replaced, and the order hoga knows
        # (its root) -> the number now resting, which a further modify or cancel must name.
        self._root: dict[tuple[int, str], str] = {}
        self._head: dict[tuple[int, str], str] = {}
        self._reductions: dict[tuple[int, str], int] = {}
        self._events = EventPump("kis")
        self._tasks: set[asyncio.Task[None]] = set()

    # ------------------------------------------------------------------ lifecycle

    def limits(self, account: AccountRef) -> BrokerLimits:
        rate = self.real_rate if account.env == "real" else self.mock_rate
        return BrokerLimits(rate=rate, window=1.0)

    def set_event_sink(self, sink: EventSink) -> None:
        self._events.sink = sink

    def _client(self) -> httpx.AsyncClient:
        if self._http is None:
            self._http = httpx.AsyncClient(
                timeout=httpx.Timeout(self.timeout, connect=min(5.0, self.timeout)),
                transport=self._transport,
                follow_redirects=False,
            )
        return self._http

    async def start(self) -> None:
        self._client()
        await self._events.start()

    async def stop(self) -> None:
        for key in list(self._keys.values()):
            await key.socket.close()
        self._keys.clear()
        self._account_key.clear()
        for task in list(self._tasks):
            task.cancel()
        await self._events.stop()
        if self._http is not None:
            await self._http.aclose()
            self._http = None

    async def drain(self) -> None:
        """Wait until every queued execution event has reached the sink (tests use this)."""
        await self._events.drain()

    # ------------------------------------------------------------------ keys and accounts

    def key(self, account: AccountRef) -> KisKey:
        """The app-key state serving ``account`` (created on first use)."""
        known = self._account_key.get(account.account_id)
        if known is not None:
            return known
        if account.app_key is None or account.app_secret is None:
            raise BrokerRejected(
                "KIS 계좌에 앱키/앱시크릿이 없습니다 (app key and secret are required)",
                "kis.no_credentials",
            )
        env = "real" if account.env == "real" else "mock"
        base = (account.base_url or wire.REST_HOSTS[env]).rstrip("/")
        kid = key_id(env, base, account.app_key, account.app_secret)
        key = self._keys.get(kid)
        if key is None:
            rate = self.real_rate if env == "real" else self.mock_rate
            client = KisClient(
                env=env,
                base_url=base,
                app_key=account.app_key,
                app_secret=account.app_secret,
                http=self._client(),
                pacer=Pacer(rate, 1.0, self.pacer_margin),
                clock=self._clock,
                store=self._store,
                renew_before=self.renew_before,
                command_wait=self.command_wait,
            )
            socket = KisSocket(
                kid,
                account.ws_url or wire.WS_HOSTS[env],
                client.tokens.approval_key,
                backoff_max=self.ws_backoff_max,
            )
            key = KisKey(kid, env, client, socket, {})
            socket.listeners[wire.NOTICE_TR[env]] = functools.partial(self._on_notice, key)
            self._keys[kid] = key
        key.accounts[account.account_id] = account
        key.client.tokens.account_ids.add(account.account_id)
        self._account_key[account.account_id] = key
        return key

    @property
    def keys(self) -> list[KisKey]:
        return list(self._keys.values())

    def realtime_state(self, account_id: int) -> bool | None:
        """Whether the account's execution-notice socket is connected; None when it has none
        to keep (no HTS id, realtime off, not attached). Read by the server's broker health."""
        key = self._account_key.get(account_id)
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
        key = self._account_key.pop(account_id, None)
        if key is None:
            return
        ref = key.accounts.pop(account_id, None)
        key.client.tokens.account_ids.discard(account_id)
        if (
            ref is not None
            and ref.hts_id
            and not any(a.hts_id == ref.hts_id for a in key.accounts.values())
        ):
            await key.socket.unregister(wire.NOTICE_TR[key.env], ref.hts_id)
        if not key.accounts:
            await key.socket.close()
            self._keys.pop(key.id, None)

    @staticmethod
    def _split(account: AccountRef) -> tuple[str, str]:
        try:
            return wire.split_account(account.account_no)
        except ValueError as e:
            raise BrokerRejected(str(e), "kis.bad_account_no") from None

    def _tr(self, op: str, key: KisKey) -> str:
        tr = wire.tr_id(op, key.env)
        if tr is None:
            raise BrokerRejected(
                f"모의투자에서는 제공되지 않는 조회입니다 ({op})", "kis.unsupported_on_mock"
            )
        return tr

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
            "POST", wire.ORDER_CASH, self._tr(op, key), body=body, command=True
        )
        odno, org = _order_output(reply.data)
        self._known[(account.account_id, odno)] = _Known(
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
        tr = self._tr("rvsecncl", key)
        venue = request.venue if request.venue in wire.VENUES else "KRX"
        root_known = self._known.setdefault((account.account_id, root), replace(known))
        if request.reduce_by > 0:
            body = self._rvse_body(
                account, known, head, "02", request.reduce_by, 0, all_qty=False, venue=venue
            )
            # Its cancel notice is a reduction, not the end of the order.
            self._reductions[(account.account_id, head)] = request.reduce_by
            try:
                await key.client.request("POST", wire.ORDER_RVSECNCL, tr, body=body, command=True)
            except BrokerRejected:
                self._reductions.pop((account.account_id, head), None)
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
        self._known[(account.account_id, odno)] = replace(
            known,
            org_no=org or known.org_no,
            qty=request.new_qty,
            price=request.new_price,
            client_order_id=root_known.client_order_id,
        )
        self._link(account.account_id, root, odno)
        return ModifyAck(broker_order_id=root, modify_order_no=odno, org_no=org)

    async def _current(self, account: AccountRef, root: str) -> str:
        """The number now carrying the order hoga knows as ``root`` (itself unless modified).

        A process that did not place the order (a restart) learns modify chains from the
        open-order list, whose rows name the order each modify replaced."""
        ck = (account.account_id, root)
        if ck not in self._head and ck not in self._known:
            await self.open_orders(account)
        return self._head.get(ck, root)

    def _link(self, account_id: int, root: str, odno: str) -> None:
        """``odno`` (a modify's number) now carries the order hoga knows as ``root``."""
        self._root[(account_id, odno)] = root
        self._head[(account_id, root)] = odno

    def _root_of(self, account_id: int, odno: str) -> str:
        seen = 0
        while (account_id, odno) in self._root and seen < 100:
            odno = self._root[(account_id, odno)]
            seen += 1
        return odno

    async def cancel(
        self, account: AccountRef, broker_order_id: str, symbol: str, qty: int
    ) -> None:
        root = wire.norm_order_no(broker_order_id)
        head = await self._current(account, root)
        known = await self._order_info(account, head)
        body = self._rvse_body(account, known, head, "02", 0, 0, all_qty=True, venue=known.venue)
        key = self.key(account)
        await key.client.request(
            "POST", wire.ORDER_RVSECNCL, self._tr("rvsecncl", key), body=body, command=True
        )

    def _rvse_body(
        self,
        account: AccountRef,
        known: _Known,
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

    async def _order_info(self, account: AccountRef, broker_order_id: str) -> _Known:
        """The order's branch number (needed to modify/cancel), from memory or the reports."""
        odno = wire.norm_order_no(broker_order_id)
        known = self._known.get((account.account_id, odno))
        if known is not None and known.org_no:
            return known
        await self.open_orders(account)
        known = self._known.get((account.account_id, odno))
        if known is None or not known.org_no:
            raise BrokerRejected(
                f"KIS에서 주문 {odno}을(를) 찾을 수 없습니다 (order not found at KIS)",
                "kis.order_not_found",
            )
        return known

    # ------------------------------------------------------------------ reports

    async def open_orders(self, account: AccountRef) -> list[OrderStatusReport]:
        """Orders that can still be modified or cancelled.

        Real accounts ask ``inquire-psbl-rvsecncl``; the mock server does not offer it
        (kis.md §5.2), so mock accounts read today's unfilled orders from the daily list.
        """
        cano, prdt = self._split(account)
        key = self.key(account)
        today = self._clock.now().astimezone(KST).date()
        if wire.tr_id("psbl_rvsecncl", key.env) is None:
            return [
                r
                for r in await self.order_reports(account, today)
                if r.status in (S.ACCEPTED, S.PARTIALLY_FILLED)
            ]
        params = {
            "CANO": cano,
            "ACNT_PRDT_CD": prdt,
            "INQR_DVSN_1": "0",
            "INQR_DVSN_2": "0",
        }
        bodies = await key.client.pages(
            wire.INQUIRE_PSBL_RVSECNCL, self._tr("psbl_rvsecncl", key), params
        )
        out = []
        for body in bodies:
            for r in _rows(body, "output"):
                orig = wire.norm_order_no(str(r.get("orgn_odno") or ""))
                odno = wire.norm_order_no(str(r.get("odno") or ""))
                if orig and odno and orig != odno:
                    self._link(account.account_id, self._root_of(account.account_id, orig), odno)
                row = {**r, "rmn_qty": r.get("psbl_qty"), "ord_dt": today.strftime("%Y%m%d")}
                rep = self._report_from_row(account.account_id, row, today, today, set())
                if rep is not None:
                    out.append(rep)
        return out

    async def order_reports(self, account: AccountRef, day: date) -> list[OrderStatusReport]:
        cano, prdt = self._split(account)
        key = self.key(account)
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
        bodies = await key.client.pages(
            wire.INQUIRE_DAILY_CCLD, self._tr("daily_ccld", key), params
        )
        rows: list[dict[str, Any]] = []
        for body in bodies:
            rows += _rows(body, "output1")
        today = self._clock.now().astimezone(KST).date()
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
                self._link(account.account_id, self._root_of(account.account_id, orig), odno)
            rep = self._report_from_row(account.account_id, r, day, today, cancelled)
            if rep is not None:
                reports.append(rep)
        return self._fold_chains(account.account_id, reports)

    def _fold_chains(
        self, account_id: int, reports: list[OrderStatusReport]
    ) -> list[OrderStatusReport]:
        """One report per order hoga placed: a modified order's numbers are folded into its
        root - executions summed over every number, price and state from the live one."""
        groups: dict[str, list[OrderStatusReport]] = {}
        for rep in reports:
            groups.setdefault(self._root_of(account_id, rep.broker_order_id), []).append(rep)
        out = []
        for root, parts in groups.items():
            if len(parts) == 1 and parts[0].broker_order_id == root:
                out.append(parts[0])
                continue
            first = next((p for p in parts if p.broker_order_id == root), parts[0])
            head = parts[-1]
            filled = sum(p.filled_qty for p in parts)
            amount = sum(p.filled_amount or p.avg_price * p.filled_qty for p in parts)
            live = [p for p in parts if p.status in (S.ACCEPTED, S.PARTIALLY_FILLED)]
            known = self._known.get((account_id, root))
            qty = known.qty if known is not None and known.qty else first.qty
            if live:
                qty = filled + sum(p.qty - p.filled_qty for p in live)
                status = S.PARTIALLY_FILLED if filled else S.ACCEPTED
            elif filled >= qty:
                status = S.FILLED
            else:
                status = head.status
            ck = (account_id, root)
            self._reported_cum[ck] = max(self._reported_cum.get(ck, 0), filled)
            if known is None or known.client_order_id is None:
                self._notice_cum[ck] = max(self._notice_cum.get(ck, 0), filled)
            out.append(
                replace(
                    head,
                    broker_order_id=root,
                    client_order_id=first.client_order_id,
                    qty=qty,
                    filled_qty=filled,
                    filled_amount=amount if filled else None,
                    avg_price=amount // filled if filled else 0,
                    status=status,
                    ts=first.ts,
                    org_no=first.org_no,
                )
            )
        return out

    def _report_from_row(
        self,
        account_id: int,
        r: dict[str, Any],
        day: date,
        today: date,
        cancelled: set[str],
    ) -> OrderStatusReport | None:
        odno = wire.norm_order_no(str(r.get("odno") or ""))
        side = wire.SIDE_OF.get(str(r.get("sll_buy_dvsn_cd") or ""))
        if not odno or side is None:
            return None
        qty = wire.to_int(r.get("ord_qty"))
        filled = wire.to_int(r.get("tot_ccld_qty"))
        remaining = wire.to_int(r.get("rmn_qty"), max(qty - filled, 0))
        rejected = wire.to_int(r.get("rjct_qty"))
        cancel_qty = wire.to_int(r.get("cnc_cfrm_qty"))
        otype = wire.ORD_TYPE_OF.get(str(r.get("ord_dvsn_cd") or "00"), OrderType.LIMIT)
        price = wire.to_int(r.get("ord_unpr")) or None
        if qty > 0 and filled >= qty:
            status = S.FILLED
        elif rejected > 0 and filled == 0 and remaining == 0:
            status = S.REJECTED
        elif remaining == 0 and filled < qty:
            # Cancelled (in full, or the rest after a modify moved it): a partial cancel
            # leaves the order working with fewer shares.
            status = S.CANCELLED
        elif remaining > 0 and ("rmn_qty" not in r) and (cancel_qty > 0 or odno in cancelled):
            # No remaining quantity in the row: a cancel mark is all there is to go by.
            status = S.CANCELLED
        elif day < today:
            status = S.EXPIRED
        elif filled > 0:
            status = S.PARTIALLY_FILLED
        else:
            status = S.ACCEPTED
        if status in (S.ACCEPTED, S.PARTIALLY_FILLED) and r.get("rmn_qty") not in (None, ""):
            # What is working now: a partial cancel (a modify's reduction) left fewer shares.
            qty = filled + remaining
        amount = wire.to_int(r.get("tot_ccld_amt"))
        avg = _round(r.get("avg_prvs")) or (amount // filled if filled else 0)
        symbol = str(r.get("pdno") or "")
        org = str(r.get("ord_gno_brno") or "") or None
        known = self._known.setdefault((account_id, odno), _Known())
        known.org_no = known.org_no or org
        known.symbol = known.symbol or symbol
        known.side = known.side or side
        known.type = otype
        known.qty = known.qty or qty
        known.price = known.price if known.price is not None else price
        venue = str(r.get("excg_id_dvsn_cd") or r.get("excg_id_dvsn_Cd") or "")
        if venue in wire.VENUES:
            known.venue = venue
        ck = (account_id, odno)
        if ck not in self._notice_cum:
            # An order placed by this process has had every notice since its birth counted
            # (none yet); any other (placed before a restart, or elsewhere) starts from what
            # this report already accounts for.
            self._notice_cum[ck] = 0 if known.client_order_id is not None else filled
        self._reported_cum[ck] = max(self._reported_cum.get(ck, 0), filled)
        return OrderStatusReport(
            broker_order_id=odno,
            client_order_id=known.client_order_id,
            symbol=symbol,
            side=side,
            type=otype,
            qty=qty,
            price=price if otype.needs_price else None,
            filled_qty=filled,
            avg_price=avg,
            filled_amount=amount if filled else None,
            status=status,
            ts=wire.kst_ts(
                str(r.get("ord_dt") or day.strftime("%Y%m%d")), str(r.get("ord_tmd") or "")
            ),
            org_no=org,
            reason="broker refused" if status == S.REJECTED else None,
        )

    async def fill_reports(self, account: AccountRef, day: date) -> list[FillReport]:
        """Executions seen as notices by this process (see the module docstring)."""
        return [
            f
            for f in self._notice_fills.get(account.account_id, [])
            if datetime.fromtimestamp(f.ts, KST).date() == day
        ]

    async def balance(self, account: AccountRef) -> Balance:
        cano, prdt = self._split(account)
        key = self.key(account)
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
        bodies = await key.client.pages(wire.INQUIRE_BALANCE, self._tr("balance", key), params)
        positions: list[PositionReport] = []
        totals: dict[str, Any] = {}
        for body in bodies:
            for r in _rows(body, "output1"):
                qty = wire.to_int(r.get("hldg_qty"))
                if qty > 0:
                    positions.append(
                        PositionReport(
                            str(r.get("pdno") or ""), qty, _round(r.get("pchs_avg_pric"))
                        )
                    )
            out2 = _rows(body, "output2")
            if out2:
                totals = out2[0]
        cash = wire.to_int(totals.get("dnca_tot_amt"))
        orderable = wire.to_int(totals.get("prvs_rcdl_excc_amt"), cash)
        return Balance(cash=cash, orderable=orderable, positions=positions)

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

    def _on_notice(self, key: KisKey, rec: list[str]) -> None:
        f = dict(zip(wire.NOTICE_FIELDS, rec, strict=False))
        account_id = self._account_of(key, f.get("ACNT_NO", ""))
        if account_id is None:
            return
        odno = wire.norm_order_no(f.get("ODER_NO", ""))
        side = wire.SIDE_OF.get(f.get("SELN_BYOV_CLS", ""))
        symbol = f.get("STCK_SHRN_ISCD", "").strip()
        if not odno or side is None:
            return
        today = self._clock.now().astimezone(KST).date()
        ts = wire.kst_ts(today, f.get("STCK_CNTG_HOUR", ""))
        known = self._known.setdefault((account_id, odno), _Known(symbol=symbol, side=side))
        branch = f.get("BRNC_NO", "").strip()
        if branch and not known.org_no:
            known.org_no = branch
        orig = wire.norm_order_no(f.get("OODER_NO", ""))
        if f.get("RCTF_CLS") == "1" and orig and orig != odno:
            # A modify's number: it carries on the order it replaced.
            self._link(account_id, self._root_of(account_id, orig), odno)
        root = self._root_of(account_id, odno)
        if f.get("CNTG_YN") == "2":
            rk = self._known.get((account_id, root), known)
            self._on_fill(account_id, root, rk, symbol, side, f, ts)
            return
        otype = wire.ORD_TYPE_OF.get(f.get("ODER_KIND", ""), known.type)
        qty = wire.to_int(f.get("ODER_QTY")) or known.qty
        price = wire.to_int(f.get("ODER_PRC")) or known.price
        target, status = root, S.ACCEPTED
        reason = None
        if f.get("RFUS_YN") == "1":
            if f.get("RCTF_CLS") in ("1", "2"):
                log.warning("kis: a modify/cancel of order %s was refused", orig or odno)
                return
            status, reason = S.REJECTED, "KIS 주문 거부 (refused)"
        elif f.get("ACPT_YN") == "3":
            status = S.CANCELLED
        elif f.get("RCTF_CLS") == "2":
            if not orig:
                return
            reduced = self._reductions.get((account_id, orig))
            if reduced is not None and reduced == qty:
                # The partial cancel of a modify that reduced the order: it stays working.
                del self._reductions[(account_id, orig)]
                return
            target, status = self._root_of(account_id, orig), S.CANCELLED
        tk = self._known.get((account_id, target), known)
        report = OrderStatusReport(
            broker_order_id=target,
            client_order_id=tk.client_order_id,
            symbol=symbol,
            side=side,
            type=otype,
            qty=tk.qty or qty,
            price=(tk.price or price) if otype.needs_price else None,
            filled_qty=0 if status != S.ACCEPTED else self._notice_cum.get((account_id, target), 0),
            status=status,
            ts=ts,
            org_no=tk.org_no,
            reason=reason,
        )
        self._events.emit(account_id, OrderUpdate(report))

    def _on_fill(
        self,
        account_id: int,
        odno: str,
        known: _Known,
        symbol: str,
        side: Side,
        f: dict[str, str],
        ts: float,
    ) -> None:
        qty = wire.to_int(f.get("CNTG_QTY"))
        price = wire.to_int(f.get("CNTG_UNPR"))
        if qty <= 0 or price <= 0:
            return
        ck = (account_id, odno)
        # The count is the order's own only if this process has followed it from its birth
        # (placed here) or from a report's total; otherwise (a restart) it starts mid-way.
        followed = ck in self._notice_cum or known.client_order_id is not None
        cum = self._notice_cum.get(ck, 0) + qty
        self._notice_cum[ck] = cum
        if cum <= self._reported_cum.get(ck, 0):
            # A report already carried this execution and the reconciler booked it from there.
            return
        base = f"{odno}-{f.get('STCK_CNTG_HOUR', '')}-{qty}-{price}"
        fill_id, n = base, 1
        seen = self._fill_ids[account_id]
        while fill_id in seen:
            n += 1
            fill_id = f"{base}-{n}"
        seen.add(fill_id)
        fill = FillReport(
            broker_order_id=odno,
            fill_id=fill_id,
            symbol=symbol,
            side=side,
            qty=qty,
            price=price,
            ts=ts,
            client_order_id=known.client_order_id,
            cum_qty=cum if followed else None,
        )
        self._notice_fills[account_id].append(fill)
        self._events.emit(account_id, FillEvent(fill))

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
            for k in self._keys.values()
        }


def _rows(body: dict[str, Any], name: str) -> list[dict[str, Any]]:
    value = body.get(name)
    if isinstance(value, dict):
        return [value]
    if isinstance(value, list):
        return [r for r in value if isinstance(r, dict)]
    return []


def _round(value: object) -> int:
    try:
        return int(Decimal(str(value or "0").strip() or "0").to_integral_value(ROUND_HALF_UP))
    except ArithmeticError:
        return 0


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
