"""The bridge's error kinds as the broker protocol's four outcomes."""

from __future__ import annotations

from hoga.brokers.base import (
    BrokerAuthError,
    BrokerError,
    BrokerNotProcessed,
    BrokerOutcomeUnknown,
    BrokerRejected,
)
from hoga.brokers.kiwoom_openapi.client import BridgeError


def as_broker_error(e: BridgeError, what: str) -> BrokerError:
    """The bridge's error kinds as the broker protocol's four outcomes."""
    text = f"{what}: {e.message}"
    if e.kind == "rejected":
        return BrokerRejected(text, f"kiwoom_openapi.{e.code or 'rejected'}")
    if e.kind == "not_processed":
        return BrokerNotProcessed(text, "kiwoom_openapi.overload", retry_after=e.retry_after or 1.0)
    if e.kind in ("unknown", "disconnected", "timeout"):
        return BrokerOutcomeUnknown(text, f"kiwoom_openapi.{e.kind}")
    if e.kind == "no_session":
        return BrokerNotProcessed(
            f"{what}: 이 사용자의 세션이 지금 없습니다 (no session for this user now)",
            "kiwoom_openapi.no_session",
            retry_after=30.0,
        )
    if e.kind == "unauthorized":
        return BrokerAuthError(text, "kiwoom_openapi.unauthorized")
    if e.kind in ("unreachable", "login_failed", "login_timeout", "worker_died", "aborted"):
        return BrokerNotProcessed(text, f"kiwoom_openapi.{e.kind}", retry_after=5.0)
    return BrokerRejected(text, f"kiwoom_openapi.{e.kind}")
