"""One language per answer: the caller's half of a "한국어 (English)" message.

Messages throughout hoga are written once, Korean first with the English in parentheses
("주문을 찾을 수 없습니다 (order not found)"). The API answers in the caller's language, chosen by
``Accept-Language`` (Korean unless English is preferred), and keeps the error code stable, so
clients that match on codes are unaffected.

The split is by script: a parenthesised group set off by a space is the English half when it
has Latin letters and no Hangul. A message without such a group is the same in both languages; a
message without Hangul is already English.
"""

from __future__ import annotations

import re

LANGS = ("ko", "en")
_HANGUL = re.compile(r"[\uac00-\ud7a3\u3131-\u318e]")
_LATIN = re.compile(r"[A-Za-z]")
# A parenthesised group (no nesting) set off by a space, or opening the message; a group glued
# to a word ("라이브러리(plotly)가") is part of the Korean sentence, not its translation.
_GROUP = re.compile(r"(?:^|\s+)\(([^()]*)\)")


def preferred_language(header: str | None) -> str:
    """``"en"`` when the ``Accept-Language`` header prefers English over Korean, else ``"ko"``.

    Follows q-values (``en;q=0.9, ko;q=0.8`` is English); a tag counts by its primary subtag
    (``en-US`` is English). Unknown languages are ignored; nothing usable means Korean.
    """
    if not header:
        return "ko"
    best: tuple[float, int, str] | None = None
    for index, part in enumerate(header.split(",")[:20]):
        tag, _, params = part.strip().partition(";")
        primary = tag.strip().lower().split("-")[0]
        if primary not in LANGS:
            continue
        q = 1.0
        for param in params.split(";"):
            name, _, value = param.strip().partition("=")
            if name.strip() == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        if q <= 0:
            continue
        key = (q, -index, primary)
        if best is None or key[:2] > best[:2]:
            best = key
    return best[2] if best else "ko"


def _is_english(group: str) -> bool:
    return bool(_LATIN.search(group)) and not _HANGUL.search(group)


def localize(message: str, lang: str) -> str:
    """The ``lang`` half of a bilingual message (see the module docstring)."""
    if not message or not _HANGUL.search(message):
        return message
    english = [m.group(1).strip() for m in _GROUP.finditer(message) if _is_english(m.group(1))]
    if not english:
        return message
    if lang == "en":
        text = "; ".join(e for e in english if e)
        return text[:1].upper() + text[1:]
    korean = _GROUP.sub(lambda m: "" if _is_english(m.group(1)) else m.group(0), message)
    korean = re.sub(r"\s+([.,;:])", r"\1", korean)
    return re.sub(r"\s{2,}", " ", korean).strip().rstrip(";").strip()
