"""Log lines: ISO-8601 with zone, JSON lines, request ids, rotation, collapsed repeats, no secrets."""

from __future__ import annotations

import io
import json
import logging
import re
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest

from hoga import logs
from hoga.domain.secret import Secret


@pytest.fixture
def restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    level, handlers = root.level, list(root.handlers)
    yield
    for h in list(root.handlers):
        if h not in handlers:
            root.removeHandler(h)
            h.close()
    root.setLevel(level)


def _lines(stream: io.StringIO) -> list[str]:
    return [line for line in stream.getvalue().splitlines() if line]


def test_text_lines_start_with_iso8601_and_zone(restore_logging: None) -> None:
    out = io.StringIO()
    logs.configure("info", stream=out)
    logging.getLogger("hoga.test").info("hello %s", "there")
    line = _lines(out)[-1]
    stamp = line.split(" ", 1)[0]
    parsed = datetime.fromisoformat(stamp)
    assert parsed.tzinfo is not None and parsed.utcoffset() is not None
    assert re.search(r"[+-]\d\d:\d\d$", stamp)
    assert line.endswith("hoga.test: hello there")


def test_json_lines_carry_the_request_id(restore_logging: None) -> None:
    out = io.StringIO()
    logs.configure("info", fmt="json", stream=out)
    token = logs.request_id.set("req-42")
    try:
        logging.getLogger("hoga.test").warning("inside %d", 1)
    finally:
        logs.request_id.reset(token)
    logging.getLogger("hoga.test").info("outside")
    first, second = (json.loads(line) for line in _lines(out)[-2:])
    assert first["msg"] == "inside 1" and first["level"] == "warning"
    assert first["request_id"] == "req-42" and first["logger"] == "hoga.test"
    assert datetime.fromisoformat(first["ts"]).tzinfo is not None
    assert "request_id" not in second


def test_tracebacks_go_into_json_and_are_redacted(restore_logging: None) -> None:
    out = io.StringIO()
    logs.configure("info", fmt="json", stream=out)
    secret = Secret("s3cr3t-app-secret-value")
    try:
        raise RuntimeError(f"failed with {secret.reveal()}")
    except RuntimeError:
        logging.getLogger("hoga.test").exception("boom token=abcdefgh")
    doc = json.loads(_lines(out)[-1])
    assert "RuntimeError" in doc["exc"]
    assert "s3cr3t-app-secret-value" not in out.getvalue()
    assert "abcdefgh" not in out.getvalue()


def test_secrets_never_reach_any_handler(restore_logging: None, tmp_path: Path) -> None:
    out = io.StringIO()
    log_file = tmp_path / "hoga.log"
    logs.configure("debug", stream=out, file=log_file)
    value = "KIS-APP-SECRET-0123456789"
    Secret(value)  # registered for masking the moment it exists
    log = logging.getLogger("hoga.test")
    log.info("app secret is %s", value)
    log.warning("Authorization: Bearer eyJhbGciOi.payload.sig")
    log.error("url https://x.test/ws?token=abc123def456&x=1")
    for text in (out.getvalue(), log_file.read_text()):
        assert value not in text
        assert "eyJhbGciOi" not in text
        assert "abc123def456" not in text
        assert text.count("****") >= 3


def test_file_rotates_by_size(restore_logging: None, tmp_path: Path) -> None:
    log_file = tmp_path / "logs" / "hoga.log"
    logs.configure("info", stream=io.StringIO(), file=log_file, file_max_bytes=2048, file_keep=2)
    log = logging.getLogger("hoga.test")
    for i in range(200):
        log.info("line %d %s", i, "x" * 40)
    names = sorted(p.name for p in log_file.parent.iterdir())
    assert names == ["hoga.log", "hoga.log.1", "hoga.log.2"]
    assert all(p.stat().st_size <= 2048 + 200 for p in log_file.parent.iterdir())


def test_repeated_warnings_collapse_with_a_count() -> None:
    now = [1000.0]
    collapser = logs.RepeatCollapser(window=30.0, clock=lambda: now[0])
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.addFilter(collapser)
    log = logging.getLogger("hoga.test.collapse")
    log.propagate = False
    log.setLevel(logging.INFO)
    log.addHandler(handler)
    try:
        for i in range(10):  # every 3 s, a mismatch with a changing figure
            log.warning("cash mismatch on account %s: %d won", 7, i)
            now[0] += 3.0
        log.info("info lines are never collapsed")
        log.info("info lines are never collapsed")
        log.warning("another message is its own key")
        now[0] += 1.0  # 31 s after the first: the window is over
        log.warning("cash mismatch on account %s: %d won", 7, 99)
    finally:
        log.removeHandler(handler)
        log.propagate = True
    lines = _lines(out)
    assert lines == [
        "cash mismatch on account 7: 0 won",
        "info lines are never collapsed",
        "info lines are never collapsed",
        "another message is its own key",
        "cash mismatch on account 7: 99 won (repeated 9 times in 31 s)",
    ]


def test_one_decision_per_record_across_handlers(restore_logging: None, tmp_path: Path) -> None:
    out = io.StringIO()
    log_file = tmp_path / "hoga.log"
    logs.configure("info", stream=out, file=log_file, repeat_window=60.0)
    log = logging.getLogger("hoga.test.two")
    for _ in range(5):
        log.warning("account 3 unreachable")
    assert _lines(out)[-1].endswith("account 3 unreachable")
    assert sum("account 3 unreachable" in line for line in _lines(out)) == 1
    assert sum("account 3 unreachable" in line for line in log_file.read_text().splitlines()) == 1
