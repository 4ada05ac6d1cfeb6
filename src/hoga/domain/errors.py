"""Errors that carry a machine-readable code, a human message and the HTTP status they map to.

Every refusal hoga gives a user is one of these; the API turns them into
``{"error": {"code", "message", ...}}`` with the status below.
"""

from __future__ import annotations

from typing import Any


class HogaError(Exception):
    """Base error: ``code`` is stable and machine-readable, ``message`` is for people.

    A subclass names its HTTP status and default code in its header:
    ``class NotFound(HogaError, status=404, code="not_found")``."""

    status: int = 400
    default_code: str = "bad_request"

    def __init_subclass__(cls, status: int | None = None, code: str | None = None) -> None:
        super().__init_subclass__()
        if status is not None:
            cls.status = status
        if code is not None:
            cls.default_code = code

    def __init__(self, message: str, code: str | None = None, **details: Any) -> None:
        super().__init__(message)
        self.code = code or self.default_code
        self.message = message
        self.details = details

    def to_dict(self) -> dict[str, Any]:
        body: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.details:
            body["details"] = self.details
        return body


class InvalidInput(HogaError, status=422, code="invalid_input"):
    """The request is well-formed JSON but its values are wrong (422)."""


class NotFound(HogaError, status=404, code="not_found"):
    """The object does not exist - or belongs to someone else, which looks the same (404)."""


class Conflict(HogaError, status=409, code="conflict"):
    """The request clashes with existing state (409)."""


class Unauthorized(HogaError, status=401, code="unauthorized"):
    """Missing, expired or invalid credentials (401)."""


class Forbidden(HogaError, status=403, code="forbidden"):
    """Authenticated but not allowed (403)."""


class LimitExceeded(HogaError, status=429, code="limit_exceeded"):
    """A quota or cap was reached (429 for rate budgets, 403/422 chosen by callers)."""

    def __init__(
        self,
        message: str,
        code: str | None = None,
        retry_after: float | None = None,
        **details: Any,
    ) -> None:
        super().__init__(message, code, **details)
        self.retry_after = retry_after


class ServiceUnavailable(HogaError, status=503, code="unavailable"):
    """A dependency (database, broker) cannot be reached right now (503)."""


class StorageUnavailable(ServiceUnavailable, code="storage.unavailable"):
    """The database could not take the request (connection lost, server restarting or down,
    I/O error). The transaction was rolled back: nothing of it was written (503)."""

    #: What failed, for logs (never part of the answer).
    cause: str = ""
    #: What the user reads when the raiser gives no message of its own.
    default_message = (
        "데이터베이스를 잠시 사용할 수 없습니다. 잠시 후 다시 시도하세요 "
        "(storage unavailable; nothing was recorded, retry shortly)"
    )

    def __init__(self, message: str | None = None, code: str | None = None, **details: Any):
        super().__init__(message or self.default_message, code, **details)


class StorageFull(StorageUnavailable, code="storage.full"):
    """The database's disk is full. The transaction was rolled back; reads still work (503)."""

    default_message = (
        "저장 공간이 부족해 기록할 수 없습니다. 관리자에게 알려 주세요 "
        "(storage full; nothing was recorded)"
    )
