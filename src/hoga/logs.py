"""Logging set-up with a last line of defence against secrets in log output.

Code never logs credentials; on top of that, every value wrapped in ``Secret`` and every
registered token is masked if it ever reaches a log record, and ``token=`` query parameters are
blanked.
"""

from __future__ import annotations

import logging
import re
import sys
import weakref
from typing import Final

_TOKEN_PARAM: Final = re.compile(r"(token=)[^&\s\"']+", re.IGNORECASE)
_BEARER: Final = re.compile(r"(bearer\s+)[A-Za-z0-9._~+/=-]+", re.IGNORECASE)
_registered: set[str] = set()


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
    def filter(self, record: logging.LogRecord) -> bool:
        msg = record.getMessage()
        clean = redact(msg)
        if clean != msg:
            record.msg, record.args = clean, None
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        return True


_handlers: weakref.WeakSet[logging.Handler] = weakref.WeakSet()


def configure(level: str = "info") -> None:
    root = logging.getLogger()
    root.setLevel(level.upper())
    for h in list(root.handlers):
        if h in _handlers:
            root.removeHandler(h)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s", "%H:%M:%S")
    )
    handler.addFilter(RedactingFilter())
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


def _hook_secrets() -> None:
    from hoga.domain.secret import Secret

    if register_secret not in Secret.on_create:
        Secret.on_create.append(register_secret)


_hook_secrets()
