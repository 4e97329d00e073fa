"""個人番号カード交付予約申込依頼書（ＦＡＸ用） — the FAX booking sheet (R5.1; 004 別紙③1(2)).

A4 portrait, one side, black only, one page per applicant, so a whole batch prints as one PDF. From
top to bottom: the title; the applicant's 予約管理番号 in large digits (with name and address for
them to check) and as a QR code carrying the number and what the grid means (see ``layout``); plain
instructions with the FAX number to send to and the call centre; the grid of check boxes (candidate
dates as rows × time bands as columns: "tick every time that suits you"); eleven boxes for the phone
number, one digit each; the signature line. Solid squares in the corners, the top-left one larger,
let the reader straighten the page and tell whether it arrived upside down.

Everything is drawn at the positions in ``layout``; nothing here decides where a box is.
The function never logs: the values it prints are personal data.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, time

import segno
from reportlab.lib import colors
from reportlab.lib.pagesizes import A4
from reportlab.lib.units import mm
from reportlab.pdfgen.canvas import Canvas

from .. import numbers
from ..printing import fonts
from . import layout

TITLE = "個人番号カード交付予約申込依頼書（ＦＡＸ用）"
WEEKDAYS = "月火水木金土日"

_INK = colors.black


@dataclass(frozen=True)
class TimeBand:
    label: str  # 午前, 午後, 夜間 …
    start: time
    end: time


@dataclass(frozen=True)
class FaxSheet:
    """One applicant's sheet. ``dates`` ascending and distinct (≤ 14), ``bands`` in order (≤ 6)."""

    number: str  # 12-digit 予約管理番号
    venue_name: str
    dates: Sequence[date]
    bands: Sequence[TimeBand]
    fax_number: str  # the city's FAX number residents send to
    call_center_phone: str
    city_name: str
    applicant_name: str = ""  # printed for the applicant to check, when given
    applicant_address: str = ""

    def layout(self) -> layout.SheetLayout:
        return layout.SheetLayout(
            number=self.number,
            dates=tuple(self.dates),
            bands=tuple(layout.Band(b.start, b.end) for b in self.bands),
        )


def fax_sheets(sheets: Sequence[FaxSheet]) -> bytes:
    """The PDF: one page per sheet, in the order given (R5.1)."""
    if not sheets:
        raise ValueError("no sheets to print")
    for sheet in sheets:
        numbers.parse(sheet.number)  # a wrong number would send every reply to the wrong person
        layout.encode_payload(sheet.layout())  # checks the counts and the order of the dates
    fonts.register()
    buffer = io.BytesIO()
    canvas = Canvas(buffer, pagesize=A4, pageCompression=1)
    canvas.setTitle(TITLE)
    canvas.setAuthor(sheets[0].city_name)
    canvas.setCreator("Madoguchi")
    for sheet in sheets:
        _draw_sheet(_Page(canvas), sheet)
        canvas.showPage()
    canvas.save()
    return buffer.getvalue()


class _Page:
    """The canvas in the layout's coordinates: millimetres from the top-left corner."""

    def __init__(self, canvas: Canvas):
        self.canvas = canvas

    @staticmethod
    def y(top_mm: float) -> float:
        return (layout.PAGE_HEIGHT - top_mm) * mm

    def text(self, x: float, baseline: float, text: str, font: str, size: float, *, align: str = "left"):
        self.canvas.setFont(font, size)
        draw = {
            "left": self.canvas.drawString,
            "centre": self.canvas.drawCentredString,
            "right": self.canvas.drawRightString,
        }[align]
        draw(x * mm, self.y(baseline), text)

    def fitted(self, x: float, baseline: float, text: str, font: str, size: float, width: float, **kw):
        self.text(x, baseline, text, font, fonts.fit_size(text, font, size, width * mm), **kw)

    def rect(self, box: layout.Box, *, line: float = 0.0, fill: bool = False) -> None:
        self.canvas.setLineWidth(line * mm)
        self.canvas.rect(
            box.left * mm,
            self.y(box.bottom),
            box.width * mm,
            box.height * mm,
            stroke=int(line > 0),
            fill=int(fill),
        )

    def line(self, x1: float, y1: float, x2: float, y2: float, width: float) -> None:
        self.canvas.setLineWidth(width * mm)
        self.canvas.line(x1 * mm, self.y(y1), x2 * mm, self.y(y2))


def _draw_sheet(page: _Page, sheet: FaxSheet) -> None:
    page.canvas.setFillColor(_INK)
    page.canvas.setStrokeColor(_INK)
    _draw_marks(page)
    _draw_header(page, sheet)
    _draw_qr(page, layout.encode_payload(sheet.layout()))
    _draw_instructions(page, sheet)
    _draw_grid(page, sheet)
    _draw_phone_boxes(page)
    _draw_signature(page, sheet)


def _draw_marks(page: _Page) -> None:
    for (cx, cy), size in zip(layout.MARK_CENTRES, layout.MARK_SIZES, strict=True):
        page.rect(layout.Box(cx - size / 2, cy - size / 2, size, size), fill=True)


def _draw_header(page: _Page, sheet: FaxSheet) -> None:
    left = layout.GRID_LEFT
    width = layout.QR_SEARCH[0] - left - 2  # the header stays clear of the code's search area
    page.fitted(left + 3, 24, TITLE, fonts.GOTHIC, 15, width - 3)
    page.fitted(
        left + 3, 30.5, f"{sheet.city_name}　個人番号カード交付予約（ＦＡＸ受付）", fonts.GOTHIC, 9, width - 3
    )

    box = layout.Box(left, 34, width, 27)
    page.rect(box, line=0.3)
    page.text(left + 3, 39, "予約管理番号", fonts.GOTHIC, 8)
    page.text(left + 3, 47.5, numbers.display(sheet.number), fonts.LATIN_BOLD, 20)
    if sheet.applicant_name:
        page.fitted(left + 3, 53.5, f"お名前　{sheet.applicant_name}　様", fonts.GOTHIC, 9.5, width - 6)
    if sheet.applicant_address:
        page.fitted(left + 3, 58.5, f"ご住所　{sheet.applicant_address}", fonts.GOTHIC, 8.5, width - 6)
    if not (sheet.applicant_name or sheet.applicant_address):
        page.text(
            left + 3, 55, "この番号の方ご本人の用紙です。ほかの方の用紙は使えません。", fonts.GOTHIC, 8.5
        )
    page.fitted(left, 67, f"交付会場　{sheet.venue_name}", fonts.GOTHIC, 10, layout.GRID_RIGHT - left)


def _draw_qr(page: _Page, payload: str) -> None:
    qr = segno.make_qr(payload, error=layout.QR_ERROR, boost_error=False)
    size = qr.symbol_size(border=0)[0]
    if size > layout.QR_MAX_MODULES:
        raise ValueError("the sheet's code would be larger than its place on the page")
    module = layout.QR_MODULE
    left = layout.QR_RIGHT - size * module
    for row_index, row in enumerate(qr.matrix):
        column = 0
        while column < size:  # one rectangle per run of dark modules: smaller PDF, no hairline gaps
            if not row[column]:
                column += 1
                continue
            run = column
            while run < size and row[run]:
                run += 1
            page.rect(
                layout.Box(
                    left + column * module,
                    layout.QR_TOP + row_index * module,
                    (run - column) * module,
                    module,
                ),
                fill=True,
            )
            column = run
    caption_y = layout.QR_TOP + size * module + layout.QR_QUIET_MODULES * module + 1.5
    page.text(
        left + size * module / 2,
        caption_y,
        "読み取り用コード（折らないでください）",
        fonts.GOTHIC,
        6.5,
        align="centre",
    )


def _draw_instructions(page: _Page, sheet: FaxSheet) -> None:
    left = layout.GRID_LEFT
    width = layout.GRID_RIGHT - left
    page.text(left, 74, "記入のしかた・送りかた", fonts.GOTHIC, 9.5)
    lines = (
        "１　ご都合のよい日と時間帯の □ に レ印 を書いてください（いくつでも）。黒のペンで、枠の中にはっきりと。",
        "２　日中に連絡のとれる電話番号を、下の枠に１マスに１つずつ、左から数字で書いてください。",
        "３　「氏名（自署）」の欄に、ご本人が署名してください。",
        f"４　この用紙を、縮小や裏返しをせずに、ＦＡＸ {sheet.fax_number} へ送ってください。",
        f"５　予約の結果は、ご記入の電話番号へお知らせします。お問い合わせ：コールセンター {sheet.call_center_phone}",
    )
    for index, line in enumerate(lines):
        page.fitted(left + 2, 79.5 + index * 4.6, line, fonts.GOTHIC, 8.5, width - 2)


def _draw_grid(page: _Page, sheet: FaxSheet) -> None:
    band_count = len(sheet.bands)
    left, top = layout.GRID_LEFT, layout.GRID_TOP
    width = layout.grid_width(band_count)
    height = layout.grid_height(len(sheet.dates))
    column_width = layout.band_column_width(band_count)

    page.rect(layout.Box(left, top, width, height), line=0.3)
    page.line(left, top + layout.HEADER_HEIGHT, left + width, top + layout.HEADER_HEIGHT, 0.3)
    for column in range(band_count + 1):
        x = left + layout.DATE_COLUMN_WIDTH + column * column_width
        page.line(x, top, x, top + height, 0.2)
    for row in range(1, len(sheet.dates)):
        y = top + layout.HEADER_HEIGHT + row * layout.ROW_HEIGHT
        page.line(left, y, left + width, y, 0.15)

    page.text(left + 2, top + 7.5, "希望日 ＼ 時間帯", fonts.GOTHIC, 8)
    for column, band in enumerate(sheet.bands):
        centre = left + layout.DATE_COLUMN_WIDTH + (column + 0.5) * column_width
        page.fitted(centre, top + 5, band.label, fonts.GOTHIC, 9, column_width - 2, align="centre")
        span = f"{_clock(band.start)}〜{_clock(band.end)}"
        page.fitted(centre, top + 9.8, span, fonts.GOTHIC, 7.5, column_width - 2, align="centre")

    for row, day in enumerate(sheet.dates):
        c = layout.cell(row, 0, band_count)
        page.text(left + 3, c.top + 6.2, _day_label(day), fonts.GOTHIC, 10.5)
        for column in range(band_count):
            page.rect(layout.check_box(row, column, band_count), line=layout.CHECK_BOX_LINE)


def _draw_phone_boxes(page: _Page) -> None:
    left = layout.GRID_LEFT
    page.text(
        left,
        layout.PHONE_TOP - 2.5,
        "電話番号（日中に連絡のとれる番号。左から１マスに１つずつ数字で）",
        fonts.GOTHIC,
        8.5,
    )
    page.text(left, layout.PHONE_TOP + 7.5, "電話番号", fonts.GOTHIC, 11)
    for position in range(layout.PHONE_DIGITS):
        page.rect(layout.phone_box(position), line=layout.PHONE_BOX_LINE)


def _draw_signature(page: _Page, sheet: FaxSheet) -> None:
    left = layout.GRID_LEFT
    baseline = layout.SIGNATURE_TOP + 6
    page.text(left, baseline, "氏名（自署）", fonts.GOTHIC, 11)
    page.line(layout.PHONE_LEFT, baseline + 1, layout.GRID_RIGHT, baseline + 1, 0.3)
    footer = f"{sheet.city_name}　{TITLE}　様式 MF{layout.LAYOUT_VERSION}"
    page.fitted(layout.PAGE_WIDTH / 2, 283, footer, fonts.GOTHIC, 7, 140, align="centre")


def _clock(value: time) -> str:
    return f"{value.hour}:{value.minute:02d}"


def _day_label(day: date) -> str:
    return f"{day.month}月{day.day}日（{WEEKDAYS[day.weekday()]}）"
