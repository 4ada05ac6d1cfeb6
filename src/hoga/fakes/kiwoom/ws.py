"""The Kiwoom fake's WebSocket side (``/api/dostk/websocket``): LOGIN, PING echoed unchanged
(else ``SYSTEM R10002``), REG/REMOVE, and REAL frames - ``00``/``04`` for the key's account,
``0B``/``0D`` for registered items; one session per app key (a new LOGIN sends ``SYSTEM R10001``
to the old one and closes it). See ``server.py``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from typing import TYPE_CHECKING, Any, Final

from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from hoga.domain import krx
from hoga.domain.market import Tick
from hoga.fakes.common import Outbox
from hoga.fakes.kiwoom.exchange import Values
from hoga.fakes.kiwoom.formats import change, hms, rate, signed
from hoga.fakes.kiwoom.rest import loads

if TYPE_CHECKING:
    from hoga.fakes.kiwoom.server import KiwoomFake

REAL_TYPES: Final = frozenset({"00", "04", "0A", "0B", "0C", "0D", "0E", "0H", "0J"})
ACCOUNT_TYPES: Final = frozenset({"00", "04"})
TYPE_NAMES: Final = {"00": "주문체결", "04": "잔고", "0B": "주식체결", "0D": "주식호가잔량"}


class WsSession(Outbox):
    """One client's session: its app key once logged in, its registration groups, and the
    heartbeat it owes. Ends by closing with ``close_code`` (1000 unless set)."""

    def __init__(self, websocket: WebSocket) -> None:
        super().__init__(websocket, close_code=1000)
        self.app_key = ""
        self.groups: dict[str, set[tuple[str, str]]] = {}
        self.index: dict[str, set[str]] = {}
        self.last_ping: dict[str, Any] | None = None
        self.ping_sent_at = 0.0
        self.pongs = 0
        self.bad_pongs = 0

    def push(self, msg: dict[str, Any]) -> None:
        self.send(json.dumps(msg, ensure_ascii=False))

    def reindex(self) -> None:
        index: dict[str, set[str]] = {}
        for regs in self.groups.values():
            for t, item in regs:
                index.setdefault(t, set()).add(item)
        self.index = index

    def wants(self, kind: str, item: str | None = None) -> bool:
        items = self.index.get(kind)
        if not items:
            return False
        return item is None or item in items

    @property
    def registrations(self) -> int:
        return sum(len(r) for r in self.groups.values())


class KiwoomWsApi:
    """The WebSocket endpoint of one ``KiwoomFake`` and its realtime pushes; sessions are kept
    on the fake (one per app key)."""

    def __init__(self, fake: KiwoomFake) -> None:
        self.fake = fake

    def routes(self) -> list[WebSocketRoute]:
        return [WebSocketRoute("/api/dostk/websocket", self._websocket)]

    def _session_of_account(self, account_no: str) -> WsSession | None:
        book = self.fake.exchange.books.get(account_no)
        return None if book is None else self.fake.sessions.get(book.app_key)

    def on_execution(self, account_no: str, values: Values) -> None:
        session = self._session_of_account(account_no)
        if session is None or not self.fake.faults.push_executions or not session.wants("00"):
            return
        session.push(real("00", "", values))

    def on_balance(self, account_no: str, values: Values) -> None:
        session = self._session_of_account(account_no)
        if session is None or not self.fake.faults.push_executions or not session.wants("04"):
            return
        session.push(real("04", "", values))

    def on_tick(self, tick: Tick) -> None:
        if not self.fake.sessions:
            return
        trade: dict[str, Any] | None = None
        book: dict[str, Any] | None = None
        for session in self.fake.sessions.values():
            if session.wants("0B", tick.symbol):
                trade = trade or real("0B", tick.symbol, trade_values(tick))
                session.push(trade)
            if session.wants("0D", tick.symbol):
                book = book or real("0D", tick.symbol, self._book_values(tick))
                session.push(book)

    def _book_values(self, tick: Tick) -> Values:
        inst = self.fake.market.instrument(tick.symbol)
        kind = inst.kind if inst else "stock"
        base = tick.base_price
        v: Values = {"21": hms(tick.ts), "121": "0", "125": "0"}
        ask, bid = tick.ask, tick.bid
        tot_ask = tot_bid = 0
        for level in range(10):
            a_size = tick.ask_size if level == 0 else 100 * (level + 1)
            b_size = tick.bid_size if level == 0 else 100 * (level + 1)
            v[str(41 + level)] = signed(ask, base)
            v[str(61 + level)] = str(a_size)
            v[str(51 + level)] = signed(bid, base)
            v[str(71 + level)] = str(b_size)
            tot_ask += a_size
            tot_bid += b_size
            ask = krx.step_price(ask, 1, kind)
            bid = max(1, krx.step_price(bid, -1, kind))
        v["121"], v["125"] = str(tot_ask), str(tot_bid)
        return v

    async def _websocket(self, websocket: WebSocket) -> None:
        await websocket.accept()
        session = WsSession(websocket)
        writer = asyncio.get_running_loop().create_task(session.writer())
        pinger: asyncio.Task[None] | None = None
        try:
            try:
                first = await asyncio.wait_for(
                    websocket.receive_text(), self.fake.faults.login_timeout
                )
            except TimeoutError:
                session.push(
                    {"trnm": "SYSTEM", "code": "R10004", "message": "로그인 요청이 없습니다"}
                )
                session.end()
                return
            msg = loads(first)
            if msg is None or msg.get("trnm") != "LOGIN":
                session.push(
                    {"trnm": "SYSTEM", "code": "R10004", "message": "로그인 요청이 없습니다"}
                )
                session.end()
                return
            tok = self.fake.rest.token_of(f"Bearer {msg.get('token') or ''}")
            if isinstance(tok, tuple):
                code, text = tok
                session.push(
                    {
                        "trnm": "LOGIN",
                        "return_code": 1,
                        "return_msg": f"인증에 실패했습니다[{code}:{text}] CODE={code}",
                    }
                )
                session.end()
                return
            key = tok.app_key
            session.app_key = key
            old = self.fake.sessions.get(key)
            if old is not None:
                old.push(
                    {
                        "trnm": "SYSTEM",
                        "code": "R10001",
                        "message": "동일한 App key로 접속이 되었습니다. 기존 세션을 종료합니다.",
                    }
                )
                old.end(1000)
                self.fake.stats[key].takeovers += 1
            self.fake.sessions[key] = session
            self.fake.stats[key].ws_logins += 1
            session.push({"trnm": "LOGIN", "return_code": 0, "return_msg": "", "sor_yn": "N"})
            pinger = asyncio.get_running_loop().create_task(self._pinger(session))
            while True:
                text = await websocket.receive_text()
                self._on_ws_message(session, text)
        except (WebSocketDisconnect, RuntimeError):
            pass
        finally:
            if session.app_key and self.fake.sessions.get(session.app_key) is session:
                del self.fake.sessions[session.app_key]
            if pinger is not None:
                pinger.cancel()
            session.end()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(writer, 3)

    async def _pinger(self, session: WsSession) -> None:
        loop = asyncio.get_running_loop()
        seq = 0
        while True:
            await asyncio.sleep(self.fake.faults.ping_interval)
            if (
                session.last_ping is not None
                and loop.time() - session.ping_sent_at > self.fake.faults.heartbeat_timeout
            ):
                session.push(
                    {"trnm": "SYSTEM", "code": "R10002", "message": "Heartbeat 응답이 없습니다"}
                )
                session.end()
                return
            seq += 1
            ping = {"trnm": "PING", "seq": str(seq)}
            if session.last_ping is None:
                session.ping_sent_at = loop.time()
            session.last_ping = ping
            session.push(ping)

    def _on_ws_message(self, session: WsSession, text: str) -> None:
        msg = loads(text)
        if msg is None:
            return
        trnm = msg.get("trnm")
        if trnm == "PING":
            if msg == session.last_ping:
                session.pongs += 1
                session.last_ping = None
            else:
                session.bad_pongs += 1
            return
        if trnm in ("REG", "REMOVE"):
            session.push(self._register(session, trnm, msg))

    def _register(self, session: WsSession, trnm: str, msg: dict[str, Any]) -> dict[str, Any]:
        def refuse(text: str) -> dict[str, Any]:
            return {"trnm": trnm, "return_code": 1, "return_msg": text}

        grp = str(msg.get("grp_no") or "")
        data = msg.get("data")
        if not grp or len(grp) > 4 or not isinstance(data, list):
            return refuse("grp_no 또는 data가 올바르지 않습니다")
        regs: set[tuple[str, str]] = set()
        for entry in data:
            if not isinstance(entry, dict):
                return refuse("data 형식이 올바르지 않습니다")
            items, types = entry.get("item"), entry.get("type")
            if not isinstance(items, list) or not isinstance(types, list):
                return refuse("item/type은 목록이어야 합니다")
            for t in types:
                if t not in REAL_TYPES:
                    return refuse(f"실시간 항목이 올바르지 않습니다 ({str(t)[:4]})")
                for item in items:
                    item = str(item)
                    if t not in ACCOUNT_TYPES and item not in self.fake.universe:
                        return refuse(f"종목코드가 올바르지 않습니다 ({item[:12]})")
                    regs.add((t, "" if t in ACCOUNT_TYPES else item))
        if trnm == "REMOVE":
            session.groups.get(grp, set()).difference_update(regs)
            session.reindex()
            return {"trnm": trnm, "return_code": 0, "return_msg": ""}
        current = session.groups.get(grp, set())
        if str(msg.get("refresh", "1")) == "0":
            current = set()
        merged = current | regs
        others = sum(len(r) for g, r in session.groups.items() if g != grp)
        if others + len(merged) > self.fake.max_registrations:
            return refuse(f"등록 종목수 초과 (최대 {self.fake.max_registrations}건)")
        session.groups[grp] = merged
        session.reindex()
        return {"trnm": trnm, "return_code": 0, "return_msg": ""}


def real(kind: str, item: str, values: Values) -> dict[str, Any]:
    return {
        "trnm": "REAL",
        "data": [
            {"type": kind, "name": TYPE_NAMES.get(kind, kind), "item": item, "values": values}
        ],
    }


def trade_values(tick: Tick) -> Values:
    base = tick.base_price
    aggressor = "+" if tick.price >= tick.ask and tick.ask else "-"
    return {
        "20": hms(tick.ts),
        "10": signed(tick.price, base),
        "11": change(tick.price - base),
        "12": rate(tick.price - base, base),
        "27": signed(tick.ask, base),
        "28": signed(tick.bid, base),
        "15": f"{aggressor}{tick.volume}",
        "13": str(tick.cum_volume),
        "14": str(tick.cum_volume * tick.price // 1_000_000),
        "16": signed(tick.price, base),
        "17": signed(tick.price, base),
        "18": signed(tick.price, base),
        "228": "100.00",
        "290": "2",
        "9081": "1",
    }
