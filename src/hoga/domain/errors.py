"""Errors that carry a machine-readable code, a human message and the HTTP status they map to.

Every refusal hoga gives a user is one of these; the API turns them into
``{"error": {"code", "message", ...}}`` with the status below.
"""

from __future__ import annotations

from typing import Any


class HogaError(Exception):
    """Base error: ``code`` is stable and machine-readable, ``message`` is for people."""

    status: int = 400
    default_code: str = "bad_request"

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


class InvalidInput(HogaError):
    """The request is well-formed JSON but its values are wrong (422)."""

    status = 422
    default_code = "invalid_input"


class NotFound(HogaError):
    """The object does not exist - or belongs to someone else, which looks the same (404)."""

    status = 404
    default_code = "not_found"


class Conflict(HogaError):
    """The request clashes with existing state (409)."""

    status = 409
    default_code = "conflict"


class Unauthorized(HogaError):
    """Missing, expired or invalid credentials (401)."""

    status = 401
    default_code = "unauthorized"


class Forbidden(HogaError):
    """Authenticated but not allowed (403)."""

    status = 403
    default_code = "forbidden"


class LimitExceeded(HogaError):
    """A quota or cap was reached (429 for rate budgets, 403/422 chosen by callers)."""

    status = 429
    default_code = "limit_exceeded"

    def __init__(
        self,
        message: str,
        code: str | None = None,
        retry_after: float | None = None,
        **details: Any,
    ) -> None:
        super().__init__(message, code, **details)
        self.retry_after = retry_after


class ServiceUnavailable(HogaError):
    """A dependency (database, broker) cannot be reached right now (503)."""

    status = 503
    default_code = "unavailable"


class StorageUnavailable(ServiceUnavailable):
    """The database could not take the request (connection lost, server restarting or down,
    I/O error). The transaction was rolled back: nothing of it was written (503)."""

    default_code = "storage.unavailable"
    #: What failed, for logs (never part of the answer).
    cause: str = ""

    def __init__(self, message: str | None = None, code: str | None = None, **details: Any):
        super().__init__(
            message
            or "데이터베이스를 잠시 사용할 수 없습니다. 잠시 후 다시 시도하세요 "
            "(storage unavailable; nothing was recorded, retry shortly)",
            code,
            **details,
        )


class StorageFull(StorageUnavailable):
    """The database's disk is full. The transaction was rolled back; reads still work (503)."""

    default_code = "storage.full"

    def __init__(self, message: str | None = None, code: str | None = None, **details: Any):
        super().__init__(
            message
            or "저장 공간이 부족해 기록할 수 없습니다. 관리자에게 알려 주세요 "
            "(storage full; nothing was recorded)",
            code,
            **details,
        )
