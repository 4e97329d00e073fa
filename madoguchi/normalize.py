"""Normalisation before blind indexing and comparison (R2.3).

Two spellings a person would call the same must give the same index: full/half width (NFKC),
spaces including U+3000, hiragana vs katakana, and the ways a phone number is written.
"""

from __future__ import annotations

import re
import unicodedata

import jaconv

_SPACES = re.compile(r"[\s\u3000]+")
_KANJI_DIGITS = str.maketrans("〇一二三四五六七八九", "0123456789")


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


def address(text: str) -> str:
    """Address text for matching: NFKC, no spaces, kanji numerals as digits, unified hyphens."""
    value = strip_spaces(nfkc(text)).translate(_KANJI_DIGITS)
    return re.sub(r"[‐‑–—−ー－]", "-", value)
