"""Where everything sits on the FAX sheet, and what its two-dimensional code says (R5.1, R5.2).

The sheet (``sheet.py``) draws from these numbers and the reader (``reader.py``) reads from them, so
the two cannot drift apart. All positions are millimetres from the page's top-left corner (A4
portrait, 210 × 297 mm), which is how a reader looks at an image; the sheet flips them for reportlab.

The code (QR, error level M, alphanumeric mode) carries everything the reader needs without a
database — the reservation number and the grid's dates and time bands, in layout version 1::

    MF1/<number>/<first date YYYYMMDD>/<day offsets joined by ".">/<bands HHMM-HHMM joined by ".">

    MF1/123456789012/20261124/0.1.2.6.7/0900-1200.1300-1700

``MF`` names the form (Madoguchi FAX), ``1`` the layout version. The day offsets count days from the
first date (the first is always 0), so the candidate dates need not be consecutive; the rows of the
grid are those dates in that order, the columns are the bands in that order. Every character is in
QR's alphanumeric set (digits, capitals, ``/``, ``.``, ``-``), the densest mode after numeric.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, time, timedelta

PAGE_WIDTH = 210.0
PAGE_HEIGHT = 297.0

LAYOUT_VERSION = 1
PAYLOAD_PREFIX = f"MF{LAYOUT_VERSION}/"

MAX_DATES = 14  # rows that fit between the instructions and the phone boxes
MAX_BANDS = 6

# --- registration marks: solid squares, the top-left one larger, so a page turned by 180° (or 90°)
# is told apart from an upright one by which corner holds the large square.
MARK_LARGE = 9.0
MARK_SMALL = 6.0
MARK_INSET = 17.0  # page edge to a mark's centre: a page fed 5° askew loses ~10 mm at its corners
# (its width grows to 235 mm on a 216 mm scan line), so the marks sit well inside
MARK_CENTRES = (  # top-left, top-right, bottom-right, bottom-left (clockwise)
    (MARK_INSET, MARK_INSET),
    (PAGE_WIDTH - MARK_INSET, MARK_INSET),
    (PAGE_WIDTH - MARK_INSET, PAGE_HEIGHT - MARK_INSET),
    (MARK_INSET, PAGE_HEIGHT - MARK_INSET),
)
MARK_SIZES = (MARK_LARGE, MARK_SMALL, MARK_SMALL, MARK_SMALL)

# --- the QR code: 1 mm modules (PITFALLS: ≥ 0.7 mm reads in standard-mode FAX), 4-module quiet zone.
QR_MODULE = 1.0
QR_QUIET_MODULES = 4
QR_ERROR = "m"
QR_MAX_MODULES = 41  # version 6; a full 14 × 6 grid's payload needs version 5 (37 modules)
QR_RIGHT = 188.0  # right edge of the symbol (without quiet zone), clear of the top-right mark
QR_TOP = 25.0
# The reader looks for the code in this rectangle (left, top, right, bottom) of the registered page.
QR_SEARCH = (QR_RIGHT - QR_MAX_MODULES * QR_MODULE - 8.0, QR_TOP - 5.0, PAGE_WIDTH - 2.0, 76.0)

# --- the grid of check boxes: candidate dates as rows × time bands as columns.
GRID_LEFT = 22.0
GRID_TOP = 104.0
GRID_RIGHT = 190.0
DATE_COLUMN_WIDTH = 40.0
HEADER_HEIGHT = 12.0
ROW_HEIGHT = 9.0
BAND_COLUMN_MAX_WIDTH = 30.0
CHECK_BOX = 6.5
CHECK_BOX_LINE = 0.35  # mm; thin, so a box's own border is far from what a mark adds

# --- the phone number: 11 boxes, one digit each.
PHONE_DIGITS = 11
PHONE_BOX_WIDTH = 10.0
PHONE_BOX_HEIGHT = 12.0
PHONE_BOX_GAP = 1.5  # separate boxes, so a digit that strays does not run into its neighbour
PHONE_LEFT = 60.0
PHONE_TOP = 252.0
PHONE_BOX_LINE = 0.35

SIGNATURE_TOP = 268.0  # baseline of the 氏名（自署） line


@dataclass(frozen=True)
class Band:
    """A time band as the reader knows it (the label is on paper only)."""

    start: time
    end: time


@dataclass(frozen=True)
class SheetLayout:
    """What a sheet's code tells the reader: whose sheet, and what each row and column means."""

    number: str
    dates: tuple[date, ...]
    bands: tuple[Band, ...]
    version: int = LAYOUT_VERSION


@dataclass(frozen=True)
class Box:
    """A rectangle in millimetres from the page's top-left corner."""

    left: float
    top: float
    width: float
    height: float

    @property
    def right(self) -> float:
        return self.left + self.width

    @property
    def bottom(self) -> float:
        return self.top + self.height


class PayloadError(ValueError):
    """The code's text is not a Madoguchi FAX payload (``reason``: 'foreign' or 'malformed')."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


def check_counts(date_count: int, band_count: int) -> None:
    if not 1 <= date_count <= MAX_DATES:
        raise ValueError(f"a sheet has 1 to {MAX_DATES} candidate dates")
    if not 1 <= band_count <= MAX_BANDS:
        raise ValueError(f"a sheet has 1 to {MAX_BANDS} time bands")


def encode_payload(layout: SheetLayout) -> str:
    check_counts(len(layout.dates), len(layout.bands))
    first = layout.dates[0]
    offsets = [(day - first).days for day in layout.dates]
    if offsets != sorted(set(offsets)):
        raise ValueError("candidate dates must be distinct and in ascending order")
    bands = ".".join(f"{b.start:%H%M}-{b.end:%H%M}" for b in layout.bands)
    return f"{PAYLOAD_PREFIX}{layout.number}/{first:%Y%m%d}/{'.'.join(map(str, offsets))}/{bands}"


_PAYLOAD = re.compile(
    r"MF(?P<version>\d+)/(?P<number>\d{12})/(?P<first>\d{8})/(?P<offsets>\d+(?:\.\d+)*)/"
    r"(?P<bands>\d{4}-\d{4}(?:\.\d{4}-\d{4})*)"
)


def decode_payload(text: str) -> SheetLayout:
    """The layout a code's text describes. The number's check digit is the caller's to verify."""
    if not text.startswith("MF"):
        raise PayloadError("foreign")
    match = _PAYLOAD.fullmatch(text)
    if not match or int(match["version"]) != LAYOUT_VERSION:
        raise PayloadError("malformed")
    try:
        first = date(int(match["first"][:4]), int(match["first"][4:6]), int(match["first"][6:]))
        dates = tuple(first + timedelta(days=int(o)) for o in match["offsets"].split("."))
        bands = tuple(
            Band(time(int(b[0:2]), int(b[2:4])), time(int(b[5:7]), int(b[7:9])))
            for b in match["bands"].split(".")
        )
        check_counts(len(dates), len(bands))
    except ValueError as exc:  # an impossible date or time, or too many rows
        raise PayloadError("malformed") from exc
    return SheetLayout(number=match["number"], dates=dates, bands=bands, version=LAYOUT_VERSION)


# --- geometry derived from the counts -------------------------------------------------------------


def band_column_width(band_count: int) -> float:
    available = GRID_RIGHT - GRID_LEFT - DATE_COLUMN_WIDTH
    return min(BAND_COLUMN_MAX_WIDTH, available / band_count)


def grid_width(band_count: int) -> float:
    return DATE_COLUMN_WIDTH + band_count * band_column_width(band_count)


def grid_height(date_count: int) -> float:
    return HEADER_HEIGHT + date_count * ROW_HEIGHT


def cell(row: int, column: int, band_count: int) -> Box:
    """The grid cell of date ``row`` and band ``column`` (both from 0)."""
    width = band_column_width(band_count)
    return Box(
        GRID_LEFT + DATE_COLUMN_WIDTH + column * width,
        GRID_TOP + HEADER_HEIGHT + row * ROW_HEIGHT,
        width,
        ROW_HEIGHT,
    )


def check_box(row: int, column: int, band_count: int) -> Box:
    """The printed check box centred in its cell."""
    c = cell(row, column, band_count)
    return Box(c.left + (c.width - CHECK_BOX) / 2, c.top + (c.height - CHECK_BOX) / 2, CHECK_BOX, CHECK_BOX)


def phone_box(position: int) -> Box:
    """The box of the ``position``-th phone digit (from 0, left to right)."""
    return Box(
        PHONE_LEFT + position * (PHONE_BOX_WIDTH + PHONE_BOX_GAP),
        PHONE_TOP,
        PHONE_BOX_WIDTH,
        PHONE_BOX_HEIGHT,
    )


assert GRID_TOP + grid_height(MAX_DATES) < PHONE_TOP - 8.0  # the header line above the boxes fits
assert phone_box(PHONE_DIGITS - 1).right < PAGE_WIDTH - MARK_INSET - MARK_SMALL
# The QR code's quiet zone stays clear of the top-right mark.
assert QR_TOP - QR_QUIET_MODULES * QR_MODULE > MARK_INSET + MARK_SMALL / 2
