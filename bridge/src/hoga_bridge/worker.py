"""One worker process: one control, one login, commands over stdin/stdout (JSON lines).

The control must be used from the thread that owns it (kiwoom.md B1), so everything here runs
on the main thread: a reader thread only turns stdin lines into a queue, and the main loop
alternates between starting commands and pumping the control's events. Changing the user means
ending this process (``CommTerminate`` does not log out, kiwoom.md B2); the pool does that.

Commands (``{"id": n, "op": ...}``) and their answers (``{"id": n, "ok": true, ...}`` or
``{"id": n, "ok": false, "kind": ..., "code": ..., "message": ...}``):

* ``login {user}`` - ``CommConnect``; answers after ``OnEventConnect`` with the accounts.
* ``tr {tr, inputs, single, multi, pages}`` - ``SetInputValue``.../``CommRqData``, reading the
  named fields in ``OnReceiveTrData`` and following ``prev_next`` "2" up to ``pages`` pages.
* ``order {acc, order_type, code, qty, price, hoga, orig}`` - ``SendOrder``; answers with the order
  number from ``OnReceiveTrData``, or ``rejected`` with ``OnReceiveMsg``'s text, or ``unknown``
  when no answer came in ``order_timeout`` seconds.
* ``real_reg {screen, codes, opt}`` / ``real_remove {screen, code}``.

Pacing: TRs and orders are held back to the control's limits (5/s each, plus the hourly TR
budget); a −200 or −308 the control returns anyway is retried with back-off until
``overflow_deadline``, then answered ``not_processed`` with ``retry_after`` - never dropped.

Events (``{"event": ...}``): ``chejan {gubun, fids}``, ``real {code, type, fids}``,
``msg {...}``, ``disconnected`` (then the process exits; the pool logs in again).
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import os
import queue
import sys
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any, TextIO

from hoga_bridge import control as c


class Pacer:
    """At most ``limit`` starts in any ``span`` seconds, for each (limit, span) given."""

    def __init__(self, windows: list[tuple[int, float]]) -> None:
        self._windows = [(limit, span, deque[float]()) for limit, span in windows]

    def ready_at(self, now: float) -> float:
        at = now
        for limit, span, times in self._windows:
            while times and times[0] <= now - span:
                times.popleft()
            if len(times) >= limit:
                at = max(at, times[0] + span)
        return at

    def take(self, now: float) -> None:
        for _, _, times in self._windows:
            times.append(now)


@dataclass
class _Op:
    id: int
    op: str
    args: dict[str, Any]
    not_before: float = 0.0
    first_try: float = 0.0
    backoff: float = 0.2
    rq: str = ""
    deadline: float = 0.0
    single: dict[str, str] = field(default_factory=dict)
    rows: list[dict[str, str]] = field(default_factory=list)
    pages: int = 0
    message: str = ""
    rejected_at: float | None = None


class Worker:
    """The main loop of a worker process (see the module docstring)."""

    def __init__(
        self,
        make_control: Any,
        out: TextIO,
        *,
        order_timeout: float = 10.0,
        overflow_deadline: float = 5.0,
        allow_faults: bool = False,
        tr_windows: list[tuple[int, float]] | None = None,
        order_windows: list[tuple[int, float]] | None = None,
    ) -> None:
        self._make_control = make_control
        self._out = out
        self.control: c.Control | None = None
        self.order_timeout = order_timeout
        self.overflow_deadline = overflow_deadline
        self.allow_faults = allow_faults
        self.tr_pacer = Pacer(tr_windows or [(5, 1.05), (1000, 3600.0)])
        self.order_pacer = Pacer(order_windows or [(5, 1.05)])
        self._waiting: deque[_Op] = deque()  # not started yet (paced or backing off)
        self._by_rq: dict[str, _Op] = {}  # started, awaiting OnReceiveTrData
        self._login: _Op | None = None
        self._logged_in = False
        self._user = ""
        self._rq = itertools.count(1)
        self._die_after_send = False
        self._last_state_check = 0.0
        self.running = True

    # --- output

    def emit(self, msg: dict[str, Any]) -> None:
        self._out.write(json.dumps(msg, ensure_ascii=False) + "\n")
        self._out.flush()

    def reply(self, op: _Op, **result: Any) -> None:
        self.emit({"id": op.id, "ok": True, **result})

    def fail(self, op: _Op, kind: str, message: str, code: int = 0, **extra: Any) -> None:
        self.emit(
            {"id": op.id, "ok": False, "kind": kind, "code": code, "message": message, **extra}
        )

    # --- control events (called inside pump)

    def OnEventConnect(self, err_code: int) -> None:
        op, self._login = self._login, None
        if op is None:
            return
        ctl = self.control
        assert ctl is not None
        if err_code != c.OP_ERR_NONE:
            self.fail(op, "login_failed", c.ERROR_TEXT.get(err_code, "login failed"), err_code)
            self.running = False  # one login per process: the pool starts a new one
            return
        user = ctl.GetLoginInfo("USER_ID")
        if user != op.args["user"]:
            # Auto-login logged in someone else: refuse to act for the wrong user.
            self.fail(op, "wrong_user", f"logged in as another user ({len(user)} chars)")
            self.running = False
            return
        self._logged_in, self._user = True, user
        accounts = [a for a in ctl.GetLoginInfo("ACCNO").split(";") if a]
        self.reply(op, user=user, accounts=accounts, server=ctl.GetLoginInfo("GetServerGubun"))

    def OnReceiveTrData(
        self, screen_no: str, rq_name: str, tr_code: str, record_name: str, prev_next: str
    ) -> None:
        op = self._by_rq.get(rq_name)
        ctl = self.control
        if op is None or ctl is None:
            return
        if op.op == "order":
            no = ctl.GetCommData(tr_code, rq_name, 0, "주문번호").strip()
            if no:
                del self._by_rq[rq_name]
                self.reply(op, order_no=no, message=op.message)
            else:
                # Refused: the reason comes with OnReceiveMsg (before or just after this).
                op.rejected_at = time.monotonic()
                if op.message:
                    del self._by_rq[rq_name]
                    self.fail(op, "rejected", op.message)
            return
        args = op.args
        if not op.single:
            op.single = {
                f: ctl.GetCommData(tr_code, rq_name, 0, f).strip() for f in args.get("single", [])
            }
        multi = args.get("multi", [])
        if multi:
            for i in range(ctl.GetRepeatCnt(tr_code, rq_name)):
                op.rows.append({f: ctl.GetCommData(tr_code, rq_name, i, f).strip() for f in multi})
        op.pages += 1
        del self._by_rq[rq_name]
        if prev_next == "2" and op.pages < int(args.get("pages", 1)):
            op.not_before = 0.0
            op.args = dict(args, prev_next=2)
            self._waiting.appendleft(op)
            return
        self.reply(op, single=op.single, rows=op.rows, more=prev_next == "2")

    def OnReceiveMsg(self, screen_no: str, rq_name: str, tr_code: str, msg: str) -> None:
        op = self._by_rq.get(rq_name)
        if op is not None and op.op == "order":
            op.message = msg
            if op.rejected_at is not None:
                del self._by_rq[rq_name]
                self.fail(op, "rejected", msg)
        self.emit({"event": "msg", "screen": screen_no, "rq": rq_name, "tr": tr_code, "msg": msg})

    def OnReceiveChejanData(self, gubun: str, item_cnt: int, fid_list: str) -> None:
        ctl = self.control
        assert ctl is not None
        fids = {f: ctl.GetChejanData(int(f)).strip() for f in fid_list.split(";") if f.strip()}
        self.emit({"event": "chejan", "gubun": gubun, "fids": fids})

    def OnReceiveRealData(self, code: str, real_type: str, real_data: str) -> None:
        ctl = self.control
        if ctl is None or real_type != c.REAL_TRADE:
            return
        fids = {str(f): ctl.GetCommRealData(code, f).strip() for f in c.REAL_TRADE_FIDS}
        self.emit({"event": "real", "code": code, "real_type": real_type, "fids": fids})

    # --- commands

    def submit(self, msg: dict[str, Any]) -> None:
        op = _Op(int(msg.get("id", 0)), str(msg.get("op", "")), msg, first_try=time.monotonic())
        if op.op == "ping":
            self.reply(op, user=self._user, logged_in=self._logged_in)
        elif op.op == "login":
            self._start_login(op)
        elif op.op == "fault":
            self._fault(op)
        elif not self._logged_in:
            self.fail(op, "not_logged_in", "this worker is not logged in")
        elif op.op in ("tr", "order", "real_reg", "real_remove"):
            self._waiting.append(op)
        else:
            self.fail(op, "bad_request", f"unknown op {op.op[:20]!r}")

    def _start_login(self, op: _Op) -> None:
        if self.control is not None:
            self.fail(op, "bad_request", "this worker already logged in once")
            return
        self.control = self._make_control(str(op.args["user"]))
        self.control.set_handler(self)
        self._login = op
        code = self.control.CommConnect()
        if code != c.OP_ERR_NONE:
            self._login = None
            self.fail(op, "login_failed", c.ERROR_TEXT.get(code, "CommConnect failed"), code)
            self.running = False

    def _fault(self, op: _Op) -> None:
        if not self.allow_faults:
            self.fail(op, "bad_request", "faults are not enabled")
            return
        name = op.args.get("name")
        if name == "die":
            os._exit(9)
        if name == "die_after_send":
            self._die_after_send = True
        elif name == "disconnect" and self.control is not None:
            self.control.inject("disconnect")  # type: ignore[attr-defined]
        self.reply(op)

    def _start(self, op: _Op, now: float) -> bool:
        """Try to start ``op``; False when pacing or an overflow holds it back."""
        ctl = self.control
        assert ctl is not None
        if op.op in ("real_reg", "real_remove"):
            if op.op == "real_remove":
                ctl.SetRealRemove(str(op.args["screen"]), str(op.args.get("code", "ALL")))
                self.reply(op)
                return True
            fids = ";".join(str(f) for f in c.REAL_TRADE_FIDS)
            codes = ";".join(op.args["codes"])
            code = ctl.SetRealReg(str(op.args["screen"]), codes, fids, str(op.args.get("opt", "1")))
            if code == c.OP_ERR_NONE:
                self.reply(op)
            else:
                self.fail(op, "rejected", "SetRealReg refused", code)
            return True
        pacer = self.tr_pacer if op.op == "tr" else self.order_pacer
        at = pacer.ready_at(now)
        if at > now:
            op.not_before = at
            return False
        op.rq = op.rq or f"rq{next(self._rq)}"  # a continuation keeps its request name
        screen = str(op.args.get("screen", "1000"))
        if op.op == "tr":
            for name, value in op.args.get("inputs", {}).items():
                ctl.SetInputValue(str(name), str(value))
            code = ctl.CommRqData(
                op.rq, str(op.args["tr"]), int(op.args.get("prev_next", 0)), screen
            )
            overflow = c.OP_ERR_SISE_OVERFLOW
        else:
            code = ctl.SendOrder(
                op.rq,
                screen,
                str(op.args["acc"]),
                int(op.args["order_type"]),
                str(op.args["code"]),
                int(op.args["qty"]),
                int(op.args.get("price", 0)),
                str(op.args.get("hoga", c.LIMIT)),
                str(op.args.get("orig", "")),
            )
            overflow = c.OP_ERR_ORD_OVERFLOW
        pacer.take(now)
        if code == c.OP_ERR_NONE:
            if op.op == "order" and self._die_after_send:
                os._exit(9)  # test fault: the order is at the server, its answer never leaves
            op.deadline = now + self.order_timeout
            self._by_rq[op.rq] = op
            return True
        if code == overflow:
            if now - op.first_try + op.backoff > self.overflow_deadline:
                self.fail(op, "not_processed", c.ERROR_TEXT[code], code, retry_after=op.backoff)
                return True
            op.not_before = now + op.backoff
            op.backoff = min(op.backoff * 2, 5.0)
            return False
        self.fail(op, "rejected", c.ERROR_TEXT.get(code, f"error {code}"), code)
        return True

    # --- loop

    def step(self, now: float) -> float:
        """Start what can start; answer what timed out. Returns when to look again."""
        nxt = now + 0.05
        held: deque[_Op] = deque()
        while self._waiting:
            op = self._waiting.popleft()
            if op.not_before > now or not self._start(op, now):
                held.append(op)
                nxt = min(nxt, op.not_before)
        self._waiting = held
        for rq, op in list(self._by_rq.items()):
            if op.rejected_at is not None and now - op.rejected_at > 1.0:
                del self._by_rq[rq]
                self.fail(op, "rejected", "주문 거부 (refused without a message)")
            elif op.deadline and now > op.deadline:
                del self._by_rq[rq]
                if op.op == "order":
                    self.fail(op, "unknown", "no answer from the control in time")
                else:
                    self.fail(op, "timeout", "no answer from the control in time")
        if self._logged_in and now - self._last_state_check >= 1.0:
            self._last_state_check = now
            assert self.control is not None
            if self.control.GetConnectState() == 0:
                self.emit({"event": "disconnected"})
                self.running = False
        return nxt

    def run(self, commands: queue.Queue[dict[str, Any] | None]) -> None:
        while self.running:
            now = time.monotonic()
            nxt = self.step(now)
            try:
                msg = commands.get(timeout=0.001 if self.control is not None else 0.05)
            except queue.Empty:
                msg = {}
            if msg is None:
                return  # the pool closed our stdin
            if msg:
                self.submit(msg)
                continue
            if self.control is not None:
                self.control.pump(max(0.0, min(0.01, nxt - time.monotonic())))


def _read_stdin(into: queue.Queue[dict[str, Any] | None]) -> None:
    for line in sys.stdin:
        with contextlib.suppress(json.JSONDecodeError):
            msg = json.loads(line)
            if isinstance(msg, dict):
                into.put(msg)
    into.put(None)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="one OpenAPI+ control in one process")
    ap.add_argument("--control", choices=["qt", "fake"], default="qt")
    ap.add_argument("--fake-settings", default=None, help="JSON file of FakeSettings")
    ap.add_argument("--allow-faults", action="store_true")
    ap.add_argument("--order-timeout", type=float, default=10.0)
    args = ap.parse_args(argv)

    if args.control == "fake":
        from hoga_bridge.fake_control import FakeControl, FakeSettings

        settings = FakeSettings.load(args.fake_settings)

        def make(user: str) -> c.Control:
            return FakeControl(user, settings)
    else:
        from hoga_bridge.control_qt import make_qt_control as make

    commands: queue.Queue[dict[str, Any] | None] = queue.Queue()
    threading.Thread(target=_read_stdin, args=(commands,), daemon=True).start()
    worker = Worker(
        make, sys.stdout, order_timeout=args.order_timeout, allow_faults=args.allow_faults
    )
    worker.emit({"event": "ready", "pid": os.getpid()})
    worker.run(commands)
    return 0


if __name__ == "__main__":
    sys.exit(main())
