"""再発行用交付通知書 (R6.4) on postcards, and address labels for envelopes.

The notice is postcard size (100 mm × 148 mm, portrait), one page per resident, front side only:
addressee, a 再発行 band, the title, the 予約管理番号 in large digits and as a Code 128 barcode that
the venue's scanners read, the assigned venue, short 注意事項, the call centre and the booking site.

The page is cut into zones of fixed height from the top. Text zones shrink their text if a long
address or venue would not fit (never spilling onto a second page); the barcode zone never scales,
so its modules stay at ``BAR_MODULE`` wide.
"""

from __future__ import annotations

import io
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from xml.sax.saxutils import escape

from reportlab.graphics.barcode.code128 import Code128
from reportlab.lib import colors
from reportlab.lib.enums import TA_CENTER, TA_RIGHT
from reportlab.lib.pagesizes import A4
from reportlab.lib.styles import ParagraphStyle
from reportlab.lib.units import mm
from reportlab.pdfgen.canvas import Canvas
from reportlab.platypus import Flowable, KeepInFrame, Paragraph, Spacer

from .. import dates, numbers
from . import fonts

# --- postcard geometry ----------------------------------------------------------------------------

POSTCARD = (100 * mm, 148 * mm)
CARD_MARGIN_X = 7 * mm
CARD_MARGIN_Y = 5.5 * mm
BAR_MODULE = 0.4 * mm  # narrowest bar; ≥ 0.33 mm so office printers and 200 dpi scanners resolve it
BAR_HEIGHT = 11 * mm
BAR_QUIET = 10 * BAR_MODULE  # Code 128 needs at least 10 modules of white on each side

# Zone heights, top to bottom (sum + gaps ≤ the printable height; asserted at import below).
ZONE_ADDRESS = 31 * mm
ZONE_BAND = 8 * mm
ZONE_TITLE = 8 * mm
ZONE_NUMBER = 29 * mm
ZONE_VENUE = 14 * mm
ZONE_NOTES = 22 * mm
ZONE_CONTACT = 13 * mm
ZONE_ISSUED = 4 * mm
ZONE_GAP = 1 * mm
_ZONES = (ZONE_ADDRESS, ZONE_BAND, ZONE_TITLE, ZONE_NUMBER, ZONE_VENUE, ZONE_NOTES, ZONE_CONTACT, ZONE_ISSUED)
assert sum(_ZONES) + ZONE_GAP * (len(_ZONES) - 1) <= POSTCARD[1] - 2 * CARD_MARGIN_Y

TITLE = "個人番号カード交付通知書（再発行）"
REISSUE_MARK = "再発行"
NOTES = (
    "受け取りには予約が必要です。下記の予約サイトまたはコールセンターで予約してください。",
    "来場の際は、この通知書と本人確認書類（運転免許証、パスポート等）を必ずお持ちください。",
    "以前にお送りした交付通知書は使用できません。この再発行通知書をお持ちください。",
    "原則としてご本人が来場してください。",
)

# --- label geometry (A4, 12 labels: 2 columns × 6 rows, common Japanese 12面 stock) ------------------

LABEL_PAGE = A4
LABEL_WIDTH = 86.4 * mm
LABEL_HEIGHT = 42.3 * mm
LABEL_COLUMNS = 2
LABEL_ROWS = 6
LABEL_LEFT = 18.6 * mm  # sheet edge to the first column
LABEL_TOP = 21.5 * mm  # sheet edge to the first row
LABEL_COLUMN_GAP = 0 * mm
LABEL_ROW_GAP = 0 * mm
LABEL_PADDING_X = 6 * mm  # printing stays this far inside each label (feed tolerance)
LABEL_PADDING_Y = 4 * mm
LABELS_PER_PAGE = LABEL_COLUMNS * LABEL_ROWS

_INK = colors.black
_SOFT = colors.Color(0.4, 0.4, 0.4)


@dataclass(frozen=True)
class Notice:
    number: str  # 12 digits
    name: str
    address: str
    postal_code: str  # may be "" (then no 〒 line)
    venue_name: str
    venue_address: str


@dataclass(frozen=True)
class Contact:
    city_name: str  # 江東区
    call_center_phone: str
    call_center_hours: str
    web_url: str  # residents' booking site


def reissue_notices(notices: Sequence[Notice], contact: Contact, *, issued_on: date) -> bytes:
    """One postcard page per notice (再発行用交付通知書, R6.4)."""
    if not notices:
        raise ValueError("no notices to print")
    for notice in notices:
        _check_number(notice.number)
    fonts.register()
    buffer = io.BytesIO()
    canvas = Canvas(buffer, pagesize=POSTCARD, pageCompression=1)
    canvas.setTitle(TITLE)
    canvas.setAuthor(contact.city_name)
    canvas.setCreator("Madoguchi")
    st = _styles()
    for notice in notices:
        _draw_notice(canvas, notice, contact, issued_on, st)
        canvas.showPage()
    canvas.save()
    return buffer.getvalue()


def address_labels(notices: Sequence[Notice]) -> bytes:
    """A4 sheets of 12 address labels (2 × 6), in the order given; as many sheets as needed."""
    if not notices:
        raise ValueError("no labels to print")
    for notice in notices:
        _check_number(notice.number)
    fonts.register()
    buffer = io.BytesIO()
    canvas = Canvas(buffer, pagesize=LABEL_PAGE, pageCompression=1)
    canvas.setTitle("宛名ラベル")
    canvas.setCreator("Madoguchi")
    st = _styles()
    for start in range(0, len(notices), LABELS_PER_PAGE):
        for slot, notice in enumerate(notices[start : start + LABELS_PER_PAGE]):
            _draw_label(canvas, notice, slot, st)
        canvas.showPage()
    canvas.save()
    return buffer.getvalue()


# --- helpers ---------------------------------------------------------------------------------------


def _check_number(number: str) -> None:
    if len(number) != numbers.LENGTH or not (number.isascii() and number.isdigit()):
        raise ValueError("a reservation number must be 12 ASCII digits")


def postal(code: str) -> str:
    """〒135-0016 from '1350016', '135-0016' or full-width digits; '' when there is no code."""
    value = unicodedata.normalize("NFKC", code).strip().lstrip("〒").strip()
    if not value:
        return ""
    digits = "".join(ch for ch in value if ch.isdigit())
    if len(digits) == 7 and digits.isascii():
        value = f"{digits[:3]}-{digits[3:]}"
    return f"〒{value}"


def _styles() -> dict[str, ParagraphStyle]:
    base = ParagraphStyle("notice", fontName=fonts.GOTHIC, fontSize=9, leading=11.5, wordWrap="CJK")

    def style(name: str, **kw) -> ParagraphStyle:
        return ParagraphStyle(f"notice-{name}", parent=base, **kw)

    return {
        "postal": style("postal", fontSize=11, leading=14),
        "address": style("address", fontSize=10.5, leading=13.5),
        "name": style("name", fontName=fonts.MINCHO, fontSize=16, leading=20),
        "label": style("label", fontSize=7.5, leading=9.5, textColor=_SOFT),
        "venue": style("venue", fontSize=10.5, leading=13),
        "venue_address": style("venue-address", fontSize=8.5, leading=10.5),
        "note": style("note", fontSize=7.3, leading=9.2, leftIndent=7.3, firstLineIndent=-7.3),
        "contact": style("contact", fontSize=8, leading=10),
        "issued": style("issued", fontSize=7.5, leading=9, alignment=TA_RIGHT),
        "center": style("center", alignment=TA_CENTER),
        "label_postal": style("label-postal", fontSize=9, leading=11),
        "label_address": style("label-address", fontSize=9.5, leading=12),
        "label_name": style("label-name", fontName=fonts.MINCHO, fontSize=13, leading=16, leftIndent=10 * mm),
    }


def _fit(flowables: list[Flowable], width: float, height: float) -> KeepInFrame:
    return KeepInFrame(width, height, flowables, mode="shrink", hAlign="LEFT", vAlign="TOP")


def _place(canvas: Canvas, flowable: Flowable, x: float, top: float, width: float, height: float) -> None:
    """Draw ``flowable`` with its top edge at ``top``."""
    _, used = flowable.wrapOn(canvas, width, height)
    flowable.drawOn(canvas, x, top - used)


def _addressee(
    notice: Notice, st: dict[str, ParagraphStyle], *, postal_style: str, address_style: str, name_style: str
) -> list[Flowable]:
    parts: list[Flowable] = []
    code = postal(notice.postal_code)
    if code:
        parts.append(Paragraph(escape(code), st[postal_style]))
    parts += [
        Paragraph(escape(notice.address), st[address_style]),
        Spacer(1, 1.5 * mm),
        Paragraph(f"{escape(notice.name)}　様", st[name_style]),
    ]
    return parts


# --- the notice ------------------------------------------------------------------------------------


def _draw_notice(canvas: Canvas, notice: Notice, contact: Contact, issued_on: date, st: dict) -> None:
    page_w, page_h = POSTCARD
    x = CARD_MARGIN_X
    width = page_w - 2 * CARD_MARGIN_X
    top = page_h - CARD_MARGIN_Y

    # Addressee.
    block = _addressee(notice, st, postal_style="postal", address_style="address", name_style="name")
    _place(canvas, _fit(block, width, ZONE_ADDRESS), x, top, width, ZONE_ADDRESS)
    top -= ZONE_ADDRESS + ZONE_GAP

    # 再発行 band: solid black so it shows at a glance and survives photocopying.
    canvas.setFillColor(_INK)
    canvas.rect(x, top - ZONE_BAND, width, ZONE_BAND, stroke=0, fill=1)
    canvas.setFillColor(colors.white)
    canvas.setFont(fonts.GOTHIC, 15)
    canvas.drawString(x + 3 * mm, top - ZONE_BAND + 2.3 * mm, REISSUE_MARK)
    band_note = "以前の交付通知書に代わる通知書です"
    mark_w = canvas.stringWidth(REISSUE_MARK, fonts.GOTHIC, 15)
    note_size = fonts.fit_size(band_note, fonts.GOTHIC, 8, width - mark_w - 10 * mm)
    canvas.setFont(fonts.GOTHIC, note_size)
    canvas.drawRightString(x + width - 3 * mm, top - ZONE_BAND + 2.8 * mm, band_note)
    canvas.setFillColor(_INK)
    top -= ZONE_BAND + ZONE_GAP

    # Title.
    size = fonts.fit_size(TITLE, fonts.GOTHIC, 13, width)
    canvas.setFont(fonts.GOTHIC, size)
    canvas.drawCentredString(x + width / 2, top - ZONE_TITLE + 2.2 * mm, TITLE)
    top -= ZONE_TITLE + ZONE_GAP

    _draw_number_zone(canvas, notice.number, x, top, width)
    top -= ZONE_NUMBER + ZONE_GAP

    # Venue.
    venue = [
        Paragraph("交付会場", st["label"]),
        Paragraph(escape(notice.venue_name), st["venue"]),
        Paragraph(escape(notice.venue_address), st["venue_address"]),
    ]
    _place(canvas, _fit(venue, width, ZONE_VENUE), x, top, width, ZONE_VENUE)
    top -= ZONE_VENUE + ZONE_GAP

    # 注意事項.
    notes = [Paragraph("注意事項", st["label"])] + [
        Paragraph(f"・{escape(text)}", st["note"]) for text in NOTES
    ]
    _place(canvas, _fit(notes, width, ZONE_NOTES), x, top, width, ZONE_NOTES)
    top -= ZONE_NOTES + ZONE_GAP

    # 問合せ先, in a thin box.
    canvas.setStrokeColor(_SOFT)
    canvas.setLineWidth(0.5)
    canvas.rect(x, top - ZONE_CONTACT, width, ZONE_CONTACT, stroke=1, fill=0)
    canvas.setStrokeColor(_INK)
    pad = 2 * mm
    contact_lines = [
        Paragraph(f"問合せ先　{escape(contact.city_name)} 個人番号カード コールセンター", st["contact"]),
        Paragraph(
            f"電話 {escape(contact.call_center_phone)}　受付時間 {escape(contact.call_center_hours)}",
            st["contact"],
        ),
        Paragraph(f"予約サイト {escape(contact.web_url)}", st["contact"]),
    ]
    inner_w, inner_h = width - 2 * pad, ZONE_CONTACT - 2 * 1.2 * mm
    _place(canvas, _fit(contact_lines, inner_w, inner_h), x + pad, top - 1.2 * mm, inner_w, inner_h)
    top -= ZONE_CONTACT + ZONE_GAP

    issued = Paragraph(f"{dates.wareki(issued_on)} 発行　{escape(contact.city_name)}", st["issued"])
    _place(canvas, _fit([issued], width, ZONE_ISSUED), x, top, width, ZONE_ISSUED)


def _draw_number_zone(canvas: Canvas, number: str, x: float, top: float, width: float) -> None:
    """予約管理番号: large grouped digits, then the Code 128 barcode and its digits, in a box."""
    canvas.setLineWidth(0.8)
    canvas.roundRect(x, top - ZONE_NUMBER, width, ZONE_NUMBER, 2 * mm, stroke=1, fill=0)
    canvas.setFont(fonts.GOTHIC, 8)
    canvas.drawString(x + 2.5 * mm, top - 4.5 * mm, "予約管理番号")
    canvas.setFont(fonts.LATIN_BOLD, 20)
    canvas.drawCentredString(x + width / 2, top - 11.5 * mm, numbers.display(number))

    barcode = Code128(
        number,
        barWidth=BAR_MODULE,
        barHeight=BAR_HEIGHT,
        quiet=1,
        lquiet=BAR_QUIET,
        rquiet=BAR_QUIET,
        humanReadable=False,
    )
    bar_y = top - ZONE_NUMBER + 5 * mm
    barcode.drawOn(canvas, x + (width - barcode.width) / 2, bar_y)
    canvas.setFont(fonts.LATIN, 8)
    canvas.drawCentredString(x + width / 2, bar_y - 3.5 * mm, number)


# --- labels ----------------------------------------------------------------------------------------


def _draw_label(canvas: Canvas, notice: Notice, slot: int, st: dict) -> None:
    column, row = slot % LABEL_COLUMNS, slot // LABEL_COLUMNS
    left = LABEL_LEFT + column * (LABEL_WIDTH + LABEL_COLUMN_GAP)
    top = LABEL_PAGE[1] - LABEL_TOP - row * (LABEL_HEIGHT + LABEL_ROW_GAP)
    x = left + LABEL_PADDING_X
    width = LABEL_WIDTH - 2 * LABEL_PADDING_X
    number_h = 3.5 * mm
    height = LABEL_HEIGHT - 2 * LABEL_PADDING_Y - number_h
    block = _addressee(
        notice, st, postal_style="label_postal", address_style="label_address", name_style="label_name"
    )
    _place(canvas, _fit(block, width, height), x, top - LABEL_PADDING_Y, width, height)
    canvas.setFont(fonts.GOTHIC, 6.5)
    canvas.setFillColor(_SOFT)
    canvas.drawRightString(
        x + width,
        top - LABEL_HEIGHT + LABEL_PADDING_Y,
        f"予約管理番号 {numbers.display(number=notice.number)}",
    )
    canvas.setFillColor(_INK)
