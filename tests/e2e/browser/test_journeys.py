"""The dashboard, driven like a person would: sign-in with TOTP, a paper order that fills, a
cancelled limit order, broker accounts, an admin changing a tier, two users kept apart, an
expired session, a dropped live connection, a phone-sized screen, and the English switch.

Every test runs against a real ``hoga serve`` (see conftest) in headless chromium, fails on any
request leaving 127.0.0.1, and saves a screenshot under test-artifacts/.
"""

from __future__ import annotations

import re
import time
from typing import Any

import pyotp
import pytest
from playwright.sync_api import Page, expect

from tests.e2e.browser.conftest import (
    Api,
    Browsing,
    FakeBroker,
    HogaServer,
    pick_symbol,
    shot,
    sign_in,
)
from tests.helpers import ADMIN_PASSWORD, PASSWORD, eventually_sync

pytestmark = pytest.mark.browser


def open_tab(page: Page, name: str) -> None:
    page.get_by_role("navigation").get_by_role("link", name=name, exact=True).click()
    expect(page.get_by_role("heading", name=name, level=1)).to_be_visible()


def wrong_code(secret: str) -> str:
    """A six-digit code that is valid for no step near now."""
    totp = pyotp.TOTP(secret)
    near = {totp.at(time.time() + k * 30) for k in range(-2, 4)}
    return next(c for c in ("000000", "111111", "222222", "333333") if c not in near)


def storage_dump(page: Page) -> str:
    dump: str = page.evaluate(
        "() => JSON.stringify([Object.entries(sessionStorage), Object.entries(localStorage)])"
    )
    return dump


# --- sign-in --------------------------------------------------------------------------------------


def test_sign_in_with_totp(browsing: Browsing, api: Api) -> None:
    user = api.new_user("otp")
    page = browsing.page()
    sign_in(page, browsing.base, user)

    # Enrol: the QR code is the server's SVG data URI; the key is shown for manual entry.
    open_tab(page, "보안")
    page.get_by_role("button", name="OTP 등록 시작").click()
    expect(page.get_by_role("img", name="OTP 등록용 QR 코드")).to_have_attribute(
        "src", re.compile(r"^data:image/svg\+xml;base64,")
    )
    secret = page.locator("code[data-totp-secret]").inner_text().strip()
    page.get_by_label("OTP 코드").fill("12")
    page.get_by_role("button", name="확인하고 켜기").click()
    expect(page.get_by_text("6자리 숫자를 입력하세요.").first).to_be_visible()
    page.get_by_label("OTP 코드").fill(pyotp.TOTP(secret).now())
    page.get_by_role("button", name="확인하고 켜기").click()
    expect(page.locator("[data-recovery] li")).to_have_count(10)
    assert secret not in storage_dump(page)
    page.get_by_role("button", name="적어 두었습니다").click()
    expect(page.locator("[data-totp=on]")).to_be_visible()

    # Sign out, then back in: the password alone is not enough.
    page.get_by_role("button", name="로그아웃").click()
    page.get_by_label("아이디").fill(user)
    page.get_by_label("비밀번호").fill(PASSWORD)
    page.get_by_role("button", name="로그인").click()
    otp = page.get_by_label("OTP 코드")
    expect(otp).to_be_visible()
    expect(page.get_by_text("2단계 인증을 사용합니다")).to_be_visible()
    otp.fill(wrong_code(secret))
    page.get_by_role("button", name="로그인").click()
    expect(
        page.get_by_role("alert").filter(has_text="OTP 코드가 올바르지 않습니다")
    ).to_be_visible()
    # The code used to enrol may not be replayed: take the next step's (within the ±1 window).
    otp.fill(pyotp.TOTP(secret).at(time.time() + 30))
    page.get_by_role("button", name="로그인").click()
    expect(page.get_by_role("heading", name="개요", level=1)).to_be_visible()
    expect(page.locator(".topbar .who")).to_contain_text(user)
    shot(page, "sign-in-with-totp")

    # Bad input on the sign-in form is checked before anything is sent.
    page.get_by_role("button", name="로그아웃").click()
    page.get_by_role("button", name="로그인").click()
    expect(page.get_by_text("아이디를 입력하세요.")).to_be_visible()


# --- trading ---------------------------------------------------------------------------------------


def test_paper_order_fills_and_appears_in_positions(browsing: Browsing, api: Api) -> None:
    user = api.new_user("buyer")
    page = browsing.page()
    sign_in(page, browsing.base, user)
    expect(page.locator("[data-value=cash]")).to_have_text("10,000,000원")

    open_tab(page, "주문")
    pick_symbol(page, "삼성", "삼성전자")
    # The limit band and tick size come from the server.
    expect(page.locator("dt:text-is('호가 단위') + dd")).to_have_text("100원")
    expect(page.locator("dt:text-is('하한가') + dd")).to_have_text(
        re.compile(r"^\d{1,3}(,\d{3})+$")
    )

    # Bad input first: no quantity.
    page.get_by_role("button", name="매수 주문").click()
    expect(page.get_by_text("수량은 1 이상의 정수여야 합니다.").first).to_be_visible()

    ticket = page.get_by_role("form", name="주문하기")
    ticket.get_by_text("시장가", exact=True).click()
    page.get_by_label("수량 (주)").fill("5")
    preview = page.locator("[data-preview]")
    expect(preview).to_contain_text("주문금액")
    expect(page.locator("[data-gate=ok]")).to_be_visible()
    page.get_by_role("button", name="매수 주문").click()
    expect(page.get_by_role("status").filter(has_text="접수되었습니다")).to_be_visible()
    filled = page.locator("tr[data-status=FILLED]").filter(has_text="005930")
    expect(filled).to_have_count(1)
    expect(filled).to_contain_text("5 / 5")

    open_tab(page, "개요")
    row = page.locator("tr[data-symbol='005930']")
    expect(row).to_contain_text("삼성전자")
    expect(row.locator("td").nth(1)).to_have_text("5")
    # Live prices arrive over /ws/market-data: the change cell fills in.
    expect(row.locator("td[data-cell=change]")).to_have_text(re.compile(r"%$"))
    expect(page.locator("[data-value=cash]")).not_to_have_text("10,000,000원")
    expect(page.get_by_role("region", name="최근 체결")).to_contain_text("005930")
    shot(page, "paper-order-fills")

    # The server agrees.
    me = api.login(user)
    (pos,) = api.get("/api/portfolio", me)["positions"]
    assert pos["symbol"] == "005930" and pos["qty"] == 5

    # The chart marks the fill on live candles.
    row.get_by_role("link", name="삼성전자").click()
    expect(page.get_by_role("heading", name=re.compile("차트"), level=1)).to_be_visible()
    expect(page.get_by_role("region", name="이 종목의 내 체결")).to_contain_text("매수")
    # lightweight-charts draws on a canvas; the chart element says what it drew.
    chart = page.locator(".chart[data-candles]")
    expect(chart).not_to_have_attribute("data-candles", "0", timeout=15_000)
    expect(chart).to_have_attribute("data-buys", "1")
    expect(chart.locator("canvas").first).to_be_visible()
    shot(page, "chart-with-fill")

    # Selling more than held: the preview says the risk gate would refuse, and so does the server.
    page.get_by_role("link", name="이 종목 주문하기").click()
    ticket.get_by_text("매도", exact=True).click()
    ticket.get_by_text("시장가", exact=True).click()
    page.get_by_label("수량 (주)").fill("50")
    expect(page.locator("[data-gate=denied]")).to_contain_text("매도가능수량이 부족합니다")
    page.get_by_role("button", name="매도 주문").click()
    expect(page.get_by_role("alert").filter(has_text="매도가능수량이 부족합니다")).to_be_visible()
    assert len(api.get("/api/portfolio", me)["positions"]) == 1


def test_cancel_a_resting_limit_order(browsing: Browsing, api: Api) -> None:
    user = api.new_user("canceller")
    page = browsing.page()
    sign_in(page, browsing.base, user)
    open_tab(page, "주문")
    pick_symbol(page, "000660", "SK하이닉스")
    lower = page.locator("dt:text-is('하한가') + dd")
    expect(lower).to_have_text(re.compile(r"\d"))
    price = page.get_by_label("주문가격 (원)")

    # A price off the tick grid is refused with the neighbouring valid prices.
    page.get_by_label("수량 (주)").fill("2")
    low = int(lower.inner_text().replace(",", ""))
    price.fill(str(low + 1))
    expect(page.get_by_text("호가 단위").filter(has_text="맞지 않습니다")).to_be_visible()
    # ▲ moves to the next valid price - the server's answer, not ours.
    price.fill(str(low))
    page.get_by_role("button", name="한 호가 올리기").click()
    expect(price).not_to_have_value(f"{low:,}")
    page.get_by_role("button", name="한 호가 내리기").click()
    expect(price).to_have_value(f"{low:,}")  # with thousands separators

    page.get_by_role("button", name="매수 주문").click()
    expect(page.get_by_role("status").filter(has_text="접수되었습니다")).to_be_visible()
    open_orders = page.get_by_role("region", name="미체결 주문")
    row = open_orders.locator("tr[data-order-id]")
    expect(row).to_have_count(1)
    expect(row).to_have_attribute("data-status", re.compile("QUEUED|ACCEPTED"))
    order_id = row.get_attribute("data-order-id")
    # Wait until the broker has it, then cancel from the table.
    expect(row).to_have_attribute("data-status", "ACCEPTED")
    row.get_by_role("button", name=re.compile("취소")).click()
    expect(open_orders.locator("tr[data-order-id]")).to_have_count(0)
    done = page.get_by_role("region", name="최근 주문 (완료)")
    expect(done.locator(f"tr[data-order-id='{order_id}']")).to_have_attribute(
        "data-status", "CANCELLED"
    )
    expect(done.locator(f"tr[data-order-id='{order_id}']")).to_contain_text("취소됨")
    shot(page, "cancel-resting-order")
    me = api.login(user)
    assert api.get(f"/api/orders/{order_id}", me)["status"] == "CANCELLED"


# --- strategies and backtests ----------------------------------------------


def test_create_and_start_a_strategy_from_its_generated_form(browsing: Browsing, api: Api) -> None:
    user = api.new_user("quant", tier="premium")
    me = api.login(user)
    catalog = api.http.get("/api/strategy-catalog", headers=me)
    assert catalog.status_code == 200, catalog.text
    entry = catalog.json()["strategies"][0]
    kind, schema = entry["kind"], entry["params_schema"]
    page = browsing.page()
    sign_in(page, browsing.base, user)
    open_tab(page, "전략")
    card = page.locator(f"article[data-kind='{kind}']")
    card.get_by_role("button").click()

    page.get_by_label("전략 이름").fill("웹 테스트 전략")
    page.get_by_label("종목코드").fill("005930")
    # The generated form checks the schema's constraints before sending.
    bounded = next(
        (
            (name, prop)
            for name, prop in schema["properties"].items()
            if prop.get("type") == "integer" and "minimum" in prop
        ),
        None,
    )
    if bounded is not None:
        name, prop = bounded
        control = page.locator(f"#p-{kind}-{name}")
        control.fill(str(prop["minimum"] - 1))
        page.get_by_role("button", name="전략 만들기").click()
        expect(page.get_by_text(f"{prop['minimum']:,} 이상이어야 합니다.")).to_be_visible()
        control.fill(str(entry["defaults"].get(name, prop.get("default", prop["minimum"]))))
    if kind == "sma_cross":
        # A rule across parameters is the server's: its refusal lands next to the field.
        page.locator("#p-sma_cross-fast").fill("30")
        page.locator("#p-sma_cross-slow").fill("20")
        page.get_by_role("button", name="전략 만들기").click()
        fast = page.locator(".field[data-field=fast]")
        expect(fast.locator(".error-msg")).to_contain_text("slow")
        expect(page.get_by_role("alert").filter(has_text="slow").first).to_be_visible()
        page.locator("#p-sma_cross-fast").fill("5")
    page.get_by_role("button", name="전략 만들기").click()
    row = page.locator("tr[data-strategy-id]").filter(has_text="웹 테스트 전략")
    expect(row).to_have_attribute("data-status", "created")
    row.get_by_role("button", name=re.compile("^시작")).click()
    expect(row).to_have_attribute("data-status", "running")
    expect(row).to_contain_text("실행 중")
    shot(page, "strategy-created-and-started")
    (view,) = api.get("/api/strategies", me)["strategies"]
    assert view["status"] == "running" and view["symbols"] == ["005930"]
    row.get_by_role("button", name=re.compile("^일시정지")).click()
    expect(row).to_have_attribute("data-status", "paused")
    row.get_by_role("button", name=re.compile("^중지")).click()
    expect(row).to_have_attribute("data-status", "stopped")
    assert api.get("/api/strategies", me)["strategies"][0]["status"] == "stopped"


def _csv(days: int = 120) -> str:
    lines = ["date,open,high,low,close,volume"]
    price = 50_000
    for i in range(days):
        day = time.strftime("%Y-%m-%d", time.gmtime(1_700_000_000 + i * 86400))
        move = 500 if (i // 10) % 2 == 0 else -500
        close = price + move
        lines.append(
            f"{day},{price},{max(price, close) + 100},{min(price, close) - 100},{close},1000"
        )
        price = close
    return "\n".join(lines) + "\n"


def test_run_a_backtest_and_see_its_chart(browsing: Browsing, api: Api) -> None:
    user = api.new_user("tester")
    me = api.login(user)
    assert api.http.get("/api/strategy-catalog", headers=me).status_code == 200
    page = browsing.page()
    sign_in(page, browsing.base, user)
    open_tab(page, "백테스트")
    page.get_by_text("CSV 파일 올리기").click()
    page.get_by_label("CSV 파일", exact=True).set_input_files(
        files=[{"name": "bars.csv", "mimeType": "text/csv", "buffer": _csv().encode()}]
    )
    page.get_by_role("button", name="백테스트 실행").click()
    expect(page.locator("[data-bt-status=done]")).to_be_visible(timeout=60_000)
    expect(page.locator("[data-report]")).to_contain_text("최종 자산")
    expect(page.locator(".chart canvas").first).to_be_visible()
    shot(page, "backtest-report")


# --- broker accounts ------------------------------------------------------------------------------------


def test_add_a_broker_account(browsing: Browsing, api: Api, fake_kis: FakeBroker) -> None:
    user = api.new_user("linker")
    page = browsing.page()
    sign_in(page, browsing.base, user)
    open_tab(page, "증권사 계좌")
    paper = page.locator("tr[data-account-id]").filter(has_text="가상 계좌")
    expect(paper).to_contain_text("10,000,000원")

    # Bad input never leaves the page.
    page.get_by_label("계좌번호").fill("123")
    page.get_by_label("앱 키", exact=True).fill("short")
    page.get_by_role("button", name="계좌 추가").click()
    expect(page.get_by_text("계좌번호는 숫자 10~12자리입니다").first).to_be_visible()
    me = api.login(user)
    assert len(api.get("/api/broker-accounts", me)["accounts"]) == 1

    # A KIS mock account, pointed at a local server that speaks KIS's protocol.
    page.get_by_label("증권사").select_option("kis")
    page.get_by_role("radio", name="모의투자").check()
    page.get_by_label("계좌번호").fill(fake_kis.account_no)
    page.get_by_label("앱 키", exact=True).fill(fake_kis.app_key)
    page.get_by_label("앱 시크릿").fill(fake_kis.app_secret)
    page.get_by_label("별칭").fill("내 KIS 모의")
    page.get_by_text("고급: 증권사 서버 주소").click()
    page.get_by_label("REST 주소 (선택)").fill(fake_kis.rest)
    page.get_by_label("웹소켓 주소 (선택)").fill(fake_kis.ws)
    page.get_by_role("button", name="계좌 추가").click()
    expect(page.get_by_role("status").filter(has_text="연결했습니다")).to_be_visible()
    row = page.locator("tr[data-account-id]").filter(has_text="내 KIS 모의")
    expect(row).to_contain_text("한국투자증권")
    expect(row).to_contain_text("****")
    expect(row).not_to_contain_text("50999888")
    # The secrets are gone from the page, its source and its storage.
    expect(page.get_by_label("앱 시크릿")).to_have_value("")
    html = page.content()
    for value in (fake_kis.app_secret, fake_kis.app_key, "50999888"):
        assert value not in html, f"{value} is still in the page"
    assert fake_kis.app_secret not in storage_dump(page)

    # Test the connection: hoga's KIS adapter signs in to the (local) broker and reads the balance.
    row.get_by_role("button", name=re.compile("연결 확인")).click()
    expect(page.get_by_text("내 KIS 모의: 연결에 성공했습니다.")).to_be_visible()
    expect(row.locator(".badge.ok")).to_be_visible()
    paper.get_by_role("button", name=re.compile("연결 확인")).click()
    expect(paper.locator(".badge.ok")).to_be_visible()
    shot(page, "broker-account-added")
    accounts = api.get("/api/broker-accounts", me)["accounts"]
    assert {a["broker"] for a in accounts} == {"paper", "kis"}
    kis = next(a for a in accounts if a["broker"] == "kis")
    assert kis["last_test"]["ok"] is True


# --- admin -----------------------------------------------------------------------------------------------


def test_admin_changes_a_users_tier(browsing: Browsing, api: Api) -> None:
    user = api.new_user("tiered", tier="free")
    page = browsing.page()
    sign_in(page, browsing.base, "admin", ADMIN_PASSWORD)
    open_tab(page, "관리자")
    row = page.locator(f"tr[data-username='{user}']")
    row.get_by_label(f"{user}의 등급").select_option("premium")
    row.get_by_role("button", name=f"{user} 저장").click()
    expect(page.get_by_text(f"{user}의 설정을 저장했습니다.")).to_be_visible()
    expect(
        page.locator(f"tr[data-username='{user}']").get_by_label(f"{user}의 등급")
    ).to_have_value("premium")
    # System status and the audit log are on the same page.
    expect(page.get_by_role("heading", name="시세 피드: 모의 시장")).to_be_visible()
    page.get_by_label("동작").fill("user.tier")
    page.get_by_role("button", name="검색").click()
    expect(page.get_by_role("region", name="감사 로그")).to_contain_text(user)
    shot(page, "admin-changes-tier")
    users = {u["username"]: u for u in api.get("/api/admin/users", api.admin())["users"]}
    assert users[user]["tier"] == "premium"

    # A non-admin never sees the admin tab, and the API refuses them anyway.
    other = api.new_user("plain")
    page2 = browsing.page()
    sign_in(page2, browsing.base, other)
    expect(page2.get_by_role("navigation").get_by_role("link", name="관리자")).to_have_count(0)
    assert api.http.get("/api/admin/users", headers=api.login(other)).status_code == 403


# --- tenancy -------------------------------------------------------------------------------------------------


def _wait_filled(api: Api, headers: dict[str, str], order_id: int) -> dict[str, Any]:
    def filled() -> dict[str, Any] | None:
        order: dict[str, Any] = api.get(f"/api/orders/{order_id}", headers)
        return order if order["status"] == "FILLED" else None

    return eventually_sync(filled, 20, f"order {order_id} to fill")


def test_a_second_user_sees_none_of_the_first_users_data(browsing: Browsing, api: Api) -> None:
    alice, bob = api.new_user("alice"), api.new_user("bob")
    a = api.login(alice)
    r = api.http.post(
        "/api/orders",
        json={"symbol": "005930", "side": "buy", "type": "market", "qty": 3},
        headers=a,
    )
    assert r.status_code == 202, r.text
    _wait_filled(api, a, r.json()["id"])
    r = api.http.post(
        "/api/orders",
        json={"symbol": "000660", "side": "buy", "type": "limit", "qty": 1, "price": 1000},
        headers=a,
    )
    assert r.status_code in (202, 422), r.text
    r = api.http.post(
        "/api/broker-accounts",
        json={
            "broker": "kiwoom",
            "env": "mock",
            "account_no": "8012345611",
            "app_key": "alice-key-123456",
            "app_secret": "alice-secret-123456",
            "label": "앨리스 키움",
            # Nothing listens there: whatever the server tries with it stays on this machine.
            "base_url": "http://127.0.0.1:9",
        },
        headers=a,
    )
    assert r.status_code == 201, r.text

    page_a = browsing.page()
    sign_in(page_a, browsing.base, alice)
    expect(page_a.locator("tr[data-symbol='005930']")).to_be_visible()

    page_b = browsing.page()  # another browser context: its own storage and cookies
    sign_in(page_b, browsing.base, bob)
    expect(page_b.get_by_text("보유 종목이 없습니다.")).to_be_visible()
    expect(page_b.get_by_text("미체결 주문이 없습니다.")).to_be_visible()
    expect(page_b.get_by_text("체결 내역이 없습니다.")).to_be_visible()
    expect(page_b.locator("[data-value=cash]")).to_have_text("10,000,000원")
    open_tab(page_b, "주문")
    expect(page_b.get_by_text("완료된 주문이 없습니다.")).to_be_visible()
    open_tab(page_b, "증권사 계좌")
    expect(page_b.locator("tr[data-account-id]")).to_have_count(1)
    expect(page_b.get_by_text("앨리스 키움")).to_have_count(0)
    page_b.goto(browsing.base + "/#/chart?symbol=005930")
    expect(page_b.get_by_text("이 종목의 체결이 없습니다.")).to_be_visible()
    # The chart is drawn, with no fill of Alice's on it.
    chart = page_b.locator(".chart[data-candles]")
    expect(chart.locator("canvas").first).to_be_visible(timeout=15_000)
    expect(chart).to_have_attribute("data-buys", "0")
    shot(page_b, "second-user-sees-nothing")
    shot(page_a, "first-user-sees-own")
    # Bob's storage holds Bob's session only.
    assert alice not in storage_dump(page_b)


# --- bad input: an expired session and a dropped connection ----------------------------------------------


def test_expired_session_returns_to_sign_in_keeping_the_ticket(
    browsing: Browsing, api: Api
) -> None:
    user = api.new_user("expiry")
    page = browsing.page()
    sign_in(page, browsing.base, user)
    open_tab(page, "주문")
    pick_symbol(page, "005930", "삼성전자")
    page.get_by_label("수량 (주)").fill("8")
    price = page.get_by_label("주문가격 (원)")
    expect(price).to_have_value(re.compile(r"^\d{1,3}(,\d{3})*$"))
    typed_price = price.input_value()
    # Let the page settle: the preview of exactly these values is on screen.
    amount = f"{8 * int(typed_price.replace(',', '')):,}원"
    expect(page.locator("[data-preview]")).to_contain_text(amount)
    expect(page.locator("[data-gate=ok]")).to_be_visible()

    # End the browser's session from elsewhere (as a person would from another device).
    other = api.login(user)
    sessions = api.get("/api/me/sessions", other)["sessions"]
    (browser_session,) = [s for s in sessions if not s["current"]]
    r = api.http.delete(f"/api/me/sessions/{browser_session['id']}", headers=other)
    assert r.status_code == 200, r.text

    # The page learns it at once - the server closes its live connection (4001) and the token
    # renewal is refused - or at its next request, whichever comes first; it used to be only
    # the next request, and typing into the ticket then raced the overlay.
    dialog = page.get_by_role("dialog")
    expect(dialog).to_contain_text("로그인이 만료되었습니다")
    expect(dialog.get_by_label("아이디")).to_have_value(user)
    shot(page, "session-expired-overlay")
    # What was typed is still there under the overlay.
    expect(page.get_by_label("수량 (주)")).to_have_value("8")
    expect(price).to_have_value(typed_price)
    expect(page.get_by_role("combobox", name="종목")).to_have_value(re.compile("삼성전자"))
    dialog.get_by_label("비밀번호").fill(PASSWORD)
    dialog.get_by_role("button", name="로그인").click()
    expect(dialog).to_have_count(0)
    expect(page.locator("#conn")).to_have_attribute("data-state", "open")
    page.get_by_role("button", name="매수 주문").click()
    expect(page.get_by_role("status").filter(has_text="접수되었습니다")).to_be_visible()
    me = api.login(user)
    (order,) = api.get("/api/orders", me)["orders"]
    assert order["qty"] == 8 and order["price"] == int(typed_price.replace(",", ""))


def test_dropped_live_connection_reconnects_and_says_so(
    browsing: Browsing, own_server: HogaServer
) -> None:
    server = own_server
    page = browsing.page()
    sign_in(page, server.base, "admin", ADMIN_PASSWORD)
    conn = page.locator("#conn")
    expect(conn).to_have_text("실시간 연결됨")

    server.stop()
    expect(conn).to_have_attribute("data-state", "reconnecting")
    expect(page.get_by_role("alert").filter(has_text="실시간 연결이 끊어졌습니다")).to_be_visible()
    shot(page, "live-connection-dropped")

    server.start()
    expect(conn).to_have_attribute("data-state", "open", timeout=30_000)
    expect(page.get_by_text("실시간 연결이 복구되었습니다.")).to_be_visible()
    expect(page.get_by_role("alert").filter(has_text="실시간 연결이 끊어졌습니다")).to_be_hidden()


def test_tokens_are_renewed_silently(browsing: Browsing, own_server: HogaServer) -> None:
    # Access tokens live 30 s on this server, so the page renews them every few seconds.
    server = own_server
    own_api = Api(server.base)
    user = own_api.new_user("renew")
    page = browsing.page()
    sign_in(page, server.base, user)
    read = "() => JSON.parse(sessionStorage.getItem('hoga.session')).refresh"
    first = page.evaluate(read)
    for _ in range(2):
        before = page.evaluate(read)
        # Wait (bounded) until the page has rotated its refresh token and stored the new one.
        page.wait_for_function(
            f"prev => ({read})() !== prev", arg=before, timeout=20_000, polling=200
        )
    assert page.evaluate(read) != first
    # Still signed in, one session (rotation stays in the family), the streams still up.
    open_tab(page, "보안")
    sessions = page.get_by_role("region", name="로그인 세션").locator("tbody tr")
    expect(sessions).to_have_count(1)
    expect(sessions).to_contain_text("현재")
    expect(page.locator("#conn")).to_have_attribute("data-state", "open")
    expect(page.get_by_role("dialog")).to_have_count(0)


def test_security_settings_refuse_bad_input_and_save_good(browsing: Browsing, api: Api) -> None:
    user = api.new_user("secure")
    page = browsing.page()
    sign_in(page, browsing.base, user)
    open_tab(page, "보안")
    pw = page.get_by_role("region", name="비밀번호 변경")
    pw.get_by_label("현재 비밀번호").fill(PASSWORD)
    pw.get_by_label("새 비밀번호", exact=True).fill("another-pass-42")
    pw.get_by_label("새 비밀번호 확인").fill("different-pass-42")
    pw.get_by_role("button", name="비밀번호 바꾸기").click()
    expect(pw.get_by_text("새 비밀번호가 서로 다릅니다.")).to_be_visible()
    # The server's refusal, in its words.
    pw.get_by_label("현재 비밀번호").fill("not-my-password")
    pw.get_by_label("새 비밀번호 확인").fill("another-pass-42")
    pw.get_by_role("button", name="비밀번호 바꾸기").click()
    expect(pw.get_by_role("alert")).to_contain_text("현재 비밀번호가 올바르지 않습니다")
    pw.get_by_label("현재 비밀번호").fill(PASSWORD)
    pw.get_by_role("button", name="비밀번호 바꾸기").click()
    expect(pw.get_by_role("status")).to_contain_text("비밀번호를 바꿨습니다")
    api.login(user, "another-pass-42")  # the new password works - and opens a second session

    ip = page.get_by_role("region", name="접속 허용 IP")
    area = ip.get_by_label("IP 또는 CIDR (한 줄에 하나)")
    area.fill("not-an-ip")
    ip.get_by_role("button", name="저장").click()
    expect(ip.locator(".error-msg")).to_contain_text("IP 주소 형식이 아닙니다: not-an-ip")
    area.fill("10.0.0.0/8")  # would lock this browser (127.0.0.1) out: the server says so
    ip.get_by_role("button", name="저장").click()
    expect(ip.get_by_role("alert")).to_contain_text("스스로 차단됩니다")
    area.fill("127.0.0.1\n10.0.0.0/8")
    ip.get_by_role("button", name="저장").click()
    expect(ip.get_by_role("status")).to_contain_text("저장했습니다 (2개)")
    expect(area).to_have_value("127.0.0.1/32\n10.0.0.0/8")

    # The other session shows, and can be ended from here.
    page.reload()
    sessions = page.get_by_role("region", name="로그인 세션")
    expect(sessions.locator("tbody tr")).to_have_count(2)
    sessions.get_by_role("button", name="로그아웃시키기").click()
    expect(sessions.locator("tbody tr")).to_have_count(1)
    expect(sessions.locator("tbody tr")).to_contain_text("현재")
    shot(page, "security-settings")


def test_admin_kill_switch(browsing: Browsing, own_server: HogaServer) -> None:
    page = browsing.page()
    sign_in(page, own_server.base, "admin", ADMIN_PASSWORD)
    open_tab(page, "관리자")
    kill = page.get_by_role("region", name="서버 킬 스위치")
    expect(kill.locator("[data-server-state]")).to_have_text("정상 거래")
    halt = kill.get_by_role("button", name="거래 중지")
    halt.click()  # the first click only arms it
    expect(kill.get_by_role("button", name=re.compile("한 번 더 누르면"))).to_be_visible()
    kill.get_by_role("button", name=re.compile("한 번 더 누르면")).click()
    expect(kill.locator("[data-server-state]")).to_have_attribute("data-server-state", "HALTED")
    shot(page, "admin-kill-switch-halted")
    admin = Api(own_server.base)
    r = admin.http.post(
        "/api/orders",
        json={"symbol": "005930", "side": "buy", "type": "market", "qty": 1},
        headers=admin.admin(),
    )
    assert r.status_code == 422 and r.json()["order"]["status"] == "DENIED", r.text
    kill.get_by_role("button", name="정상 거래").click()
    expect(kill.locator("[data-server-state]")).to_have_attribute("data-server-state", "ACTIVE")


# --- phone-sized screens and the English switch -----------------------------------------------------------


def test_phone_layout_and_english_switch(browsing: Browsing, api: Api) -> None:
    user = api.new_user("phone")
    page = browsing.page(viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True)
    sign_in(page, browsing.base, user)
    overflow = "() => document.documentElement.scrollWidth - window.innerWidth"
    assert page.evaluate(overflow) <= 0
    open_tab(page, "주문")
    expect(page.get_by_role("button", name="매수 주문")).to_be_visible()
    assert page.evaluate(overflow) <= 0
    shot(page, "phone-order-ticket")

    page.get_by_role("button", name="Switch to English").click()
    expect(page.get_by_role("heading", name="Trade", level=1)).to_be_visible()
    expect(page.get_by_role("button", name="Place buy order")).to_be_visible()
    page.reload()  # the language and the session survive a reload
    expect(page.get_by_role("heading", name="Trade", level=1)).to_be_visible()
    expect(page.locator("html")).to_have_attribute("lang", "en")
    shot(page, "phone-english")
    page.get_by_role("button", name="한국어로 보기").click()
    expect(page.get_by_role("heading", name="주문", level=1)).to_be_visible()
