"""A4 landscape registers for the city (台帳・報告書): a title block, one table whose header row
repeats on every page, closing lines (totals, signatures) and "k / N ページ" footers.

Used by the deletion report (R8.1, R8.2) and the export ledger (R7.5). Pure: no database, no Flask.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass
from xml.sax.saxutils import escape

from reportlab.lib import colors
from reportlab.lib.enums import TA_CENTER
from reportlab.lib.pagesizes import A4, landscape
from reportlab.lib.styles import ParagraphStyle
from reportlab.lib.units import mm
from reportlab.pdfgen.canvas import Canvas
from reportlab.platypus import KeepTogether, Paragraph, SimpleDocTemplate, Spacer, Table, TableStyle

from . import fonts

PAGE = landscape(A4)
MARGIN = 12 * mm
CONTENT_WIDTH = PAGE[0] - 2 * MARGIN
_RULE = colors.Color(0.35, 0.35, 0.35)
_HEAD_FILL = colors.Color(0.86, 0.86, 0.86)


@dataclass(frozen=True)
class Column:
    title: str
    width_mm: float
    align: str = "left"  # left | center | right


def styles() -> dict[str, ParagraphStyle]:
    base = ParagraphStyle("register", fontName=fonts.GOTHIC, fontSize=8.5, leading=11, wordWrap="CJK")
    return {
        "cell": base,
        "center": ParagraphStyle("register-center", parent=base, alignment=TA_CENTER),
        "right": ParagraphStyle("register-right", parent=base, alignment=2),
        "head": ParagraphStyle("register-head", parent=base, alignment=TA_CENTER),
        "title": ParagraphStyle("register-title", parent=base, fontSize=16, leading=22, alignment=TA_CENTER),
        "meta": ParagraphStyle("register-meta", parent=base, fontSize=9.5, leading=13),
        "note": ParagraphStyle("register-note", parent=base, fontSize=8.5, leading=11),
    }


def paragraph(text: str, style: ParagraphStyle) -> Paragraph:
    """Text as a table cell: escaped (values are never markup) and with line breaks kept."""
    return Paragraph(escape(text).replace("\n", "<br/>"), style)


def build(
    *,
    title: str,
    meta_lines: Sequence[str],
    columns: Sequence[Column],
    rows: Sequence[Sequence[str]],
    closing: Sequence[str],
    signatures: Sequence[str],
    author: str,
) -> bytes:
    """The PDF: title, meta lines, the table (or "対象はありません"), closing notes, signature lines."""
    fonts.register()
    st = styles()
    buffer = io.BytesIO()
    doc = SimpleDocTemplate(
        buffer,
        pagesize=PAGE,
        leftMargin=MARGIN,
        rightMargin=MARGIN,
        topMargin=MARGIN,
        bottomMargin=MARGIN + 6 * mm,
        title=title,
        author=author,
        subject=title,
        creator="Madoguchi",
    )
    align = {"left": "cell", "center": "center", "right": "right"}
    head = [paragraph(c.title, st["head"]) for c in columns]
    body = [
        [paragraph(value, st[align[c.align]]) for c, value in zip(columns, row, strict=True)] for row in rows
    ]
    commands = [
        ("VALIGN", (0, 0), (-1, -1), "MIDDLE"),
        ("GRID", (0, 0), (-1, -1), 0.5, _RULE),
        ("BOX", (0, 0), (-1, -1), 1.0, colors.black),
        ("BACKGROUND", (0, 0), (-1, 0), _HEAD_FILL),
        ("TOPPADDING", (0, 0), (-1, -1), 3),
        ("BOTTOMPADDING", (0, 0), (-1, -1), 3),
        ("LEFTPADDING", (0, 0), (-1, -1), 3),
        ("RIGHTPADDING", (0, 0), (-1, -1), 3),
    ]
    if not body:
        body = [[paragraph("対象はありません", st["center"])] + [""] * (len(columns) - 1)]
        commands.append(("SPAN", (0, 1), (-1, 1)))
    table = Table(
        [head, *body],
        colWidths=[c.width_mm * mm for c in columns],
        repeatRows=1,
        style=TableStyle(commands),
        hAlign="LEFT",
    )
    story = [paragraph(title, st["title"]), Spacer(1, 3 * mm)]
    story += [paragraph(line, st["meta"]) for line in meta_lines]
    story += [Spacer(1, 3 * mm), table, Spacer(1, 4 * mm)]
    tail = [paragraph(line, st["note"]) for line in closing]
    if signatures:
        tail += [Spacer(1, 4 * mm), _signatures(signatures)]
    story.append(KeepTogether(tail))
    doc.build(story, canvasmaker=_NumberedCanvas)
    return buffer.getvalue()


def _signatures(labels: Sequence[str]) -> Table:
    data = [[label, "", "日付", "令和　　　年　　　月　　　日"] for label in labels]
    return Table(
        data,
        colWidths=(28 * mm, 80 * mm, 14 * mm, 70 * mm),
        rowHeights=[10 * mm] * len(labels),
        hAlign="LEFT",
        style=TableStyle(
            [
                ("FONT", (0, 0), (-1, -1), fonts.GOTHIC, 9.5),
                ("VALIGN", (0, 0), (-1, -1), "BOTTOM"),
                ("LINEBELOW", (1, 0), (1, -1), 0.75, colors.black),
                ("LINEBELOW", (3, 0), (3, -1), 0.75, colors.black),
            ]
        ),
    )


class _NumberedCanvas(Canvas):
    """Keeps every page until save so the footer can say "k / N ページ"."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._pages: list[dict] = []

    def showPage(self):  # noqa: N802 - reportlab's name
        self._pages.append(dict(self.__dict__))
        self._startPage()

    def save(self):
        total = len(self._pages)
        for number, state in enumerate(self._pages, start=1):
            self.__dict__.update(state)
            self.setFont(fonts.GOTHIC, 8)
            self.drawCentredString(PAGE[0] / 2, MARGIN / 2 + 2 * mm, f"{number} / {total} ページ")
            super().showPage()
        super().save()
