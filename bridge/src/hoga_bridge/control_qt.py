"""The real control: ``KHOPENAPI.KHOpenAPICtrl.1`` in a Qt ``QAxWidget`` (Windows, 32-bit only).

The ONLY module touching COM/Qt, kept thin on purpose: each method forwards to
``dynamicCall`` with the OCX's signature, each OCX event is connected to the handler's method of
the same name, and ``pump`` runs Qt's event loop. It cannot run on this project's CI (Linux);
what has and has not been verified is listed in docs/kiwoom-openapi.md.

Which Kiwoom user ``CommConnect`` logs in as is decided by the OpenAPI+ login window: with
auto-login enabled (계좌비밀번호 저장 → AUTO, kiwoom.md B2) it is the saved user. The worker
checks ``GetLoginInfo("USER_ID")`` against the user it was asked for and refuses a mismatch.
"""

from __future__ import annotations

import time
from typing import Any

from hoga_bridge import control as c

PROG_ID = "KHOPENAPI.KHOpenAPICtrl.1"


class QtControl:
    """``control.Control`` over a ``QAxWidget``; create it on the worker's main thread."""

    def __init__(self) -> None:
        from PyQt5.QAxContainer import QAxWidget  # type: ignore[import-not-found]
        from PyQt5.QtWidgets import QApplication  # type: ignore[import-not-found]

        self._app = QApplication.instance() or QApplication([])
        self._ocx: Any = QAxWidget(PROG_ID)

    def set_handler(self, events: c.ControlEvents) -> None:
        self._ocx.OnEventConnect.connect(events.OnEventConnect)
        self._ocx.OnReceiveTrData.connect(events.OnReceiveTrData)
        self._ocx.OnReceiveRealData.connect(events.OnReceiveRealData)
        self._ocx.OnReceiveChejanData.connect(events.OnReceiveChejanData)
        self._ocx.OnReceiveMsg.connect(events.OnReceiveMsg)

    def pump(self, timeout: float) -> None:
        end = time.monotonic() + timeout
        while True:
            self._app.processEvents()
            if time.monotonic() >= end:
                return
            time.sleep(0.001)

    def _call(self, sig: str, *args: Any) -> Any:
        return self._ocx.dynamicCall(sig, *args)

    def CommConnect(self) -> int:
        return int(self._call("CommConnect()"))

    def GetConnectState(self) -> int:
        return int(self._call("GetConnectState()"))

    def GetLoginInfo(self, tag: str) -> str:
        return str(self._call("GetLoginInfo(QString)", tag))

    def SetInputValue(self, name: str, value: str) -> None:
        self._call("SetInputValue(QString, QString)", name, value)

    def CommRqData(self, rq_name: str, tr_code: str, prev_next: int, screen_no: str) -> int:
        sig = "CommRqData(QString, QString, int, QString)"
        return int(self._call(sig, rq_name, tr_code, prev_next, screen_no))

    def GetCommData(self, tr_code: str, rq_name: str, index: int, item: str) -> str:
        sig = "GetCommData(QString, QString, int, QString)"
        return str(self._call(sig, tr_code, rq_name, index, item))

    def GetRepeatCnt(self, tr_code: str, rq_name: str) -> int:
        return int(self._call("GetRepeatCnt(QString, QString)", tr_code, rq_name))

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
        sig = "SendOrder(QString, QString, QString, int, QString, int, int, QString, QString)"
        args = [rq_name, screen_no, acc_no, order_type, code, qty, price, hoga_gb, org_order_no]
        return int(self._call(sig, args))

    def SetRealReg(self, screen_no: str, codes: str, fids: str, opt_type: str) -> int:
        sig = "SetRealReg(QString, QString, QString, QString)"
        return int(self._call(sig, screen_no, codes, fids, opt_type))

    def SetRealRemove(self, screen_no: str, code: str) -> None:
        self._call("SetRealRemove(QString, QString)", screen_no, code)

    def GetCommRealData(self, code: str, fid: int) -> str:
        return str(self._call("GetCommRealData(QString, int)", code, fid))

    def GetChejanData(self, fid: int) -> str:
        return str(self._call("GetChejanData(int)", fid))


def make_qt_control(user: str) -> c.Control:
    """The worker's control factory; ``user`` is checked after login (see the module doc)."""
    return QtControl()
