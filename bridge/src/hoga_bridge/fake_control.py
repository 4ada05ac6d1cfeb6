"""An imitation of the OpenAPI+ control for tests on any OS (kiwoom.md §B).

Same methods, same events, same asynchrony as the OCX: calls return a code at once, answers come
as events delivered only inside ``pump`` (the control's event loop), data is read with getters
inside the handler. What it reproduces:

* login: ``CommConnect`` answers with ``OnEventConnect`` after ``login_delay`` seconds; a user
  configured to fail gets that code (−100, −101...). One login per process: a second
  ``CommConnect`` in the same process fails (``CommTerminate`` does not log out, kiwoom.md B2).
* pacing: TRs at most ``tr_rate`` per second and ``tr_per_hour`` per hour (the koapy-quoted
  style of limits), else ``CommRqData`` returns −200; orders at most ``order_rate`` per second,
  else ``SendOrder`` returns −308. Nothing over the limit is processed.
* orders: ``SendOrder`` types 1-6 (buy, sell, cancel, modify); the order is at the "server"
  the moment ``SendOrder`` returns 0, so a process that dies right after still placed it.
  Acceptance arrives as ``OnReceiveTrData`` (주문번호) and ``OnReceiveMsg``; a refusal as an empty
  주문번호 and the reason in ``OnReceiveMsg``. Modify and cancel get their own new order numbers.
* executions: market orders fill at once in partial pieces, limits when the simulated market
  crosses them; each piece is a chejan gubun 0 (접수/체결/확인 with FIDs 9201, 9203, 9001, 900-915)
  followed by a gubun 1 balance notice.
* state: each user's orders, cash and holdings live in ``state_dir/<user>.json`` (written
  atomically after every change), standing in for Kiwoom's servers: a new process logged in as
  the same user sees the earlier orders, as the real server's inquiries would show them.
* real time: ``SetRealReg`` (≤ 100 codes per call, ≤ 200 screens) then ``주식체결`` every
  ``tick_interval`` for the registered codes. Prices are a function of the wall clock and the
  code, so every process sees the same market.
* TRs: opt10001 (quote), opw00001 (cash), opw00018 (holdings), opt10075 (orders of the day with
  executions, paged by ``page_size`` with ``prev_next`` "2").

Faults for tests: ``inject("disconnect")`` drops the connection (``GetConnectState`` → 0).
Anything not in kiwoom.md (the exact refusal texts, the fake's own −1 for too many codes) is
marked as the fake's invention.
"""

from __future__ import annotations

import heapq
import itertools
import json
import math
import os
import time
import zlib
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from hoga_bridge import control as c

KST = timezone(timedelta(hours=9))

#: One login per process (the real control cannot log out; kiwoom.md B2).
_process_logged_in: list[str] = []


@dataclass
class FakeSettings:
    """How the imitation behaves; loaded from JSON (``FakeSettings.load``)."""

    state_dir: str = "."
    login_delay: float = 3.0
    #: user -> OnEventConnect code for a login that fails.
    login_fail: dict[str, int] = field(default_factory=dict)
    #: user -> account numbers (10 digits); unknown users get one derived account.
    users: dict[str, list[str]] = field(default_factory=dict)
    cash: int = 1_000_000_000
    tr_rate: int = 5
    tr_per_hour: int = 1000
    order_rate: int = 5
    answer_delay: float = 0.02
    fill_delay: float = 0.05
    tick_interval: float = 0.25
    page_size: int = 20
    #: Pieces a market order fills in (partial fills).
    pieces: int = 3

    @classmethod
    def load(cls, path: str | None) -> FakeSettings:
        if not path:
            return cls()
        data = json.loads(Path(path).read_text(encoding="utf-8"))
        return cls(**data)

    def accounts(self, user: str) -> list[str]:
        if user in self.users:
            return list(self.users[user])
        return [f"{zlib.crc32(user.encode()) % 10**8:08d}11"]


def tick_size(price: int) -> int:
    """The imitation's KRX price ladder (its exchange must refuse off-tick limits)."""
    for bound, step in ((2000, 1), (5000, 5), (20000, 10), (50000, 50), (200000, 100)):
        if price < bound:
            return step
    return 500 if price < 500000 else 1000


def market_price(code: str, t: float, interval: float) -> int:
    """Deterministic in (code, wall-clock step): every process sees the same market."""
    seed = zlib.crc32(code.encode())
    base = 5000 + (seed % 90) * 500
    step = tick_size(base)
    k = int(t / interval)
    wave = round(12 * math.sin(2 * math.pi * k / 240 + seed % 7))
    noise = zlib.crc32(f"{code}:{k}".encode()) % 3 - 1
    return base + step * (wave + noise)


class _Window:
    """At most ``limit`` events in any ``span`` seconds."""

    def __init__(self, limit: int, span: float) -> None:
        self.limit, self.span = limit, span
        self._times: deque[float] = deque()

    def take(self, now: float) -> bool:
        while self._times and self._times[0] <= now - self.span:
            self._times.popleft()
        if len(self._times) >= self.limit:
            return False
        self._times.append(now)
        return True


class UserBook:
    """One user's orders, cash and holdings at the imitation's "server", kept in a file."""

    def __init__(self, path: Path, cash: int, day: str) -> None:
        self.path = path
        self.doc: dict[str, Any] = {"day": day, "next_no": 1, "fill_no": 1, "orders": {}}
        self.doc.update({"cash": cash, "holdings": {}})
        if path.exists():
            loaded = json.loads(path.read_text(encoding="utf-8"))
            if loaded.get("day") == day:
                self.doc = loaded
            else:  # order numbers restart every day; money and holdings carry over
                self.doc["cash"], self.doc["holdings"] = loaded["cash"], loaded["holdings"]

    @property
    def orders(self) -> dict[str, dict[str, Any]]:
        orders: dict[str, dict[str, Any]] = self.doc["orders"]
        return orders

    def new_no(self) -> str:
        no = int(self.doc["next_no"])
        self.doc["next_no"] = no + 1
        return f"{no:07d}"

    def save(self) -> None:
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.doc, ensure_ascii=False), encoding="utf-8")
        os.replace(tmp, self.path)


class FakeControl:
    """See the module docstring. ``user`` is who the (auto-)login logs in as."""

    def __init__(
        self, user: str, settings: FakeSettings, clock: Callable[[], float] = time.time
    ) -> None:
        self.user = user
        self.s = settings
        self._clock = clock
        self._handler: c.ControlEvents | None = None
        self._timers: list[tuple[float, int, Callable[[], None]]] = []
        self._seq = itertools.count()
        self._connected = False
        self._login_started = False
        self._inputs: dict[str, str] = {}
        self._tr: dict[tuple[str, str], tuple[dict[str, str], list[dict[str, str]]]] = {}
        self._cursor: dict[tuple[str, str], int] = {}
        self._chejan: dict[int, str] = {}
        self._real: dict[str, dict[int, str]] = {}
        self._screens: dict[str, set[str]] = {}
        self._tr_windows = [_Window(settings.tr_rate, 1.0), _Window(settings.tr_per_hour, 3600)]
        self._order_window = _Window(settings.order_rate, 1.0)
        self.book: UserBook | None = None

    # --- plumbing

    def set_handler(self, events: c.ControlEvents) -> None:
        self._handler = events

    def _after(self, delay: float, fn: Callable[[], None]) -> None:
        heapq.heappush(self._timers, (self._clock() + delay, next(self._seq), fn))

    def pump(self, timeout: float) -> None:
        """Deliver the events that are due; sleep until the next one, at most ``timeout``."""
        deadline = self._clock() + timeout
        while True:
            now = self._clock()
            if self._timers and self._timers[0][0] <= now:
                _, _, fn = heapq.heappop(self._timers)
                fn()
                continue
            nxt = self._timers[0][0] if self._timers else math.inf
            wait = min(nxt, deadline) - now
            if wait <= 0:
                return
            time.sleep(wait)

    def _events(self) -> c.ControlEvents:
        if self._handler is None:
            raise RuntimeError("no event handler set")
        return self._handler

    def _today(self) -> str:
        return datetime.fromtimestamp(self._clock(), KST).strftime("%Y%m%d")

    def _hms(self) -> str:
        return datetime.fromtimestamp(self._clock(), KST).strftime("%H%M%S")

    # --- login

    def CommConnect(self) -> int:
        if self._login_started or _process_logged_in:
            return -1  # the fake's code: this process already logged in once
        self._login_started = True
        _process_logged_in.append(self.user)
        self._after(self.s.login_delay, self._login_done)
        return c.OP_ERR_NONE

    def _login_done(self) -> None:
        code = self.s.login_fail.get(self.user, c.OP_ERR_NONE)
        if code == c.OP_ERR_NONE:
            self._connected = True
            Path(self.s.state_dir).mkdir(parents=True, exist_ok=True)
            self.book = UserBook(
                Path(self.s.state_dir) / f"{self.user}.json", self.s.cash, self._today()
            )
            self._after(self.s.tick_interval, self._tick)
            self._after(0.0, self._match_all)  # orders left open by an earlier process
        self._events().OnEventConnect(code)

    def GetConnectState(self) -> int:
        return 1 if self._connected else 0

    def GetLoginInfo(self, tag: str) -> str:
        if not self._connected:
            return ""
        if tag == "ACCNO":
            return ";".join(self.s.accounts(self.user)) + ";"
        if tag == "ACCOUNT_CNT":
            return str(len(self.s.accounts(self.user)))
        if tag == "USER_ID":
            return self.user
        if tag == "GetServerGubun":
            return "1"  # mock server
        return ""

    def inject(self, fault: str) -> None:
        """Test faults: ``disconnect`` ends the connection as the server dropping it would."""
        if fault == "disconnect":
            self._connected = False
            self._timers.clear()

    # --- TRs

    def SetInputValue(self, name: str, value: str) -> None:
        self._inputs[name] = value

    def CommRqData(self, rq_name: str, tr_code: str, prev_next: int, screen_no: str) -> int:
        if not self._connected:
            return c.OP_ERR_SOCKET_CLOSED
        now = self._clock()
        if not all(w.take(now) for w in self._tr_windows):
            return c.OP_ERR_SISE_OVERFLOW
        inputs, self._inputs = self._inputs, {}
        key = (tr_code, rq_name)
        if prev_next != 2 or key not in self._tr:
            single, rows = self._run_tr(tr_code, inputs)
            self._tr[key] = (single, rows)
            self._cursor[key] = 0
        start = self._cursor[key] if prev_next == 2 else 0
        self._cursor[key] = start + self.s.page_size
        more = "2" if start + self.s.page_size < len(self._tr[key][1]) else "0"
        page = (self._tr[key][0], self._tr[key][1][start : start + self.s.page_size])

        def answer() -> None:
            self._page = page
            self._events().OnReceiveTrData(screen_no, rq_name, tr_code, "", more)

        self._after(self.s.answer_delay, answer)
        return c.OP_ERR_NONE

    _page: tuple[dict[str, str], list[dict[str, str]]] = ({}, [])

    def GetCommData(self, tr_code: str, rq_name: str, index: int, item: str) -> str:
        single, rows = self._page
        if item in single and index == 0:
            return single[item]
        if 0 <= index < len(rows):
            return rows[index].get(item, "")
        return ""

    def GetRepeatCnt(self, tr_code: str, rq_name: str) -> int:
        return len(self._page[1])

    def _run_tr(
        self, tr: str, inputs: dict[str, str]
    ) -> tuple[dict[str, str], list[dict[str, str]]]:
        book = self.book
        assert book is not None
        acc = inputs.get("계좌번호", "")
        if tr != "opt10001" and acc not in self.s.accounts(self.user):
            return {}, []
        if tr == "opt10001":
            code = inputs.get("종목코드", "")
            price = market_price(code, self._clock(), self.s.tick_interval)
            base = market_price(code, 0.0, self.s.tick_interval)
            return {"종목코드": code, "현재가": f"{price:+d}", "기준가": str(base)}, []
        if tr == "opw00001":
            cash = int(book.doc["cash"])
            return {
                "예수금": f"{cash:015d}",
                "주문가능금액": f"{max(0, self._orderable()):015d}",
            }, []
        if tr == "opw00018":
            rows = [
                {
                    "종목번호": f"A{code}",
                    "보유수량": f"{q:010d}",
                    "매입가": f"{cost // q if q else 0:010d}",
                }
                for code, (q, cost) in sorted(book.doc["holdings"].items())
                if q
            ]
            return {}, rows
        if tr == "opt10075":
            rows = []
            for o in sorted(book.orders.values(), key=lambda o: str(o["no"]), reverse=True):
                avg = o["amount"] // o["filled"] if o["filled"] else 0
                rows.append(
                    {
                        "주문번호": o["no"],
                        "원주문번호": o["orig"],
                        "종목코드": o["code"],
                        "주문상태": o["state"],
                        "주문구분": o["kind"],
                        "매매구분": "시장가" if o["hoga_gb"] == c.MARKET else "보통",
                        "주문수량": str(o["qty"]),
                        "주문가격": str(o["price"] or 0),
                        "미체결수량": str(o["open"]),
                        "체결량": str(o["filled"]),
                        "체결가": str(avg),
                        "체결누계금액": str(o["amount"]),
                        "시간": o["time"],
                    }
                )
            return {}, rows
        return {}, []

    # --- orders

    def SendOrder(
        self,
        rq_name: str,
        screen_no: str,
        acc_no: str,
        order_type: int,
        code: str,
        qty: int,
        price: int,
        hoga_gb: str,
        org_order_no: str,
    ) -> int:
        if not self._connected or self.book is None:
            return c.OP_ERR_SOCKET_CLOSED
        if acc_no not in self.s.accounts(self.user):
            return c.OP_ERR_OTHER_ACC_USE
        if (
            order_type not in range(1, 7)
            or qty < 0
            or (qty == 0 and order_type in (1, 2, 5, 6))
            or hoga_gb not in (c.LIMIT, c.MARKET)
            or not (len(code) == 6 and code.isalnum())
        ):
            return c.OP_ERR_ORD_WRONG_INPUT
        if not self._order_window.take(self._clock()):
            return c.OP_ERR_ORD_OVERFLOW
        tr_code = {1: "KOA_NORMAL_BUY_KP_ORD", 2: "KOA_NORMAL_SELL_KP_ORD"}.get(
            order_type, "KOA_NORMAL_KP_CANCEL" if order_type in (3, 4) else "KOA_NORMAL_KP_MODIFY"
        )
        # The order reaches the server now (a process ending after this still placed it).
        verdict = self._admit(order_type, code, qty, price, hoga_gb, org_order_no, acc_no)
        self.book.save()

        def answer() -> None:
            if isinstance(verdict, str):
                self._events().OnReceiveMsg(screen_no, rq_name, tr_code, verdict)
                self._page = ({"주문번호": ""}, [])
                self._events().OnReceiveTrData(screen_no, rq_name, tr_code, "", "")
                return
            self._page = ({"주문번호": verdict["no"]}, [])
            self._events().OnReceiveTrData(screen_no, rq_name, tr_code, "", "")
            self._events().OnReceiveMsg(
                screen_no, rq_name, tr_code, "[00Z112] 모의투자 주문처리가 완료되었습니다"
            )
            self._notice(verdict, "접수")
            if order_type >= 3:
                self._notice(verdict, "확인")
            self._after(self.s.fill_delay, lambda: self._match(verdict["no"]))

        self._after(self.s.answer_delay, answer)
        return c.OP_ERR_NONE

    def _admit(
        self, order_type: int, code: str, qty: int, price: int, hoga_gb: str, orig: str, acc: str
    ) -> dict[str, Any] | str:
        """The server's checks; a dict is the new order, a str the refusal message."""
        book = self.book
        assert book is not None
        side = "2" if order_type in (1, 3, 5) else "1"
        word = "매수" if side == "2" else "매도"
        base: dict[str, Any] = {"acc": acc, "code": code, "side": side, "hoga_gb": hoga_gb}
        base["orig"] = ""
        base.update({"filled": 0, "amount": 0, "state": "접수", "time": self._hms()})
        if order_type in (1, 2):
            if hoga_gb == c.LIMIT and (price <= 0 or price % tick_size(price)):
                return "[800033] 모의투자 주문가격이 호가단위에 맞지 않습니다 (fake's text)"
            ref = price if hoga_gb == c.LIMIT else self._ask(code)
            if side == "2" and qty * ref > self._orderable():
                return "[800100] 모의투자 주문가능금액이 부족합니다 (fake's text)"
            if side == "1" and qty > self._sellable(code):
                return "[800100] 모의투자 매도가능수량이 부족합니다 (fake's text)"
            order = dict(base, kind=f"{'+' if side == '2' else '-'}{word}", qty=qty)
            order.update(price=price if hoga_gb == c.LIMIT else 0, open=qty)
        else:
            target = book.orders.get(orig)
            if target is None or target["open"] <= 0 or target["side"] != side:
                return "[800300] 모의투자 정정/취소할 수량이 없습니다 (fake's text)"
            n = target["open"] if qty == 0 else min(qty, target["open"])
            if order_type in (5, 6):
                if price <= 0 or price % tick_size(price):
                    return "[800033] 모의투자 주문가격이 호가단위에 맞지 않습니다 (fake's text)"
                order = dict(base, kind=f"{'+' if side == '2' else '-'}{word}정정", qty=n)
                order.update(price=price, open=n, orig=orig, hoga_gb=c.LIMIT)
            else:
                order = dict(base, kind=f"{word}취소", qty=n, price=0, open=0, orig=orig)
                order["state"] = "확인"
            target["open"] -= n
            target["state"] = "확인"
        no = book.new_no()
        order["no"] = no
        book.orders[no] = order
        return order

    def _orderable(self) -> int:
        book = self.book
        assert book is not None
        held = sum(
            int(o["open"]) * int(o["price"])
            for o in book.orders.values()
            if o["side"] == "2" and o["price"]
        )
        return int(book.doc["cash"]) - held

    def _sellable(self, code: str) -> int:
        book = self.book
        assert book is not None
        held = book.doc["holdings"].get(code, [0, 0])[0]
        selling = sum(
            int(o["open"]) for o in book.orders.values() if o["side"] == "1" and o["code"] == code
        )
        return int(held) - selling

    def _ask(self, code: str) -> int:
        p = market_price(code, self._clock(), self.s.tick_interval)
        return p + tick_size(p)

    # --- matching

    def _match_all(self) -> None:
        if self.book is not None:
            for no, o in list(self.book.orders.items()):
                if o["open"] > 0:
                    self._match(no)

    def _match(self, no: str) -> None:
        """Fill the order (one piece now, the next after ``fill_delay``) if it crosses."""
        if not self._connected or self.book is None:
            return
        o = self.book.orders.get(no)
        if o is None or o["open"] <= 0:
            return
        p = market_price(o["code"], self._clock(), self.s.tick_interval)
        step = tick_size(p)
        ask, bid = p + step, p
        if o["hoga_gb"] == c.MARKET:
            px = ask if o["side"] == "2" else bid
        elif o["side"] == "2" and o["price"] >= ask:
            px = ask
        elif o["side"] == "1" and o["price"] <= bid:
            px = bid
        else:
            return  # rests; the market ticks re-check it
        piece = max(1, -(-o["qty"] // self.s.pieces))
        q = min(piece, o["open"])
        self._fill(o, q, px)
        if o["open"] > 0:
            self._after(self.s.fill_delay, lambda: self._match(no))

    def _fill(self, o: dict[str, Any], q: int, px: int) -> None:
        book = self.book
        assert book is not None
        o["open"] -= q
        o["filled"] += q
        o["amount"] += q * px
        o["state"] = "체결"
        qty, cost = book.doc["holdings"].get(o["code"], [0, 0])
        if o["side"] == "2":
            book.doc["cash"] -= q * px
            qty, cost = qty + q, cost + q * px
        else:
            book.doc["cash"] += q * px
            cost = cost - (cost * q // qty if qty else 0)
            qty -= q
        book.doc["holdings"][o["code"]] = [qty, cost]
        fill_no = int(book.doc["fill_no"])
        book.doc["fill_no"] = fill_no + 1
        book.save()
        self._notice(o, "체결", fill={909: str(fill_no), 910: str(px), 914: str(px), 915: str(q)})
        self._chejan = {
            9201: o["acc"],
            9001: f"A{o['code']}",
            302: o["code"],
            930: str(qty),
            931: str(cost // qty if qty else 0),
            932: str(cost),
            951: str(book.doc["cash"]),
        }
        self._events().OnReceiveChejanData(
            c.CHEJAN_BALANCE, len(self._chejan), ";".join(map(str, self._chejan))
        )

    def _notice(self, o: dict[str, Any], state: str, fill: dict[int, str] | None = None) -> None:
        self._chejan = {
            9201: o["acc"],
            9203: o["no"],
            9001: f"A{o['code']}",
            913: state,
            302: o["code"],
            900: str(o["qty"]),
            901: str(o["price"]),
            902: str(o["open"]),
            903: str(o["amount"]),
            904: o["orig"] or "0000000",
            905: o["kind"],
            906: "시장가" if o["hoga_gb"] == c.MARKET else "보통",
            907: o["side"],
            908: self._hms(),
            911: str(o["filled"]) if state == "체결" else "",
        }
        self._chejan.update(fill or {})
        self._events().OnReceiveChejanData(
            c.CHEJAN_ORDER, len(self._chejan), ";".join(map(str, self._chejan))
        )

    def GetChejanData(self, fid: int) -> str:
        return self._chejan.get(fid, "")

    # --- real time

    def SetRealReg(self, screen_no: str, codes: str, fids: str, opt_type: str) -> int:
        wanted = [x for x in codes.split(";") if x]
        if len(wanted) > c.MAX_CODES_PER_SCREEN:
            return -1  # the fake's code for "too many codes in one call"
        if screen_no not in self._screens and len(self._screens) >= c.MAX_SCREENS:
            return -1
        if opt_type == "0" or screen_no not in self._screens:
            self._screens[screen_no] = set()
        self._screens[screen_no].update(wanted)
        return c.OP_ERR_NONE

    def SetRealRemove(self, screen_no: str, code: str) -> None:
        if screen_no == "ALL":
            self._screens.clear()
        elif screen_no in self._screens:
            if code == "ALL":
                del self._screens[screen_no]
            else:
                self._screens[screen_no].discard(code)

    def GetCommRealData(self, code: str, fid: int) -> str:
        return self._real.get(code, {}).get(fid, "")

    def _tick(self) -> None:
        if not self._connected:
            return
        now = self._clock()
        codes = sorted(set().union(*self._screens.values())) if self._screens else []
        for code in codes:
            p = market_price(code, now, self.s.tick_interval)
            base = market_price(code, 0.0, self.s.tick_interval)
            step = tick_size(p)
            vol = 1 + zlib.crc32(f"{code}{now}".encode()) % 50
            self._real[code] = {
                20: datetime.fromtimestamp(now, UTC).astimezone(KST).strftime("%H%M%S"),
                10: f"{p:+d}" if p >= base else f"{-p}",
                11: f"{p - base:+d}",
                12: f"{(p - base) / base * 100:+.2f}",
                15: f"+{vol}",
                13: str(int(now) % 100000),
                27: f"+{p + step}",
                28: f"+{p}",
            }
            self._events().OnReceiveRealData(code, c.REAL_TRADE, "")
        self._match_all()
        self._after(self.s.tick_interval, self._tick)
