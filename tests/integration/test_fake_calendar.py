"""The fakes follow the KRX calendar unless told ``--always-open`` (``FakeOptions``): outside
the session an order is refused as the broker refuses it."""

from __future__ import annotations

from datetime import datetime

import httpx

from hoga.domain.clock import KST, ManualClock
from hoga.fakes import FakeAccount, FakeOptions
from hoga.fakes.kis import KisFake
from hoga.fakes.kiwoom import KiwoomFake
from tests.kis_support import ACCOUNT, KEY, SECRET
from tests.kiwoom_support import ACCOUNT_NO, APP_KEY, APP_SECRET

EVENING = datetime(2026, 11, 26, 20, 0, tzinfo=KST)  # a Thursday, after the session
MORNING = datetime(2026, 11, 26, 10, 0, tzinfo=KST)


async def _kis_order(fake: KisFake) -> dict[str, str]:
    async with httpx.AsyncClient(base_url=fake.base_url) as http:
        r = await http.post(
            "/oauth2/tokenP",
            json={"grant_type": "client_credentials", "appkey": KEY, "appsecret": SECRET},
        )
        token = r.json()["access_token"]
        cano, prdt = ACCOUNT.split("-")
        r = await http.post(
            "/uapi/domestic-stock/v1/trading/order-cash",
            headers={"authorization": f"Bearer {token}", "appkey": KEY, "appsecret": SECRET,
                     "tr_id": "TTTC0012U"},
            json={"CANO": cano, "ACNT_PRDT_CD": prdt, "PDNO": "005930", "ORD_DVSN": "01",
                  "ORD_QTY": "1", "ORD_UNPR": "0"},
        )  # fmt: skip
        body: dict[str, str] = r.json()
        return body


async def test_kis_fake_refuses_orders_out_of_hours_unless_always_open() -> None:
    for when, always_open, expect in (
        (EVENING, False, "APBK0919"),
        (MORNING, False, "0"),
        (EVENING, True, "0"),
    ):
        options = FakeOptions(
            broker="kis", env="real", always_open=always_open,
            accounts=[FakeAccount(ACCOUNT, KEY, SECRET, 10_000_000, "hogauser")],
        )  # fmt: skip
        fake = KisFake.from_options(options, clock=ManualClock(when))
        fake.pump(50)
        await fake.start()
        try:
            body = await _kis_order(fake)
        finally:
            await fake.stop()
        got = body["msg_cd"] if body["rt_cd"] != "0" else "0"
        assert got == expect, (when, always_open, body)


async def test_kiwoom_fake_follows_the_calendar_when_asked() -> None:
    for when, always_open, is_open in ((EVENING, False, False), (EVENING, True, True)):
        options = FakeOptions(
            broker="kiwoom", always_open=always_open,
            accounts=[FakeAccount(ACCOUNT_NO, APP_KEY, APP_SECRET, 10_000_000)],
        )  # fmt: skip
        fake = KiwoomFake(options, clock=ManualClock(when))
        assert fake.market.is_open() is is_open
