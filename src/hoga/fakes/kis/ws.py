"""The KIS fake's WebSocket side (``/tryitout``): approval keys, registrations, realtime
trades and books, and AES-encrypted execution notices (see ``server.py``).

One session per app key (a second is refused with OPSP8996), at most ``max_registrations``
registrations per session (OPSP0008), PINGPONG every ``ping_interval`` seconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
import string
from datetime import datetime
from typing import TYPE_CHECKING

from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from hoga.domain.clock import KST
from hoga.domain.market import Tick
from hoga.fakes.common import Outbox, close_quietly
from hoga.fakes.kis import frames
from hoga.fakes.kis.exchange import Execution
from hoga.fakes.kis.frames import pad

if TYPE_CHECKING:
    from hoga.fakes.kis.server import KisFake

NOTICE_TR = {"real": "H0STCNI0", "mock": "H0STCNI9"}
MARKET_TRS = ("H0STCNT0", "H0STASP0")


class WsSession(Outbox):
    """One client's session: its app key once it registered, its registrations, and the AES
    key and IV its execution notices are encrypted with."""

    def __init__(self, ws: WebSocket) -> None:
        super().__init__(ws)
        self.ws = ws
        self.app_key: str | None = None
        self.regs: set[tuple[str, str]] = set()
        alphabet = string.ascii_letters + string.digits
        self.aes_key = "".join(secrets.choice(alphabet) for _ in range(32))
        self.aes_iv = "".join(secrets.choice(alphabet) for _ in range(16))


class KisWsApi:
    """The WebSocket endpoint of one ``KisFake``; sessions are kept on the fake."""

    def __init__(self, fake: KisFake) -> None:
        self.fake = fake

    def routes(self) -> list[WebSocketRoute]:
        return [WebSocketRoute("/tryitout", self._ws)]

    def push_ticks(self, ticks: list[Tick]) -> None:
        """Send the trades (H0STCNT0) and books (H0STASP0) of ``ticks`` to the sessions
        registered for their symbols."""
        by_symbol: dict[str, list[Tick]] = {}
        for tick in ticks:
            by_symbol.setdefault(tick.symbol, []).append(tick)
        for sess in list(self.fake.sessions):
            if sess.closed or not sess.regs:
                continue
            for symbol, group in by_symbol.items():
                inst = self.fake.universe.get(symbol)
                kind = inst.kind if inst else "stock"
                if ("H0STCNT0", symbol) in sess.regs:
                    stats = self.fake.exchange.day_stats.get(symbol) or {
                        "open": group[0].price,
                        "high": group[0].price,
                        "low": group[0].price,
                        "amount": 0,
                    }
                    recs = [
                        {**frames.trade_record(t, kind, stats), **self.fake.flow.fields(t)}
                        for t in group
                    ]
                    sess.send(frames.frame("H0STCNT0", recs, frames.TRADE_LAYOUT))
                if ("H0STASP0", symbol) in sess.regs:
                    sess.send(
                        frames.frame(
                            "H0STASP0", [frames.book_record(group[-1], kind)], frames.BOOK_LAYOUT
                        )
                    )

    async def _pinger(self, sess: WsSession) -> None:
        while True:
            await asyncio.sleep(self.fake.ping_interval)
            sess.send(frames.pingpong(self.fake.clock.now()))

    def on_execution(self, ex: Execution) -> None:
        tr = NOTICE_TR[self.fake.env]
        acct, o = ex.account, ex.order
        t = datetime.fromtimestamp(ex.ts or self.fake.clock.time(), KST)
        inst = self.fake.universe.get(o.symbol)
        rec = {
            "CUST_ID": acct.hts_id,
            "ACNT_NO": acct.account,
            "ODER_NO": pad(o.odno),
            "OODER_NO": pad(o.orig_odno),
            "SELN_BYOV_CLS": o.side,
            "RCTF_CLS": {"cancel": "2", "modify": "1"}.get(ex.kind, "0"),
            "ODER_KIND": o.dvsn,
            "ODER_COND": "0",
            "STCK_SHRN_ISCD": o.symbol,
            "CNTG_QTY": str(ex.qty),
            "CNTG_UNPR": str(ex.price),
            "STCK_CNTG_HOUR": t.strftime("%H%M%S"),
            "RFUS_YN": "1" if ex.kind == "reject" else "0",
            "CNTG_YN": "2" if ex.kind == "fill" else "1",
            "ACPT_YN": {"accept": "1", "ioc_cancel": "3"}.get(ex.kind, "2"),
            "BRNC_NO": o.org_no,
            "ODER_QTY": str(o.qty),
            "ACNT_NAME": acct.name,
            "ORD_COND_PRC": "0",
            "ORD_EXG_GB": {"NXT": "2", "SOR": "3"}.get(o.venue, "1"),
            "POPUP_YN": "Y",
            "FILLER": "",
            "CRDT_CLS": "10",
            "CRDT_LOAN_DATE": "",
            "CNTG_ISNM40": inst.name if inst else "",
            "ODER_PRC": str(o.price),
        }
        for sess in list(self.fake.sessions):
            if (tr, acct.hts_id) in sess.regs and sess.app_key is not None:
                key = self.fake.keys.get(sess.app_key)
                if key is not None and acct.hts_id in key.hts_ids:
                    sess.send(
                        frames.frame(
                            tr, [rec], frames.NOTICE_LAYOUT, key_iv=(sess.aes_key, sess.aes_iv)
                        )
                    )

    async def _ws(self, websocket: WebSocket) -> None:
        await websocket.accept()
        sess = WsSession(websocket)
        self.fake.sessions.add(sess)
        self.fake.ws_sessions_opened += 1
        loop = asyncio.get_running_loop()
        writer = loop.create_task(sess.writer())
        pinger = loop.create_task(self._pinger(sess))
        try:
            while not sess.closed:
                text = await websocket.receive_text()
                await self._ws_message(sess, text)
        except (WebSocketDisconnect, RuntimeError):
            pass
        finally:
            self.forget(sess)
            pinger.cancel()
            sess.end()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await asyncio.wait_for(writer, 2)
            with contextlib.suppress(asyncio.CancelledError):
                await pinger

    def forget(self, sess: WsSession) -> None:
        self.fake.sessions.discard(sess)
        if sess.app_key is not None and self.fake.by_key.get(sess.app_key) is sess:
            del self.fake.by_key[sess.app_key]

    async def _ws_message(self, sess: WsSession, text: str) -> None:
        try:
            msg = json.loads(text)
        except ValueError:
            sess.send(frames.control("", "", "1", "OPSP9999", "JSON PARSING ERROR"))
            return
        header = msg.get("header") or {}
        if header.get("tr_id") == "PINGPONG":
            self.fake.pongs += 1
            return
        body_in = ((msg.get("body") or {}).get("input")) or {}
        tr_id = str(body_in.get("tr_id") or "")
        tr_key = str(body_in.get("tr_key") or "")
        app_key = self.fake.approvals.get(str(header.get("approval_key") or ""))
        if app_key is None:
            sess.send(
                frames.control(tr_id, tr_key, "1", "OPSP0011", "invalid approval : NOT FOUND")
            )
            return
        if sess.app_key is None:
            holder = self.fake.by_key.get(app_key)
            if holder is not None and holder is not sess and not holder.closed:
                self.fake.ws_refused[app_key] += 1
                sess.send(frames.control(tr_id, tr_key, "1", "OPSP8996", "ALREADY IN USE appkey"))
                sess.closed = True
                await asyncio.sleep(0)
                sess.end()
                await close_quietly(sess.ws, 1008)
                return
            sess.app_key = app_key
            self.fake.by_key[app_key] = sess
        elif sess.app_key != app_key:
            sess.send(
                frames.control(tr_id, tr_key, "1", "OPSP0011", "invalid approval : another appkey")
            )
            return
        tr_type = str(header.get("tr_type") or "")
        reg = (tr_id, tr_key)
        if tr_type == "2":
            if reg in sess.regs:
                sess.regs.discard(reg)
                sess.send(frames.control(tr_id, tr_key, "0", "OPSP0001", "UNSUBSCRIBE SUCCESS"))
            else:
                sess.send(
                    frames.control(tr_id, tr_key, "1", "OPSP0003", "UNSUBSCRIBE ERROR(not found!)")
                )
            return
        if tr_type != "1":
            sess.send(
                frames.control(tr_id, tr_key, "1", "OPSP9999", f"invalid tr_type {tr_type!r}")
            )
            return
        key = self.fake.keys[app_key]
        if tr_id in MARKET_TRS:
            # A master symbol beyond the bundle starts trading when first registered.
            if not self.fake.market.trades(tr_key):
                sess.send(
                    frames.control(
                        tr_id, tr_key, "1", "OPSP0019", "invalid tr_key (fake: 종목코드 없음)"
                    )
                )
                return
        elif tr_id == NOTICE_TR[self.fake.env]:
            if tr_key not in key.hts_ids:
                sess.send(
                    frames.control(
                        tr_id, tr_key, "1", "OPSP0019", "invalid tr_key (fake: HTS ID 불일치)"
                    )
                )
                return
        else:
            sess.send(
                frames.control(tr_id, tr_key, "1", "OPSP0017", f"invalid tr_id {tr_id} (fake)")
            )
            return
        if reg in sess.regs:
            sess.send(frames.control(tr_id, tr_key, "1", "OPSP0002", "ALREADY IN SUBSCRIBE"))
            return
        if len(sess.regs) >= self.fake.max_registrations:
            sess.send(frames.control(tr_id, tr_key, "1", "OPSP0008", "MAX SUBSCRIBE OVER"))
            return
        sess.regs.add(reg)
        sess.send(
            frames.control(
                tr_id,
                tr_key,
                "0",
                "OPSP0000",
                "SUBSCRIBE SUCCESS",
                {"iv": sess.aes_iv, "key": sess.aes_key},
            )
        )
