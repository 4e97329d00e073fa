"""各会場送付台帳 (R6.2): the list that travels with the cards to an issuing venue.

A4 portrait. The receiving venue checks each card against a row (住所, 氏名, 予約管理番号) and ticks
the 確認 column. The PDF holds two complete sets: the 原本 that is sent (送付用) and an identical
控え kept by the venue (控え（会場保管用）), each with its own page numbering, per-page row counts,
total and signature lines.

Layout is platypus: one Table per set with the column header repeated on every page, so any number
of rows paginates; long names and addresses wrap inside their cells. The page header, the set mark
and the footer are drawn per page; "k / N ページ" and the per-page counts are filled in when the
document is saved (the canvas keeps every page until then, so N is known).
"""

from __future__ import annotations

import functools
import io
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from xml.sax.saxutils import escape

from reportlab.lib import colors
from reportlab.lib.enums import TA_CENTER, TA_RIGHT
from reportlab.lib.pagesizes import A4
from reportlab.lib.styles import ParagraphStyle
from reportlab.lib.units import mm
from reportlab.pdfgen.canvas import Canvas
from reportlab.platypus import (
    BaseDocTemplate,
    Frame,
    KeepTogether,
    NextPageTemplate,
    PageBreak,
    PageTemplate,
    Paragraph,
    Spacer,
    Table,
    TableStyle,
)

from .. import dates, numbers
from . import fonts

TITLE = "各会場送付台帳"
ORIGINAL = "original"
COPY = "copy"
SET_MARKS = {ORIGINAL: "原本（送付用）", COPY: "控え（会場保管用）"}
TAIL_ROWS = 3  # rows carried to the closing page when the total would otherwise stand alone

PAGE_WIDTH, PAGE_HEIGHT = A4
MARGIN_X = 12 * mm
MARGIN_TOP = 10 * mm
HEADER_HEIGHT = 27 * mm  # title, venue, period and printed time, above the table frame
MARGIN_BOTTOM = 10 * mm
FOOTER_HEIGHT = 8 * mm
CONTENT_WIDTH = PAGE_WIDTH - 2 * MARGIN_X

COLUMNS = ("No.", "予約日時", "予約管理番号", "氏名", "住所", "確認")
COLUMN_WIDTHS = (11 * mm, 31 * mm, 32 * mm, 36 * mm, 62 * mm, 14 * mm)  # sums to CONTENT_WIDTH
WEEKDAYS = "月火水木金土日"

_INK = colors.black
_RULE = colors.Color(0.35, 0.35, 0.35)
_HEAD_FILL = colors.Color(0.86, 0.86, 0.86)
_ZEBRA = colors.Color(0.955, 0.955, 0.955)


@dataclass(frozen=True)
class LedgerRow:
    slot_start: datetime  # timezone-aware
    number: str  # 12 digits, no separators
    name: str
    address: str


def shipping_ledger(
    *,
    venue_name: str,
    first_day: date,
    last_day: date,
    rows: Sequence[LedgerRow],
    printed_at: datetime,
    city_name: str,
) -> bytes:
    """The 送付台帳 PDF for one venue: 原本 set, then the identical 控え set."""
    fonts.register()
    for row in rows:
        _check_number(row.number)
    ordered = sorted(rows, key=lambda r: (dates.utc(r.slot_start), r.number))
    header = _Header(
        city_name=city_name,
        venue_name=venue_name,
        period=_period(first_day, last_day),
        printed=f"{dates.wareki(dates.tokyo(printed_at).date())} {dates.tokyo(printed_at):%H:%M}",
    )
    pdf, state = _build(ordered, header=header, venue_name=venue_name, city_name=city_name, tail=0)
    if ordered and state.closing_alone():
        # The total and signatures did not fit under the last row and went to a page of their own;
        # carry the last rows over with them, so the closing page still shows rows to sign for.
        pdf, state = _build(
            ordered, header=header, venue_name=venue_name, city_name=city_name, tail=TAIL_ROWS
        )
    return pdf


def _build(
    rows: Sequence[LedgerRow], *, header: _Header, venue_name: str, city_name: str, tail: int
) -> tuple[bytes, _State]:
    state = _State()
    buffer = io.BytesIO()
    doc = BaseDocTemplate(
        buffer,
        pagesize=A4,
        leftMargin=MARGIN_X,
        rightMargin=MARGIN_X,
        topMargin=MARGIN_TOP + HEADER_HEIGHT,
        bottomMargin=MARGIN_BOTTOM + FOOTER_HEIGHT,
        title=f"{TITLE}（{venue_name}）",
        author=city_name,
        subject=TITLE,
        creator="Madoguchi",
    )
    frame_args = (doc.leftMargin, doc.bottomMargin, doc.width, doc.height)
    doc.addPageTemplates(
        [
            PageTemplate(
                id=kind,
                frames=[Frame(*frame_args, id=f"{kind}-body", leftPadding=0, rightPadding=0)],
                onPage=functools.partial(_draw_header, header=header, kind=kind, state=state),
            )
            for kind in (ORIGINAL, COPY)
        ]
    )
    story = [
        *_set_story(rows, state, tail=tail),
        NextPageTemplate(COPY),
        PageBreak(),
        *_set_story(rows, state, tail=tail),
    ]
    doc.build(story, canvasmaker=functools.partial(_LedgerCanvas, state=state))
    return buffer.getvalue(), state


# --- formatting -----------------------------------------------------------------------------------


def _check_number(number: str) -> None:
    if len(number) != numbers.LENGTH or not (number.isascii() and number.isdigit()):
        raise ValueError("a reservation number must be 12 ASCII digits")


def _day(value: date) -> str:
    return f"{dates.wareki(value)}（{WEEKDAYS[value.weekday()]}）"


def _period(first_day: date, last_day: date) -> str:
    if first_day == last_day:
        return _day(first_day)
    return f"{_day(first_day)} 〜 {_day(last_day)}"


def _slot(value: datetime) -> str:
    local = dates.tokyo(value)
    return f"{local.month}月{local.day}日（{WEEKDAYS[local.weekday()]}）<br/>{local:%H:%M}"


def _styles() -> dict[str, ParagraphStyle]:
    base = ParagraphStyle("ledger", fontName=fonts.GOTHIC, fontSize=9, leading=11.5, wordWrap="CJK")
    return {
        "cell": base,
        "center": ParagraphStyle("ledger-center", parent=base, alignment=TA_CENTER),
        "right": ParagraphStyle("ledger-right", parent=base, alignment=TA_RIGHT),
        "number": ParagraphStyle(
            "ledger-number", parent=base, fontName=fonts.LATIN, fontSize=9.5, alignment=TA_CENTER
        ),
        "head": ParagraphStyle("ledger-head", parent=base, alignment=TA_CENTER, leading=11),
        "total": ParagraphStyle("ledger-total", parent=base, fontSize=11, leading=14, alignment=TA_RIGHT),
        "note": ParagraphStyle("ledger-note", parent=base, fontSize=8, leading=10),
    }


# --- the story of one set -------------------------------------------------------------------------


@dataclass
class _State:
    """What the canvas needs at save time: which set each page belongs to and which rows it shows."""

    page_kind: dict[int, str] = field(default_factory=dict)
    rows_on_page: dict[int, list[int]] = field(default_factory=lambda: defaultdict(list))

    def closing_alone(self) -> bool:
        """True if a set's last page shows no row (only the total and the signature lines)."""
        last_pages: dict[str, int] = {}
        for page, kind in self.page_kind.items():
            last_pages[kind] = max(page, last_pages.get(kind, 0))
        return any(not self.rows_on_page.get(page) for page in last_pages.values())


class _RowNo(Paragraph):
    """The No. cell; drawing it records the row on the current page (for the per-page count)."""

    def __init__(self, row_no: int, style: ParagraphStyle, state: _State):
        super().__init__(str(row_no), style)
        self._row_no = row_no
        self._state = state

    def draw(self):
        self._state.rows_on_page[self.canv.getPageNumber()].append(self._row_no)
        super().draw()


def _set_story(rows: Sequence[LedgerRow], state: _State, *, tail: int) -> list:
    """One set: the table, then the total and signatures kept together.

    ``tail`` > 0 puts the last ``tail`` rows in a second table that starts a new page together with
    the closing block (used when the closing block would otherwise stand alone on a page).
    """
    st = _styles()
    body = [_row_cells(index, row, st, state) for index, row in enumerate(rows, start=1)]
    closing = [
        Spacer(1, 3 * mm),
        Paragraph(f"合計 {len(rows)} 件", st["total"]),
        Spacer(1, 2 * mm),
        Paragraph(
            "受領時に各行の現物を照合し、確認欄にチェックしてください。"
            "相違があった場合は直ちに送付元へ連絡してください。",
            st["note"],
        ),
        Spacer(1, 2 * mm),
        _signatures(),
    ]
    if tail and len(body) > tail:
        return [_table(body[:-tail], st), PageBreak(), KeepTogether([_table(body[-tail:], st), *closing])]
    return [_table(body, st), KeepTogether(closing)]


def _row_cells(index: int, row: LedgerRow, st: dict[str, ParagraphStyle], state: _State) -> list:
    return [
        _RowNo(index, st["right"], state),
        Paragraph(_slot(row.slot_start), st["center"]),
        Paragraph(numbers.display(row.number), st["number"]),
        Paragraph(escape(row.name), st["cell"]),
        Paragraph(escape(row.address), st["cell"]),
        "",
    ]


def _table(body: list[list], st: dict[str, ParagraphStyle]) -> Table:
    data: list[list] = [[Paragraph(text, st["head"]) for text in COLUMNS], *body]
    commands = [
        ("FONTNAME", (0, 0), (-1, -1), fonts.GOTHIC),
        ("VALIGN", (0, 0), (-1, -1), "MIDDLE"),
        ("GRID", (0, 0), (-1, -1), 0.5, _RULE),
        ("BOX", (0, 0), (-1, -1), 1.0, _INK),
        ("LINEBELOW", (0, 0), (-1, 0), 1.0, _INK),
        ("BACKGROUND", (0, 0), (-1, 0), _HEAD_FILL),
        ("TOPPADDING", (0, 0), (-1, -1), 3),
        ("BOTTOMPADDING", (0, 0), (-1, -1), 3),
        ("LEFTPADDING", (0, 0), (-1, -1), 3),
        ("RIGHTPADDING", (0, 0), (-1, -1), 3),
    ]
    if body:
        commands.append(("ROWBACKGROUNDS", (0, 1), (-1, -1), [colors.white, _ZEBRA]))
    else:
        data.append([Paragraph("対象はありません", st["center"]), "", "", "", "", ""])
        commands += [
            ("SPAN", (0, 1), (-1, 1)),
            ("TOPPADDING", (0, 1), (-1, 1), 8),
            ("BOTTOMPADDING", (0, 1), (-1, 1), 8),
        ]
    return Table(data, colWidths=COLUMN_WIDTHS, repeatRows=1, style=TableStyle(commands), hAlign="LEFT")


def _signatures() -> Table:
    date_blank = "令和　　　年　　　月　　　日"
    data = [
        ["送付者", "", "送付日", date_blank],
        ["受領者", "", "受領日", date_blank],
    ]
    widths = (18 * mm, 66 * mm, 18 * mm, CONTENT_WIDTH - 102 * mm)
    return Table(
        data,
        colWidths=widths,
        rowHeights=(10 * mm, 10 * mm),
        hAlign="LEFT",
        style=TableStyle(
            [
                ("FONT", (0, 0), (-1, -1), fonts.GOTHIC, 9.5),
                ("VALIGN", (0, 0), (-1, -1), "BOTTOM"),
                ("LINEBELOW", (1, 0), (1, -1), 0.75, _INK),
                ("LINEBELOW", (3, 0), (3, -1), 0.75, _INK),
                ("BOTTOMPADDING", (0, 0), (-1, -1), 2),
            ]
        ),
    )


# --- page furniture -------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Header:
    city_name: str
    venue_name: str
    period: str
    printed: str


def _draw_header(canvas: Canvas, doc: BaseDocTemplate, *, header: _Header, kind: str, state: _State) -> None:
    state.page_kind[canvas.getPageNumber()] = kind
    canvas.saveState()
    left, right = MARGIN_X, PAGE_WIDTH - MARGIN_X
    top = PAGE_HEIGHT - MARGIN_TOP

    # Set mark, top right: outlined for the 原本, solid black for the 控え so the two never mix.
    mark = SET_MARKS[kind]
    mark_w, mark_h = 50 * mm, 9 * mm
    mark_x, mark_y = right - mark_w, top - mark_h
    if kind == COPY:
        canvas.setFillColor(_INK)
        canvas.rect(mark_x, mark_y, mark_w, mark_h, stroke=0, fill=1)
        canvas.setFillColor(colors.white)
    else:
        canvas.setLineWidth(1.5)
        canvas.rect(mark_x, mark_y, mark_w, mark_h, stroke=1, fill=0)
        canvas.setFillColor(_INK)
    size = fonts.fit_size(mark, fonts.GOTHIC, 14, mark_w - 4 * mm)
    canvas.setFont(fonts.GOTHIC, size)
    canvas.drawCentredString(mark_x + mark_w / 2, mark_y + (mark_h - size) / 2 + 1.2, mark)
    canvas.setFillColor(_INK)

    # Title and city.
    canvas.setFont(fonts.GOTHIC, 18)
    canvas.drawString(left, top - 7 * mm, TITLE)
    title_w = canvas.stringWidth(TITLE, fonts.GOTHIC, 18)
    city_w = mark_x - 6 * mm - (left + title_w + 6 * mm)
    canvas.setFont(fonts.GOTHIC, fonts.fit_size(header.city_name, fonts.GOTHIC, 11, city_w))
    canvas.drawString(left + title_w + 6 * mm, top - 7 * mm, header.city_name)

    # Venue, period, printed time.
    label_w = 22 * mm
    lines = (
        ("送付先会場", header.venue_name, 12),
        ("対象期間", header.period, 10),
    )
    y = top - 15 * mm
    for label, value, value_size in lines:
        canvas.setFont(fonts.GOTHIC, 9)
        canvas.drawString(left, y, label)
        width = right - (left + label_w) - (60 * mm if label == "対象期間" else 0)
        canvas.setFont(fonts.GOTHIC, fonts.fit_size(value, fonts.GOTHIC, value_size, width))
        canvas.drawString(left + label_w, y, value)
        y -= 6.5 * mm
    canvas.setFont(fonts.GOTHIC, 9)
    canvas.drawRightString(right, y + 6.5 * mm, f"印刷日時 {header.printed}")
    canvas.setLineWidth(0.8)
    canvas.line(
        left,
        PAGE_HEIGHT - MARGIN_TOP - HEADER_HEIGHT + 2 * mm,
        right,
        PAGE_HEIGHT - MARGIN_TOP - HEADER_HEIGHT + 2 * mm,
    )
    canvas.restoreState()


class _LedgerCanvas(Canvas):
    """Keeps every page until save, then writes each page's footer once the set's page count is known."""

    def __init__(self, *args, state: _State, **kwargs):
        super().__init__(*args, **kwargs)
        self._ledger_state = state
        self._pending: list[dict] = []

    def showPage(self):
        self._pending.append(dict(self.__dict__))
        self._startPage()

    def save(self):
        state = self._ledger_state
        by_kind: dict[str, list[int]] = defaultdict(list)
        for page in self._pending:
            by_kind[state.page_kind.get(page["_pageNumber"], ORIGINAL)].append(page["_pageNumber"])
        for page in self._pending:
            self.__dict__.update(page)
            number = self.getPageNumber()
            kind = state.page_kind.get(number, ORIGINAL)
            pages = by_kind[kind]
            self._draw_footer(kind, pages.index(number) + 1, len(pages), state.rows_on_page.get(number, []))
            super().showPage()
        super().save()

    def _draw_footer(self, kind: str, page: int, pages: int, rows: list[int]) -> None:
        self.saveState()
        left, right = MARGIN_X, PAGE_WIDTH - MARGIN_X
        y = MARGIN_BOTTOM
        self.setLineWidth(0.5)
        self.line(left, y + 5 * mm, right, y + 5 * mm)
        self.setFont(fonts.GOTHIC, 9)
        self.drawString(left, y, f"{TITLE}　{SET_MARKS[kind]}")
        self.drawCentredString(PAGE_WIDTH / 2, y, f"{page} / {pages} ページ")
        count = f"このページ {len(rows)} 件"
        if len(rows) == 1:
            count += f"（No. {rows[0]}）"
        elif rows:
            count += f"（No. {min(rows)} 〜 {max(rows)}）"
        self.drawRightString(right, y, count)
        self.restoreState()
