"""Every refusal as ``{"error": {"code", "message"}}`` with a 4xx status - never a bare 500.

Faults of a dependency are 503 with a code naming it: ``storage.unavailable`` (the database's
connection was lost, it is restarting or unreachable) and ``storage.full`` (its disk is full),
with ``Retry-After``; nothing of the failed request was written.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from hoga.api.language import localize, preferred_language
from hoga.domain.errors import HogaError, LimitExceeded, StorageFull, StorageUnavailable
from hoga.store.faults import classify

log = logging.getLogger(__name__)

_STATUS_CODES = {
    400: ("bad_request", "잘못된 요청입니다 (bad request)"),
    401: ("unauthorized", "로그인이 필요합니다 (sign in first)"),
    403: ("forbidden", "권한이 없습니다 (forbidden)"),
    404: ("not_found", "찾을 수 없습니다 (not found)"),
    405: ("method_not_allowed", "허용되지 않는 메서드입니다 (method not allowed)"),
    413: ("request.too_large", "요청이 너무 큽니다 (request too large)"),
    415: ("unsupported_media_type", "JSON으로 보내 주세요 (send JSON)"),
}


def error_body(code: str, message: str, **extra: Any) -> dict[str, Any]:
    err: dict[str, Any] = {"code": code, "message": message}
    err.update({k: v for k, v in extra.items() if v is not None})
    return {"error": err}


def _field_path(loc: tuple[Any, ...]) -> str:
    parts = [str(p) for p in loc if p not in ("body", "query", "path")]
    return ".".join(parts) or "body"


def _speak(request: Request, message: str) -> str:
    """The caller's half of a "한국어 (English)" message (``api/language.py``)."""
    return localize(message, preferred_language(request.headers.get("accept-language")))


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(HogaError)
    async def _hoga(request: Request, exc: HogaError) -> JSONResponse:
        headers = {}
        if isinstance(exc, LimitExceeded) and exc.retry_after is not None:
            headers["Retry-After"] = str(max(1, int(exc.retry_after + 0.999)))
        elif isinstance(exc, StorageUnavailable):
            # A lost connection comes back within a second or two; a full disk needs a person.
            headers["Retry-After"] = "30" if isinstance(exc, StorageFull) else "1"
        body = {"error": exc.to_dict()}
        body["error"]["message"] = _speak(request, exc.message)
        # The field a refusal is about sits beside code and message, as the API contract says.
        if exc.details and isinstance(exc.details.get("field"), str):
            body["error"]["field"] = exc.details["field"]
        order = exc.details.get("order") if exc.details else None
        if order is not None:
            body["error"].pop("details", None)
            body["order"] = order
        return JSONResponse(body, status_code=exc.status, headers=headers)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = exc.errors()
        first = errors[0] if errors else {"loc": (), "msg": "invalid request", "type": "invalid"}
        field = _field_path(tuple(first.get("loc", ())))
        kind = str(first.get("type", "invalid"))
        if kind == "json_invalid":
            return JSONResponse(
                error_body(
                    "malformed_json",
                    _speak(request, "JSON 형식이 올바르지 않습니다 (malformed JSON)"),
                ),
                status_code=400,
            )
        message = _speak(
            request, f"{field}: 입력값이 올바르지 않습니다 ({field}: {first.get('msg', 'invalid')})"
        )
        fields = [
            {
                "field": _field_path(tuple(e.get("loc", ()))),
                "message": e.get("msg"),
                "type": e.get("type"),
            }
            for e in errors
        ]
        return JSONResponse(
            error_body("validation_error", message, field=field, fields=fields), status_code=422
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code, default = _STATUS_CODES.get(exc.status_code, ("error", "요청을 처리할 수 없습니다"))
        message = (
            exc.detail
            if isinstance(exc.detail, str) and exc.detail not in ("Not Found",)
            else default
        )
        return JSONResponse(
            error_body(code, _speak(request, message)),
            status_code=exc.status_code,
            headers=getattr(exc, "headers", None),
        )

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        fault = classify(exc)
        if fault is not None:
            # A database fault raised outside Database.tx (which translates its own): still
            # a 503 that says what happened, not an "internal error".
            log.warning(
                "storage fault (%s) on %s %s", fault.cause, request.method, request.url.path
            )
            return await _hoga(request, fault)
        # Log the type and route only: exception text may carry values we must not log
        # (api/guard.py keeps the re-raised exception's traceback out of the log too).
        log.error(
            "unhandled %s on %s %s (request %s)",
            type(exc).__name__,
            request.method,
            request.url.path,
            getattr(request.state, "request_id", "-"),
        )
        return JSONResponse(
            error_body(
                "internal",
                _speak(request, "서버 내부 오류입니다. 관리자에게 문의하세요 (internal error)"),
            ),
            status_code=500,
        )
