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


# "이(가)"-style particles written after a value not known in advance ("사용자 'kim'이(가)").
_PARTICLE = re.compile(r"(이\(가\)|을\(를\)|은\(는\)|과\(와\)|와\(과\)|\(으\)로)")
_PAIRS = {"이(가)": ("이", "가"), "을(를)": ("을", "를"), "은(는)": ("은", "는")}
_PAIRS.update({"과(와)": ("과", "와"), "와(과)": ("과", "와"), "(으)로": ("으로", "로")})
_DIGIT_BATCHIM = {"0": 1, "1": 1, "2": 0, "3": 1, "4": 0, "5": 0, "6": 1, "7": 1, "8": 1, "9": 0}


def _final_sound(before: str) -> tuple[bool, bool] | None:
    """(has a final consonant, it is ㄹ) for the last readable character of ``before``."""
    word = before.rstrip(" '\")]}")
    if not word:
        return None
    ch = word[-1]
    if "\uac00" <= ch <= "\ud7a3":
        jong = (ord(ch) - 0xAC00) % 28
        return jong != 0, jong == 8
    if ch.isdigit() and ch in _DIGIT_BATCHIM:
        return bool(_DIGIT_BATCHIM[ch]), ch in "178"
    if ch.isascii() and ch.isalpha():
        return ch.lower() in "lmnr", ch.lower() in "lr"
    return None


def resolve_particles(text: str) -> str:
    """ "사용자 'kim'이(가)" -> "사용자 'kim'이"; the particle follows the sound before it."""

    def pick(m: re.Match[str]) -> str:
        with_batchim, without = _PAIRS[m.group(1)]
        sound = _final_sound(text[: m.start()])
        if sound is None:
            return m.group(1)
        batchim, rieul = sound
        if m.group(1) == "(으)로":
            return with_batchim if batchim and not rieul else without
        return with_batchim if batchim else without

    return _PARTICLE.sub(pick, text)


def localize(message: str, lang: str) -> str:
    """The ``lang`` half of a bilingual message (see the module docstring)."""
    if not message or not _HANGUL.search(message):
        return message
    english = [m.group(1).strip() for m in _GROUP.finditer(message) if _is_english(m.group(1))]
    if not english:
        return resolve_particles(message) if lang == "ko" else message
    if lang == "en":
        text = "; ".join(e for e in english if e)
        return text[:1].upper() + text[1:]
    korean = _GROUP.sub(lambda m: "" if _is_english(m.group(1)) else m.group(0), message)
    korean = re.sub(r"\s+([.,;:])", r"\1", korean)
    return resolve_particles(re.sub(r"\s{2,}", " ", korean).strip().rstrip(";").strip())
