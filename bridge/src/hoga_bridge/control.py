"""The OpenAPI+ control's surface, as the worker uses it (kiwoom.md §B).

``Control`` lists the methods of ``KHOPENAPI.KHOpenAPICtrl.1`` the bridge calls, with the
control's own names and argument order; ``ControlEvents`` the events it raises. Two
implementations exist: ``control_qt.QtControl`` (the real OCX in a ``QAxWidget``, Windows only)
and ``fake_control.FakeControl`` (the imitation for tests). The worker cannot tell them apart.

The control is single-threaded and event-driven: a method call starts something, the answer
arrives later as an event, and data is read with getters *inside* the event handler.
``pump`` runs the control's event loop for up to ``timeout`` seconds - ``processEvents`` for
Qt, the fake's scheduler for the imitation - and is the only place events are delivered.
"""

from __future__ import annotations

from typing import Final, Protocol

# --- return / error codes (koapy KiwoomOpenApiPlusError.py, kiwoom.md B2, B3, B5)
OP_ERR_NONE: Final = 0
OP_ERR_LOGIN: Final = -100  # 사용자정보교환실패
OP_ERR_CONNECT: Final = -101  # 서버접속실패
OP_ERR_VERSION: Final = -102  # 버전처리실패
OP_ERR_SOCKET_CLOSED: Final = -106  # 통신연결종료
OP_ERR_SISE_OVERFLOW: Final = -200  # 시세조회과부하
OP_ERR_RQ_STRUCT_FAIL: Final = -201  # 전문작성초기화실패
OP_ERR_ORD_WRONG_INPUT: Final = -300  # 주문입력값오류
OP_ERR_ORD_WRONG_ACCTNO: Final = -301  # 계좌비밀번호없음
OP_ERR_OTHER_ACC_USE: Final = -302  # 타인계좌사용오류
OP_ERR_ORD_OVERFLOW: Final = -308  # 주문전송과부하
OP_ERR_WRONG_ACCTINFO: Final = -340  # 계좌정보없음

ERROR_TEXT: Final = {
    OP_ERR_NONE: "정상처리",
    OP_ERR_LOGIN: "사용자정보교환실패",
    OP_ERR_CONNECT: "서버접속실패",
    OP_ERR_VERSION: "버전처리실패",
    OP_ERR_SOCKET_CLOSED: "통신연결종료",
    OP_ERR_SISE_OVERFLOW: "시세조회과부하",
    OP_ERR_RQ_STRUCT_FAIL: "전문작성초기화실패",
    OP_ERR_ORD_WRONG_INPUT: "주문입력값오류",
    OP_ERR_ORD_WRONG_ACCTNO: "계좌비밀번호없음",
    OP_ERR_OTHER_ACC_USE: "타인계좌사용오류",
    OP_ERR_ORD_OVERFLOW: "주문전송과부하",
    OP_ERR_WRONG_ACCTINFO: "계좌정보없음",
}

# --- SendOrder nOrderType (kiwoom.md B5)
BUY: Final = 1
SELL: Final = 2
CANCEL_BUY: Final = 3
CANCEL_SELL: Final = 4
MODIFY_BUY: Final = 5
MODIFY_SELL: Final = 6

# --- sHogaGb: 00 limit, 03 market (the mock server accepts only these two)
LIMIT: Final = "00"
MARKET: Final = "03"

# --- chejan (OnReceiveChejanData) gubun and FIDs
CHEJAN_ORDER: Final = "0"  # order accepted / executed / confirmed
CHEJAN_BALANCE: Final = "1"  # stock balance changed
CHEJAN_ORDER_FIDS: Final = (
    9201,  # 계좌번호
    9203,  # 주문번호
    9001,  # 종목코드
    913,  # 주문상태 (접수, 체결, 확인, 거부)
    302,  # 종목명
    900,  # 주문수량
    901,  # 주문가격
    902,  # 미체결수량
    903,  # 체결누계금액
    904,  # 원주문번호
    905,  # 주문구분 (+매수, -매도, +매수정정, 매수취소 ...)
    906,  # 매매구분 (보통, 시장가)
    907,  # 매도수구분 (1 매도, 2 매수)
    908,  # 주문/체결시간 HHMMSS
    909,  # 체결번호
    910,  # 체결가
    911,  # 체결량 (cumulative for the order number)
    914,  # 단위체결가
    915,  # 단위체결량
    919,  # 거부사유
)
CHEJAN_BALANCE_FIDS: Final = (
    9201,
    9001,
    302,
    930,
    931,
    932,
    951,
)  # 보유수량, 매입단가, 총매입가, 예수금

# --- real-time (OnReceiveRealData) type 주식체결 and its FIDs
REAL_TRADE: Final = "주식체결"
REAL_TRADE_FIDS: Final = (
    20,
    10,
    11,
    12,
    15,
    13,
    27,
    28,
)  # 시간, 현재가, 대비, 등락율, 거래량, 누적, 매도1, 매수1
MAX_CODES_PER_SCREEN: Final = 100
MAX_SCREENS: Final = 200


class ControlEvents(Protocol):
    """The control's events (names and arguments as the OCX raises them)."""

    def OnEventConnect(self, err_code: int) -> None: ...

    def OnReceiveTrData(
        self, screen_no: str, rq_name: str, tr_code: str, record_name: str, prev_next: str
    ) -> None: ...

    def OnReceiveRealData(self, code: str, real_type: str, real_data: str) -> None: ...

    def OnReceiveChejanData(self, gubun: str, item_cnt: int, fid_list: str) -> None: ...

    def OnReceiveMsg(self, screen_no: str, rq_name: str, tr_code: str, msg: str) -> None: ...


class Control(Protocol):
    """The control's methods the bridge uses (OCX names; see the module docstring)."""

    def set_handler(self, events: ControlEvents) -> None: ...

    def pump(self, timeout: float) -> None: ...

    def CommConnect(self) -> int: ...

    def GetConnectState(self) -> int: ...

    def GetLoginInfo(self, tag: str) -> str: ...

    def SetInputValue(self, name: str, value: str) -> None: ...

    def CommRqData(self, rq_name: str, tr_code: str, prev_next: int, screen_no: str) -> int: ...

    def GetCommData(self, tr_code: str, rq_name: str, index: int, item: str) -> str: ...

    def GetRepeatCnt(self, tr_code: str, rq_name: str) -> int: ...

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
    ) -> int: ...

    def SetRealReg(self, screen_no: str, codes: str, fids: str, opt_type: str) -> int: ...

    def SetRealRemove(self, screen_no: str, code: str) -> None: ...

    def GetCommRealData(self, code: str, fid: int) -> str: ...

    def GetChejanData(self, fid: int) -> str: ...
