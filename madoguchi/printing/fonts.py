"""Japanese fonts for printed forms: reportlab's built-in CID fonts, so no font file lives in the repo.

The PDF names the font (Adobe-Japan1 collection) and the reader supplies the glyphs; on Debian,
poppler-data and fonts-noto-cjk make pdftoppm/pdftotext handle them (see PITFALLS.md).
"""

from __future__ import annotations

import threading

from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.cidfonts import UnicodeCIDFont

GOTHIC = "HeiseiKakuGo-W5"  # main face: tables, headings, notices
MINCHO = "HeiseiMin-W3"  # addressee names (the usual face for a name on mail)
LATIN = "Helvetica"  # reservation digits: standard PDF fonts, exact widths in any reader
LATIN_BOLD = "Helvetica-Bold"

_lock = threading.Lock()
_registered = False


def register() -> None:
    """Register both CID fonts once; safe to call from every render and from several threads."""
    global _registered
    if _registered:
        return
    with _lock:
        if _registered:
            return
        for name in (GOTHIC, MINCHO):
            try:
                pdfmetrics.getFont(name)
            except KeyError:
                pdfmetrics.registerFont(UnicodeCIDFont(name))
        _registered = True


def fit_size(text: str, font: str, size: float, width: float, *, minimum: float = 6.0) -> float:
    """The largest size ≤ ``size`` (in 0.5 pt steps, not below ``minimum``) at which ``text`` fits ``width``."""
    while size > minimum and pdfmetrics.stringWidth(text, font, size) > width:
        size -= 0.5
    return max(size, minimum)
