"""Normalisation before blind indexing and comparison (R2.3).

Two spellings a person would call the same must give the same index: full/half width (NFKC),
spaces including U+3000, hiragana vs katakana, and the ways a phone number is written.
"""

from __future__ import annotations

import re
import unicodedata

import jaconv

_SPACES = re.compile(r"[\s\u3000]+")
_KANJI_VALUES = {ch: i for i, ch in enumerate("〇一二三四五六七八九")}
# A kanji number only where an address uses one as a number (四丁目, 十一番): never inside a town
# name such as 三好.
_KANJI_NUMBER = re.compile(r"([〇一二三四五六七八九十]+)(?=丁目|番地|番|号|-)")


def nfkc(text: str) -> str:
    return unicodedata.normalize("NFKC", text or "")


def strip_spaces(text: str) -> str:
    return _SPACES.sub("", text)


def kana(text: str) -> str:
    """Name in kana: NFKC, no spaces, hiragana folded to katakana, small kana kept as typed."""
    return jaconv.hira2kata(strip_spaces(nfkc(text)))


def is_kana(text: str) -> bool:
    folded = kana(text)
    return bool(folded) and all("\u30a0" <= ch <= "\u30ff" or ch in "ー・" for ch in folded)


def phone(text: str) -> str:
    """Digits only; an international +81 prefix becomes the domestic leading 0."""
    value = nfkc(text).strip()
    international = value.startswith("+")
    digits = re.sub(r"\D", "", value)
    if international and digits.startswith("81"):
        digits = "0" + digits[2:]
    return digits


def email(text: str) -> str:
    return strip_spaces(nfkc(text)).lower()


def digits(text: str) -> str:
    """For numbers people type: full-width digits, spaces and hyphens are tolerated."""
    return re.sub(r"[\s\-‐‑–—−ー]", "", nfkc(text))


def _kanji_number(match: re.Match) -> str:
    text = match.group(1)
    if "十" not in text:
        return "".join(str(_KANJI_VALUES[ch]) for ch in text)
    tens, _, ones = text.partition("十")
    if len(tens) > 1 or len(ones) > 1:
        return text  # not a number people write in an address; leave it alone
    return str((_KANJI_VALUES[tens] if tens else 1) * 10 + (_KANJI_VALUES[ones] if ones else 0))


def address(text: str) -> str:
    """Address text for matching: NFKC, no spaces, unified hyphens, kanji numbers before 丁目/番/号
    as digits."""
    value = re.sub(r"[‐‑–—−ー－]", "-", strip_spaces(nfkc(text)))
    return _KANJI_NUMBER.sub(_kanji_number, value)
