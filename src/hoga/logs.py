"""Logging set-up: ISO-8601 lines (text or JSON), request ids, rotation, collapsed repeats, and a
last line of defence against secrets in log output.

* Every line carries an ISO-8601 timestamp with its zone (``2026-12-04T09:00:01.123+09:00``).
* ``fmt="json"`` writes one JSON object per line (``ts``, ``level``, ``logger``, ``msg``,
  ``request_id`` when inside a request, ``exc`` for tracebacks).
* ``request_id`` is a context variable the API middleware (``api/request_context.py``) sets for
  each request; ``RequestIdFilter`` copies it onto every record logged while the request runs,
  in whatever task.
* ``file`` adds a size-rotated file (``RotatingFileHandler``) beside stderr.
* ``RepeatCollapser`` lets the first WARNING-or-worse record of a (logger, message template)
  through, drops repeats within ``window`` seconds and, on the first one after the window,
  says how many were dropped ("... (repeated 12 times in 60 s)"): a reconciliation mismatch
  every 30 s or an unreachable account every few seconds no longer floods the log.
* Code never logs credentials; on top of that, every value wrapped in ``Secret`` and every
  registered token is masked if it ever reaches a log record, and ``token=`` query parameters
  and bearer tokens are blanked - in the message, the arguments and tracebacks alike.
"""

from __future__ import annotations

import json
import logging
import logging.handlers
import re
import sys
import time
import weakref
from collections.abc import Callable
from contextvars import ContextVar
from datetime import datetime
from pathlib import Path
from typing import Final, Literal

_TOKEN_PARAM: Final = re.compile(r"(token=)[^&\s\"']+", re.IGNORECASE)
_BEARER: Final = re.compile(r"(bearer\s+)[A-Za-z0-9._~+/=-]+", re.IGNORECASE)
_registered: set[str] = set()

#: The id of the HTTP request being served, if any (set by the API middleware).
request_id: ContextVar[str | None] = ContextVar("hoga_request_id", default=None)

LogFormat = Literal["text", "json"]


def register_secret(value: str) -> None:
    """Mask ``value`` wherever it would appear in a log line (values shorter than 6 are ignored)."""
    if len(value) >= 6:
        _registered.add(value)


def redact(text: str) -> str:
    text = _TOKEN_PARAM.sub(r"\1****", text)
    text = _BEARER.sub(r"\1****", text)
    for value in _registered:
        if value in text:
            text = text.replace(value, "****")
    return text


class RedactingFilter(logging.Filter):
    """Masks secrets in the formatted message and any traceback text of a record."""

    def filter(self, record: logging.LogRecord) -> bool:
        msg = record.getMessage()
        clean = redact(msg)
        if clean != msg:
            record.msg, record.args = clean, None
        if record.exc_info and not record.exc_text:
            # Format the traceback now so its text can be redacted before any handler prints it.
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        return True


class RequestIdFilter(logging.Filter):
    """Puts the current request id (or None) on the record as ``request_id``."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "request_id"):
            record.request_id = request_id.get()
        return True


class RepeatCollapser(logging.Filter):
    """Collapses repeated WARNING+ records of one (logger, message template) within ``window``.

    Shared by every handler: the decision is made once per record and remembered on it, so a
    record goes to all handlers or none, and the count is not doubled."""

    def __init__(self, window: float = 60.0, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__()
        self.window = window
        self._clock = clock
        # key -> (first seen in this window, repeats suppressed)
        self._seen: dict[tuple[str, str], tuple[float, int]] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        decided = getattr(record, "_hoga_collapse", None)
        if decided is not None:
            return bool(decided)
        keep = self._decide(record)
        record._hoga_collapse = keep
        return keep

    def _decide(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.WARNING or self.window <= 0:
            return True
        key = (record.name, str(record.msg))
        now = self._clock()
        seen = self._seen.get(key)
        if seen is None or now - seen[0] >= self.window:
            if seen is not None and seen[1]:
                record.msg = (
                    f"{record.getMessage()} (repeated {seen[1]} times in {now - seen[0]:.0f} s)"
                )
                record.args = None
            self._seen[key] = (now, 0)
            if len(self._seen) > 10_000:  # bounded: forget the oldest keys
                for k in list(self._seen)[:5_000]:
                    del self._seen[k]
            return True
        self._seen[key] = (seen[0], seen[1] + 1)
        return False


def _iso(record: logging.LogRecord) -> str:
    return datetime.fromtimestamp(record.created).astimezone().isoformat(timespec="milliseconds")


class TextFormatter(logging.Formatter):
    """``<ISO-8601 with zone> LEVEL   logger: message [rid=...]``."""

    def format(self, record: logging.LogRecord) -> str:
        line = f"{_iso(record)} {record.levelname:<7} {record.name}: {record.getMessage()}"
        rid = getattr(record, "request_id", None)
        if rid:
            line += f" [rid={rid}]"
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            line += "\n" + record.exc_text
        return line


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts, level, logger, msg, request_id (when set), exc."""

    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, object] = {
            "ts": _iso(record),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        rid = getattr(record, "request_id", None)
        if rid:
            doc["request_id"] = rid
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            doc["exc"] = record.exc_text
        return json.dumps(doc, ensure_ascii=False)


_handlers: weakref.WeakSet[logging.Handler] = weakref.WeakSet()


def configure(
    level: str = "info",
    *,
    fmt: LogFormat = "text",
    file: Path | None = None,
    file_max_bytes: int = 10 * 1024 * 1024,
    file_keep: int = 5,
    repeat_window: float = 60.0,
    stream: object | None = None,
) -> None:
    """Install hoga's handlers on the root logger (replacing any it installed before)."""
    root = logging.getLogger()
    root.setLevel(level.upper())
    for h in list(root.handlers):
        if h in _handlers:
            root.removeHandler(h)
            h.close()
    formatter: logging.Formatter = JsonFormatter() if fmt == "json" else TextFormatter()
    collapser = RepeatCollapser(repeat_window)
    handlers: list[logging.Handler] = [logging.StreamHandler(stream or sys.stderr)]  # type: ignore[arg-type]
    if file is not None:
        file.parent.mkdir(parents=True, exist_ok=True)
        handlers.append(
            logging.handlers.RotatingFileHandler(
                file, maxBytes=file_max_bytes, backupCount=file_keep, encoding="utf-8"
            )
        )
    for handler in handlers:
        handler.setFormatter(formatter)
        # Redact first (the collapser may copy the message), then drop repeats, then tag.
        handler.addFilter(RedactingFilter())
        handler.addFilter(collapser)
        handler.addFilter(RequestIdFilter())
        root.addHandler(handler)
        _handlers.add(handler)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        lg = logging.getLogger(name)
        lg.handlers.clear()
        lg.propagate = True
    logging.getLogger("uvicorn.access").setLevel(logging.WARNING)
    # httpx logs every request URL at INFO, and broker URLs carry account numbers in their
    # query strings (KIS inquiries): keep its chatter out of the server log.
    for name in ("httpx", "httpcore"):
        logging.getLogger(name).setLevel(max(logging.WARNING, root.level))
    # Alembic narrates every plugin it loads; only its warnings matter to an operator.
    logging.getLogger("alembic").setLevel(max(logging.WARNING, root.level))
    # apprise names notification URLs and urllib3 logs request paths; both carry tokens
    # (notify/service.py silences them too, for processes that never call configure).
    logging.getLogger("apprise").setLevel(logging.CRITICAL + 1)
    logging.getLogger("urllib3").setLevel(max(logging.WARNING, root.level))


def _hook_secrets() -> None:
    from hoga.domain.secret import Secret

    if register_secret not in Secret.on_create:
        Secret.on_create.append(register_secret)


_hook_secrets()
