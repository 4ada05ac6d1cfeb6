"""The caller's half of a "한국어 (English)" message, chosen by Accept-Language."""

from __future__ import annotations

import re

from hypothesis import given
from hypothesis import strategies as st

from hoga.api.language import localize, preferred_language

HANGUL = re.compile(r"[\uac00-\ud7a3]")


def test_accept_language_picks_english_only_when_preferred() -> None:
    assert preferred_language(None) == "ko"
    assert preferred_language("") == "ko"
    assert preferred_language("en") == "en"
    assert preferred_language("en-US,en;q=0.9") == "en"
    assert preferred_language("ko-KR,ko;q=0.9,en;q=0.8") == "ko"
    assert preferred_language("ko;q=0.5, en;q=0.9") == "en"
    assert preferred_language("fr, de") == "ko"
    assert preferred_language("en;q=0, ko") == "ko"
    assert preferred_language("en;q=abc") == "ko"


def test_messages_split_into_one_language() -> None:
    msg = "주문을 찾을 수 없습니다 (order not found)"
    assert localize(msg, "ko") == "주문을 찾을 수 없습니다"
    assert localize(msg, "en") == "Order not found"
    # A parenthesis that is part of the Korean sentence stays Korean.
    limit = "API 호출 한도(분당 60회)를 넘었습니다. 3초 후 다시 시도하세요 (API budget exceeded)"
    assert localize(limit, "ko") == "API 호출 한도(분당 60회)를 넘었습니다. 3초 후 다시 시도하세요"
    assert localize(limit, "en") == "API budget exceeded"
    glued = "차트 라이브러리(plotly)가 없습니다 (chart library missing)"
    assert localize(glued, "ko") == "차트 라이브러리(plotly)가 없습니다"
    # English-only and Korean-only messages are what they are.
    assert localize("unknown message type 'x'", "ko") == "unknown message type 'x'"
    assert localize("종목코드가 없습니다", "en") == "종목코드가 없습니다"
    assert localize("", "en") == ""


@given(
    ko=st.text(alphabet="가나다라마바사 ", min_size=1, max_size=20).filter(lambda s: s.strip()),
    en=st.text(alphabet="abcdefg xyz", min_size=1, max_size=20).filter(lambda s: s.strip()),
)
def test_no_mixed_language_after_the_split(ko: str, en: str) -> None:
    msg = f"{ko.strip()} ({en.strip()})"
    korean = localize(msg, "ko")
    english = localize(msg, "en")
    assert not re.search(r"[A-Za-z]", korean)
    assert not HANGUL.search(english)
    assert english.lower() == en.strip().lower()


def test_korean_particles_follow_the_value_before_them() -> None:
    assert localize("사용자 'kim'이(가) 없습니다 (no such user)", "ko") == "사용자 'kim'이 없습니다"
    assert localize("사용자 'lee'이(가) 없습니다 (no such user)", "ko") == "사용자 'lee'가 없습니다"
    assert (
        localize("등급 '프리미엄'이(가) 없습니다 (unknown tier)", "ko")
        == "등급 '프리미엄'이 없습니다"
    )
    assert (
        localize("주문 12을(를) 찾을 수 없습니다 (not found)", "ko") == "주문 12를 찾을 수 없습니다"
    )
    assert (
        localize("주문 13을(를) 찾을 수 없습니다 (not found)", "ko") == "주문 13을 찾을 수 없습니다"
    )
    assert localize("서울(으)로 보냅니다", "ko") == "서울로 보냅니다"
    assert localize("부산(으)로 보냅니다", "ko") == "부산으로 보냅니다"
    # English is untouched.
    assert localize("사용자 'kim'이(가) 없습니다 (no such user)", "en") == "No such user"
