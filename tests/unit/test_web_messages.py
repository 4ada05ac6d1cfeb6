"""The dashboard's text: every key the JavaScript uses exists in Korean and in English."""

from __future__ import annotations

import re
from pathlib import Path

from hoga.notify.store import USER_EVENTS

JS = Path(__file__).resolve().parents[2] / "src" / "hoga" / "web" / "static" / "js"

# Keys built at run time from a prefix and a value the server sends.
DYNAMIC = {
    "status.": [
        "NEW",
        "DENIED",
        "QUEUED",
        "SUBMITTING",
        "ACCEPTED",
        "PARTIALLY_FILLED",
        "FILLED",
        "CANCEL_PENDING",
        "CANCELLED",
        "REJECTED",
        "UNKNOWN",
        "EXPIRED",
    ],
    "state.": ["ACTIVE", "REDUCING", "HALTED"],
    "ready.": ["ok", "degraded", "down"],
    "side.": ["buy", "sell"],
    "type.": ["limit", "market"],
    "strategy.status.": ["created", "running", "paused", "stopped", "error"],
    "bt.status.": ["queued", "running", "done", "error"],
    "broker.": ["paper", "kis", "kiwoom", "kiwoom_openapi"],
    "env.": ["real", "mock"],
    "interval.": ["1m", "5m", "15m", "60m", "1d"],
    "tier.": [
        "daily_trades",
        "max_strategies",
        "max_positions",
        "api_calls_per_minute",
        "free",
        "basic",
        "premium",
    ],
    "notify.kind.": ["webhook", "telegram", "discord", "slack", "email"],
    "notify.event.": list(USER_EVENTS),
    "notify.permission.": ["granted", "denied", "default"],
    "history.": ["orders", "fills"],
    "strategy.level.": ["debug", "info", "warning", "error"],
    "status.orders.": ["submitted", "denied", "sent", "unknown", "fills"],
    "admin.": ["max_order_value", "daily_loss_limit"],
    "status.strat.": [
        "running",
        "by_kind",
        "queued_events",
        "events_processed",
        "errors_since_start",
        "catalog",
    ],
}


def messages() -> dict[str, dict[str, str]]:
    text = (JS / "messages.js").read_text(encoding="utf-8")
    out: dict[str, dict[str, str]] = {}
    for key, ko, en in re.findall(
        r'^\s*"([^"]+)": \{ ko: "((?:[^"\\]|\\.)*)", en: "((?:[^"\\]|\\.)*)" \},$', text, re.M
    ):
        assert key not in out, f"duplicate key {key}"
        out[key] = {"ko": ko, "en": en}
    return out


def used_keys() -> set[str]:
    keys: set[str] = set()
    for path in JS.rglob("*.js"):
        text = path.read_text(encoding="utf-8")
        keys.update(re.findall(r'\bt\("([a-z0-9_.]+)"', text))
        keys.update(re.findall(r'label: "(nav\.[a-z_]+)"', text))
        # tOr(`prefix.${x}`, fallback) falls back by design: its keys need not all exist.
        for prefix in re.findall(r"\bt\(`([a-z0-9_.]+\.)\$\{", text):
            assert prefix in DYNAMIC, f"{path.name}: dynamic key t(`{prefix}...`) not listed"
            keys.update(prefix + v for v in DYNAMIC[prefix])
    return keys


def test_every_key_has_korean_and_english() -> None:
    table = messages()
    assert len(table) > 300  # the regex read the file
    missing = sorted(used_keys() - set(table))
    assert missing == []
    for key, text in table.items():
        assert text["ko"].strip() and text["en"].strip(), key
        # Placeholders match between the languages ("{id|이/가}" is {id} with its particle).
        assert placeholders(text["ko"]) == placeholders(text["en"]), key
        # Korean particles are resolved (josa.js), never written "이(가)" / "을(를)".
        assert not re.search(r"\((?:가|를|는|과|와|으)\)", text["ko"]), key


def placeholders(text: str) -> set[str]:
    return set(re.findall(r"\{(\w+)(?:[|?][^}]*)?\}", text))


def test_korean_is_korean() -> None:
    hangul = re.compile(r"[\uac00-\ud7a3]")
    table = messages()
    korean = [k for k, v in table.items() if hangul.search(v["ko"])]
    # A few entries are the same in both (e.g. a language switch label); nearly all are Korean.
    assert len(korean) > 0.95 * len(table)
