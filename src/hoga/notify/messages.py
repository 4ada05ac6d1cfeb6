"""What a user is told: events of the ``EventBus`` turned into short notification messages.

Contract: a fill, a rejection, an order settled after ``UNKNOWN`` and a strategy stopped by an
error each make one message (Korean first, English in parentheses); every other event makes
none. Translation is synchronous and cheap: it runs inside the publisher's hook.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Message:
    """One notification to deliver: to a user's channels for ``event`` (or to one channel,
    ``channel_id``, for "send test"), or to the admins (``user_id`` None)."""

    user_id: int | None
    event: str
    title: str
    body: str
    channel_id: int | None = None


def _won(n: int) -> str:
    return f"{n:,}"


class EventMessages:
    """Turns events into messages; remembers which orders went ``UNKNOWN`` so that their
    settlement is announced."""

    def __init__(self) -> None:
        #: Orders seen UNKNOWN (the notifier adds those left so by a restart).
        self.unknown: set[int] = set()

    def translate(self, user_id: int, event: dict[str, Any]) -> Message | None:
        """The message an event is worth, or None (most events are worth none)."""
        kind = event.get("type")
        if kind == "fill":
            f = event["fill"]
            side = "매수 (buy)" if f["side"] == "buy" else "매도 (sell)"
            return Message(
                user_id,
                "fill",
                f"체결 (fill) {f['symbol']} {side}",
                f"{f['symbol']} {side} {f['qty']}주 @ {_won(f['price'])}원 - "
                f"수수료 {_won(f['commission'])}원, 세금 {_won(f['tax'])}원 "
                f"(order #{f['order_id']})",
            )
        if kind == "order":
            o = event["order"]
            status, oid = o.get("status"), o.get("id")
            if status == "UNKNOWN":
                self.unknown.add(oid)
                return None
            if oid in self.unknown and status not in ("UNKNOWN", "SUBMITTING"):
                self.unknown.discard(oid)
                return Message(
                    user_id,
                    "unknown_settled",
                    f"주문 확인됨 (order settled) #{oid}: {status}",
                    f"결과를 알 수 없던 주문 #{oid} ({o.get('symbol')})의 결과가 확인되었습니다: "
                    f"{status}, 체결 {o.get('filled_qty', 0)}주 (order #{oid} settled after UNKNOWN)",
                )
            if status == "REJECTED":
                return Message(
                    user_id,
                    "rejection",
                    f"주문 거부 (order rejected) #{oid} {o.get('symbol')}",
                    f"{o.get('symbol')} {o.get('side')} {o.get('qty')}주: "
                    f"{o.get('reason') or o.get('reason_code') or 'rejected'}",
                )
            return None
        if kind == "strategy":
            s = event["strategy"]
            if s.get("status") != "error":
                return None
            err = s.get("last_error") or {}
            return Message(
                user_id,
                "strategy_error",
                f"전략 중지 (strategy stopped) {s.get('name', s.get('id'))}",
                f"전략 {s.get('name', s.get('id'))}이(가) 오류로 멈췄습니다 (stopped by an error): "
                f"{err.get('message', '') if isinstance(err, dict) else err}",
            )
        return None
