"""What a Kiwoom answer means for the pipeline: one of the four broker outcomes.

``return_code``/``return_msg`` are checked whatever the HTTP status (an HTTP 200 can carry an
error, and a 429 carries the throttle code). The detailed code may sit in ``return_msg``
(``return_code: 3`` with ``[8005:...]``; ``return_code: 5`` with ``[1700:...]``) or in
``return_code`` itself; both envelopes are observed (kiwoom.md A3, A8) and both are accepted.

* 1700 or HTTP 429 - the request was not processed: ``BrokerNotProcessed``;
* 8005/8103 or HTTP 401 - the token is no good: ``TokenInvalid`` (re-issue once, retry);
* 8001/8002/8010/8011/8012/8020/8030/8031/8040/8050 - credentials or environment refused:
  ``BrokerAuthError``;
* HTTP 5xx, 1999 (unexpected error) or an unreadable answer to an order: the order may exist,
  ``BrokerOutcomeUnknown``;
* anything else non-zero: ``BrokerRejected`` with the code and the broker's message.
"""

from __future__ import annotations

from typing import Any, Final

from hoga.brokers.base import (
    BrokerAuthError,
    BrokerError,
    BrokerNotProcessed,
    BrokerOutcomeUnknown,
    BrokerRejected,
)
from hoga.brokers.kiwoom.wire import broker_code, return_code

THROTTLED: Final = frozenset({"1700"})
TOKEN_INVALID: Final = frozenset({"8005", "8103"})
AUTH: Final = frozenset(
    {"8001", "8002", "8003", "8010", "8011", "8012", "8020", "8030", "8031", "8040", "8050"}
)
#: Codes whose meaning for an order is "maybe": the broker itself does not know.
UNCERTAIN: Final = frozenset({"1999"})

_AUTH_HINTS: Final = {
    "8001": "앱키/시크릿키 검증 실패 (wrong app key or secret)",
    "8002": "앱키/시크릿키 검증 실패 (wrong app key or secret)",
    "8010": "토큰 발급 IP와 요청 IP가 다릅니다 - 키움 포털에 서버 IP를 등록하세요 (IP not registered)",
    "8030": "실전/모의 구분이 맞지 않습니다: 이 앱키는 다른 환경용입니다 (real/mock key mismatch)",
    "8031": "실전/모의 구분이 맞지 않습니다: 토큰이 다른 환경에서 발급되었습니다 (real/mock token mismatch)",
}

#: Retry hint for throttled requests: Kiwoom's samples wait 0.2 s; one window is safer.
THROTTLE_RETRY_AFTER: Final = 1.0


class TokenInvalid(BrokerAuthError):
    """The access token was refused (8005); the client re-issues it once and retries."""


def describe(code: str, message: str) -> str:
    """A message that names the broker and its code, then the broker's own words."""
    hint = _AUTH_HINTS.get(code)
    text = (message or "").strip() or "응답 메시지 없음 (no message)"
    return f"키움증권 [{code}] {text}" + (f" - {hint}" if hint else "")


def classify(status: int, body: dict[str, Any] | None, *, order: bool) -> BrokerError | None:
    """The error a response stands for, or None if it is a success.

    ``body`` is None when the answer was not a JSON object. ``order`` says whether the request
    could have created or changed an order (then doubt means ``BrokerOutcomeUnknown``).
    """
    if body is None:
        if status == 429:
            return BrokerNotProcessed(
                describe("429", "요청 한도 초과 (HTTP 429)"),
                "kiwoom.1700",
                THROTTLE_RETRY_AFTER,
            )
        what = f"HTTP {status}, 응답을 해석할 수 없습니다 (unreadable answer)"
        if status == 401:
            return TokenInvalid(describe("401", what), "kiwoom.401")
        if order and (status >= 500 or status == 200):
            return BrokerOutcomeUnknown(describe(str(status), what), f"kiwoom.http_{status}")
        if status >= 500 or status == 200:
            return BrokerError(describe(str(status), what), f"kiwoom.http_{status}")
        return BrokerRejected(describe(str(status), what), f"kiwoom.http_{status}")
    rc = return_code(body)
    msg = str(body.get("return_msg") or "")
    # A zero return_code is success whatever the message says; codes count only on failures.
    code = None if rc == 0 and status < 400 else broker_code(rc, msg)
    if code in THROTTLED or status == 429:
        return BrokerNotProcessed(
            describe(code or "1700", msg), f"kiwoom.{code or '1700'}", THROTTLE_RETRY_AFTER
        )
    if code in TOKEN_INVALID or (status == 401 and code not in AUTH):
        return TokenInvalid(describe(code or "401", msg), f"kiwoom.{code or '401'}")
    if code in AUTH:
        return BrokerAuthError(describe(code, msg), f"kiwoom.{code}")
    if status >= 500:
        text = describe(code or str(status), msg or f"HTTP {status}")
        if order:
            return BrokerOutcomeUnknown(text, f"kiwoom.http_{status}")
        return BrokerError(text, f"kiwoom.http_{status}")
    if rc is None:
        text = describe(str(status), "return_code가 없는 응답 (answer without return_code)")
        if order:
            return BrokerOutcomeUnknown(text, "kiwoom.bad_response")
        return BrokerError(text, "kiwoom.bad_response")
    if rc == 0 and status < 400:
        return None
    if rc == 0:
        return BrokerRejected(describe(str(status), msg), f"kiwoom.http_{status}")
    code = code or str(rc)
    if code in UNCERTAIN and order:
        return BrokerOutcomeUnknown(describe(code, msg), f"kiwoom.{code}")
    return BrokerRejected(describe(code, msg), f"kiwoom.{code}")
