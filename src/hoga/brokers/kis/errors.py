"""KIS answers and failures as the broker protocol's errors (kis.md §6).

Errors are classified by ``rt_cd``/``msg_cd`` whatever the HTTP status. For *commands* (orders)
the classification is what the order pipeline relies on: ``BrokerNotProcessed`` only when the
request certainly did not take effect (EGW00201, refused connection, token trouble before
sending, a full request queue), ``BrokerRejected`` for a business refusal,
``BrokerOutcomeUnknown`` for timeouts, dropped connections, 5xx without a KIS body and
unreadable replies. Queries get plain ``BrokerError``s where a command would be "unknown".
"""

from __future__ import annotations

from typing import Any

import httpx

from hoga.brokers.base import (
    BrokerAuthError,
    BrokerError,
    BrokerNotProcessed,
    BrokerOutcomeUnknown,
    BrokerRejected,
)
from hoga.brokers.kis import wire


def json_body(resp: httpx.Response) -> dict[str, Any] | None:
    """The answer's JSON object, or None when it is not one."""
    try:
        data = resp.json()
    except ValueError:
        return None
    return data if isinstance(data, dict) else None


def token_refusal(status: int, data: dict[str, Any]) -> BrokerError:
    """A token or approval-key request the gateway refused."""
    code = str(data.get("error_code") or data.get("msg_cd") or f"kis.http_{status}")
    desc = str(data.get("error_description") or data.get("msg1") or "")
    if code == wire.TOKEN_THROTTLED:
        return BrokerNotProcessed(
            f"KIS {code}: {desc} - 토큰 재발급은 잠시 후에 가능합니다 (token re-issue throttled)",
            code,
            retry_after=60.0,
        )
    if code in (wire.BAD_APP_KEY, wire.BAD_APP_SECRET):
        return BrokerAuthError(
            f"KIS {code}: {desc} - 앱키/앱시크릿과 실전·모의 환경이 맞는지 확인하세요 "
            "(app key/secret refused; check them and the real/mock setting)",
            code,
        )
    return BrokerAuthError(f"KIS {code}: {desc or 'token request refused'}", code)


def busy(waited: float) -> BrokerNotProcessed:
    """Still queued behind the key's other calls: nothing was sent. Handing the order back
    beats letting the submit time out into a false UNKNOWN."""
    return BrokerNotProcessed(
        f"KIS 요청 대기열이 가득합니다 ({waited:.1f}초 대기; request queue busy)",
        "kis.busy",
        retry_after=1.0,
    )


def unreachable(e: Exception, command: bool) -> BrokerError:
    """The connection never opened: nothing reached the broker."""
    text = f"KIS 서버에 연결할 수 없습니다 ({type(e).__name__})"
    if command:
        return BrokerNotProcessed(text, "kis.unreachable", retry_after=5.0)
    return BrokerError(text, "kis.unreachable")


def no_answer(e: Exception, command: bool) -> BrokerError:
    """The request may have arrived; its answer did not."""
    if command:
        return BrokerOutcomeUnknown(
            f"KIS 응답을 받지 못했습니다 ({type(e).__name__}); 주문 상태를 대조합니다",
            "kis.no_answer",
        )
    return BrokerError(f"KIS 응답을 받지 못했습니다 ({type(e).__name__})", "kis.no_answer")


def token_refused_twice(msg_cd: str, msg1: str, command: bool) -> BrokerError:
    err = f"KIS {msg_cd}: {msg1} (새 토큰도 거부됨; token refused twice)"
    if command:
        return BrokerRejected(err, msg_cd)
    return BrokerAuthError(err, msg_cd)


def rate_limited(msg_cd: str, msg1: str) -> BrokerNotProcessed:
    return BrokerNotProcessed(f"KIS {msg_cd}: {msg1}", msg_cd, retry_after=1.0)


def refusal(rt_cd: object, msg_cd: str, msg1: str) -> BrokerRejected:
    """A business refusal, with KIS's ``msg_cd`` as the code."""
    return BrokerRejected(
        f"KIS {msg_cd or 'rt_cd=' + str(rt_cd)}: {msg1 or 'refused'}",
        msg_cd or f"kis.rt_cd_{rt_cd}",
    )


def unreadable(resp: httpx.Response, command: bool) -> BrokerError:
    """An answer without a readable KIS body."""
    status = resp.status_code
    what = f"HTTP {status}, {len(resp.content)} bytes"
    if status == 429:
        return BrokerNotProcessed(f"KIS 요청 제한 ({what})", "kis.http_429", retry_after=1.0)
    if command and 400 <= status < 500:
        # A gateway that answers 4xx did not take the request in.
        return BrokerRejected(f"KIS 요청이 거부되었습니다 ({what})", f"kis.http_{status}")
    if command:
        return BrokerOutcomeUnknown(
            f"KIS 응답을 해석할 수 없습니다 ({what}); 주문 상태를 대조합니다",
            "kis.bad_reply",
        )
    return BrokerError(f"KIS 응답을 해석할 수 없습니다 ({what})", "kis.bad_reply")
