"""Reading received FAX booking sheets (R5.2): number, ticked boxes and phone digits, with confidences.

``read_fax(data)`` takes the bytes of a received file (multi-page TIFF G3/G4, PDF or PNG; standard
204 × 98 or fine 204 × 196 dpi) and returns one ``PageResult`` per page. It never raises for bad
input: a damaged file gives one result with status ``unreadable`` and a reason staff can read.

For each page:

1. **Scale** (``images``): square pixels at 8 px/mm, from the file's own resolution.
2. **Binarise**: Otsu's threshold; a 3 × 3 median filter removes FAX speckle for the steps that
   look for shapes (marks, the QR code, check boxes).
3. **Register**: the four solid corner squares are found as square, solid connected components
   nearest each corner of the image; the large one is the sheet's top-left, so a page turned by 180°
   (or 90°) is recognised and turned back. An affine transform fitted to the marks (least squares;
   three marks are enough) maps the page onto the template of ``layout``; a fourth mark that
   disagrees by more than ``MARK_RESIDUAL_MM`` rejects the page.
4. **Decode** the QR code in its place on the registered page (then, failing that, anywhere on the
   page) with zxing-cpp; the payload gives the number, the dates and the bands (``layout``); the
   number's Damm check digit must hold (``numbers.parse``).
5. **Check boxes**: each row of boxes is re-aligned on its printed borders (±1.5 mm, so a FAX's
   uneven paper feed does not push a border into the measurement), then the share of dark pixels in
   each box's interior, ``BOX_MARGIN_MM`` inside the border, is the mark's ink. Below
   ``mark_blank_below`` it is blank, above ``mark_marked_above`` marked, in between a person decides.
6. **Phone digits**: the row of eleven boxes is re-aligned the same way; the ink inside each box,
   without specks, is classified by ``digits.classifier()``; its probability is the confidence.

Thresholds live in ``Thresholds``; ``needs_review`` on the result and on each field say what a person
must confirm. Nothing here logs: the number and the phone are personal data.
"""

from __future__ import annotations

import enum
import itertools
from dataclasses import dataclass, field
from datetime import date, time

import cv2
import numpy as np
import zxingcpp

from .. import numbers
from . import digits, images, layout

MARK_RESIDUAL_MM = 3.0  # a mark further than this from where the other three put it: not our sheet
BOX_MARGIN_MM = 0.6  # interior of a box, this far inside its printed border
REALIGN_MM = 1.5  # how far a row of boxes may sit from where registration puts it
SPECK_MM2 = 0.2  # ink blobs smaller than this (≈ 13 px at 8 px/mm) are noise, not writing
BLANK_PAGE_INK = 0.002  # share of dark pixels below which a page is blank
BORDER_COVERAGE = 0.6  # share of a phone box's border that must be found where registration puts it


@dataclass(frozen=True)
class Thresholds:
    """Where the reader stops deciding and asks a person. Calibrated on ``benchmarks/fax_corpus.py``."""

    mark_blank_below: float = 0.02  # ink share of a box interior: below → not marked, sure
    mark_marked_above: float = 0.05  # above → marked, sure; between the two → a person decides
    digit_accept_at: float = 0.85  # classifier probability at which a digit is taken as read
    digit_blank_below: float = 0.012  # ink share of a phone box below which it is empty
    review_below: float = 0.80  # any field whose confidence is below this needs a person


DEFAULT_THRESHOLDS = Thresholds()


class PageStatus(enum.StrEnum):
    READ = "read"  # our sheet, registered and decoded; fields may still need review
    NOT_OURS = "not_ours"  # no sign of our sheet (another document, a blank page)
    UNREADABLE = "unreadable"  # our sheet (or a damaged file) that could not be read


@dataclass(frozen=True)
class Mark:
    """One check box: the resident's answer to "does this date and time band suit you?"."""

    day: date
    band_start: time
    band_end: time
    marked: bool
    confidence: float  # 0.5–1.0; below ``review_below`` a person decides
    ink: float  # share of dark pixels in the box interior
    needs_review: bool


@dataclass(frozen=True)
class PhoneDigit:
    position: int  # 0–10, left to right
    digit: str | None  # None: the box is empty
    confidence: float
    needs_review: bool


@dataclass(frozen=True)
class PageResult:
    page_index: int  # from 0, in the file's order
    status: PageStatus
    reason: str  # for staff, in Japanese; "" when read
    number: str | None = None  # 予約管理番号, only when its check digit holds
    number_confidence: float = 0.0
    marks: tuple[Mark, ...] = ()
    phone_digits: tuple[PhoneDigit, ...] = ()
    phone: str = ""  # the digits read, blanks left out
    rotated: bool = False  # the page arrived turned (upside down, or on its side)
    rotation: int = 0  # degrees clockwise the page had been turned: 0, 90, 180, 270
    review: tuple[str, ...] = field(default=())  # which fields need a person: "marks", "phone", …

    @property
    def needs_review(self) -> bool:
        return self.status is not PageStatus.READ or bool(self.review)

    @property
    def marked(self) -> tuple[Mark, ...]:
        return tuple(m for m in self.marks if m.marked)


def read_fax(data: bytes, *, thresholds: Thresholds = DEFAULT_THRESHOLDS) -> list[PageResult]:
    """One result per page of a received FAX file (R5.2). Never raises for malformed input."""
    results: list[PageResult] = []
    try:
        for page in images.pages(data):
            results.append(read_page(page.grey, page_index=page.index, thresholds=thresholds))
    except images.UnreadableFile as exc:
        results.append(PageResult(len(results), PageStatus.UNREADABLE, exc.reason))
    return results


def read_page(
    grey: np.ndarray, *, page_index: int = 0, thresholds: Thresholds = DEFAULT_THRESHOLDS
) -> PageResult:
    """One page already at ``images.PIXELS_PER_MM`` (uint8 grey, 0 = black)."""
    try:
        return _read_page(grey, page_index, thresholds)
    except (cv2.error, ValueError, MemoryError, np.linalg.LinAlgError):
        # A pathological image (degenerate geometry, absurd size) is a page a person must look at.
        return PageResult(page_index, PageStatus.UNREADABLE, "画像を処理できませんでした")


# --- the steps -------------------------------------------------------------------------------------

_S = images.PIXELS_PER_MM


def _read_page(grey: np.ndarray, page_index: int, thresholds: Thresholds) -> PageResult:
    if grey.ndim != 2 or min(grey.shape) < 100:
        return PageResult(page_index, PageStatus.NOT_OURS, "ページが小さすぎます（申込依頼書ではありません）")
    threshold, ink = cv2.threshold(grey, 0, 1, cv2.THRESH_BINARY_INV + cv2.THRESH_OTSU)
    if ink.mean() < BLANK_PAGE_INK:
        return PageResult(page_index, PageStatus.NOT_OURS, "白紙のページです")
    clean = cv2.medianBlur(ink, 3)

    registration = _register(clean)
    if registration is None:
        payload = _decode_qr(_as_paper(clean)) or _decode_qr(grey)
        if payload is None or not payload.startswith(layout.PAYLOAD_PREFIX[:2]):
            return PageResult(
                page_index,
                PageStatus.NOT_OURS,
                "申込依頼書ではありません（位置合わせマークと読み取り用コードが見つかりません）",
            )
        number = _valid_number(payload)  # still worth having: staff know whose sheet it is
        return PageResult(
            page_index,
            PageStatus.UNREADABLE,
            "位置合わせマーク（四隅の黒い四角）が見つかりません。用紙の端が欠けていないか確認してください",
            number=number,
            number_confidence=1.0 if number else 0.0,
        )
    matrix, rotation = registration
    size = (round(layout.PAGE_WIDTH * _S), round(layout.PAGE_HEIGHT * _S))
    registered = cv2.warpAffine(grey, matrix, size, flags=cv2.INTER_LINEAR, borderValue=255)
    ink = (registered <= threshold).astype(np.uint8)
    clean = cv2.medianBlur(ink, 3)
    turned = {"rotated": rotation != 0, "rotation": rotation}

    left, top, right, bottom = (round(v * _S) for v in layout.QR_SEARCH)
    payload = _decode_qr(_as_paper(clean[top:bottom, left:right])) or _decode_qr(
        registered[top:bottom, left:right]
    )
    if payload is None:
        payload = _decode_qr(_as_paper(clean)) or _decode_qr(grey)
    if payload is None:
        return PageResult(
            page_index,
            PageStatus.UNREADABLE,
            "読み取り用コード（右上の二次元コード）を読み取れません",
            **turned,
        )
    try:
        sheet = layout.decode_payload(payload)
    except layout.PayloadError as exc:
        if exc.reason == "foreign":
            return PageResult(
                page_index, PageStatus.NOT_OURS, "申込依頼書ではありません（別の二次元コードです）", **turned
            )
        return PageResult(
            page_index, PageStatus.UNREADABLE, "読み取り用コードの内容が様式と合いません", **turned
        )
    number = _valid_number(payload)
    if number is None:
        return PageResult(
            page_index,
            PageStatus.UNREADABLE,
            "予約管理番号の検査数字が合いません（コードの破損か、正しくない用紙です）",
            **turned,
        )

    if not _boxes_in_place(clean):
        return PageResult(
            page_index,
            PageStatus.UNREADABLE,
            "用紙の位置を合わせられません（電話番号の枠が見つかりません）",
            number=number,
            number_confidence=1.0,
            **turned,
        )
    marks = _read_marks(clean, sheet, thresholds)
    phone_digits = _read_phone(ink, thresholds)
    review = []
    if any(m.needs_review for m in marks):
        review.append("marks")
    if not any(m.marked for m in marks):
        review.append("no_marks")
    if any(d.needs_review for d in phone_digits):
        review.append("phone")
    phone = "".join(d.digit for d in phone_digits if d.digit is not None)
    if not phone:
        review.append("no_phone")
    return PageResult(
        page_index,
        PageStatus.READ,
        "",
        number=number,
        number_confidence=1.0,
        marks=marks,
        phone_digits=phone_digits,
        phone=phone,
        review=tuple(review),
        **turned,
    )


def _valid_number(payload: str) -> str | None:
    parts = payload.split("/")
    if len(parts) < 2:
        return None
    try:
        return numbers.parse(parts[1]) if len(parts[1]) == numbers.LENGTH and parts[1].isdigit() else None
    except numbers.InvalidReservationNumber:
        return None


def _as_paper(ink: np.ndarray) -> np.ndarray:
    """Ink mask (1 = dark) → an 8-bit black-on-white image for the barcode decoder."""
    return np.where(ink > 0, 0, 255).astype(np.uint8)


def _decode_qr(image: np.ndarray) -> str | None:
    if image.size == 0:
        return None
    for code in zxingcpp.read_barcodes(np.ascontiguousarray(image), formats=zxingcpp.BarcodeFormat.QRCode):
        if code.valid and code.text:
            return code.text
    return None


# --- registration ----------------------------------------------------------------------------------


def _register(clean: np.ndarray) -> tuple[np.ndarray, int] | None:
    """The affine map image → template (pixels at _S) and the page's rotation, or None.

    Each corner of the image offers its few nearest square, solid blobs (a filled-in check box can
    look like a mark); the choice of one blob per corner — or none, for a mark lost off the edge of a
    skewed scan — whose geometry best fits the template wins: four marks whose affine fit is within
    ``MARK_RESIDUAL_MM``, else three that make a plausible page."""
    height, width = clean.shape
    count, _, stats, centroids = cv2.connectedComponentsWithStats(clean, connectivity=8)
    small, large = layout.MARK_SMALL * _S, layout.MARK_LARGE * _S
    candidates = []
    for index, (x, y, w, h, area) in enumerate(stats.tolist()[1:], start=1):
        if not 0.65 * small <= area**0.5 <= 1.3 * large:
            continue
        if not 0.7 <= w / h <= 1.43 or area / (w * h) < 0.7:
            continue
        if x == 0 or y == 0 or x + w >= width or y + h >= height:
            continue  # cut off by the edge of the scan: its centre would be wrong
        candidates.append((centroids[index], area))

    corners = ((0, 0), (width, 0), (width, height), (0, height))  # clockwise from top-left
    options: list[list[tuple[np.ndarray, float] | None]] = []
    for cx, cy in corners:
        near = sorted(
            (c for c in candidates if abs(c[0][0] - cx) < 0.3 * width and abs(c[0][1] - cy) < 0.3 * height),
            key=lambda c: np.hypot(c[0][0] - cx, c[0][1] - cy),
        )
        options.append([*near[:3], None])

    best: tuple[float, np.ndarray, int] | None = None
    for choice in itertools.product(*options):
        found = {i: c for i, c in enumerate(choice) if c is not None}
        if len(found) < 3:
            continue
        rotation_steps = _orientation({i: a for i, (_, a) in found.items()}, small, large)
        if rotation_steps is None:
            continue
        fitted = _fit_marks({i: c for i, (c, _) in found.items()}, rotation_steps)
        if fitted is None:
            continue
        matrix, residual = fitted
        score = residual + (0 if len(found) == 4 else MARK_RESIDUAL_MM * _S)  # four marks beat three
        if best is None or score < best[0]:
            best = (score, matrix, rotation_steps)
    if best is None:
        return None
    return best[1], 90 * best[2]


def _orientation(areas: dict[int, float], small: float, large: float) -> int | None:
    """Which image corner (clockwise from top-left) holds the sheet's top-left, from the marks' sizes."""
    largest = max(areas, key=areas.get)
    others = [a for i, a in areas.items() if i != largest]
    if areas[largest] >= 1.5 * max(others) and 0.5 * large**2 <= areas[largest] <= 1.6 * large**2:
        return largest
    if len(areas) == 3 and max(areas.values()) <= 1.6 * small**2:
        # Three small marks: the large one is the corner that was lost (cut off by a skewed feed).
        return ({0, 1, 2, 3} - areas.keys()).pop()
    return None


def _fit_marks(centres: dict[int, np.ndarray], rotation_steps: int) -> tuple[np.ndarray, float] | None:
    """Least-squares affine map from the marks found to the template, if it is a plausible page."""
    source = np.asarray([centres[i] for i in sorted(centres)])
    target = np.asarray([layout.MARK_CENTRES[(i - rotation_steps) % 4] for i in sorted(centres)]) * _S
    source_h = np.hstack([source, np.ones((len(source), 1))])
    solution, *_ = np.linalg.lstsq(source_h, target, rcond=None)
    residual = float(np.abs(source_h @ solution - target).max())
    if residual > MARK_RESIDUAL_MM * _S:
        return None
    linear = solution.T[:, :2]
    singular = np.linalg.svd(linear, compute_uv=False)
    # A FAX scales a page by a few per cent and skews it a few degrees; it neither mirrors nor shears it.
    if np.linalg.det(linear) <= 0 or not (singular.min() >= 0.85 and singular.max() <= 1.15):
        return None
    if singular.max() / singular.min() > 1.08:
        return None
    return solution.T, residual


# --- check boxes -----------------------------------------------------------------------------------


def _px(box: layout.Box, dx: int = 0, dy: int = 0) -> tuple[int, int, int, int]:
    return round(box.left * _S) + dx, round(box.top * _S) + dy, round(box.width * _S), round(box.height * _S)


def _realign(ink: np.ndarray, boxes: list[layout.Box]) -> tuple[int, int]:
    """The (dx, dy) in pixels, within ±REALIGN_MM, that puts a row of boxes on its printed borders."""
    reach = round(REALIGN_MM * _S)
    shifts = np.arange(-reach, reach + 1)
    score_x = np.zeros(shifts.size)
    score_y = np.zeros(shifts.size)
    for box in boxes:
        x, y, w, h = _px(box)
        band = slice(y + h // 5, y + h - h // 5)  # the middle of the sides: away from the corners
        columns = ink[band, max(0, x - reach) : x + w + reach + 1].sum(axis=0, dtype=np.int64)
        rows = ink[max(0, y - reach) : y + h + reach + 1, x + w // 5 : x + w - w // 5].sum(
            axis=1, dtype=np.int64
        )
        score_x += _edge_scores(columns, reach, w, shifts, x - reach)
        score_y += _edge_scores(rows, reach, h, shifts, y - reach)
    return int(shifts[score_x.argmax()]), int(shifts[score_y.argmax()])


def _edge_scores(profile: np.ndarray, reach: int, length: int, shifts: np.ndarray, start: int) -> np.ndarray:
    """For each shift, the ink on both edges of a box (each edge ±1 px, for a 0.35 mm line)."""
    offset = reach if start >= 0 else reach + start  # the profile was clipped at the image edge
    smooth = np.convolve(profile, np.ones(3), mode="same")
    scores = np.zeros(shifts.size)
    for i, shift in enumerate(shifts):
        for edge in (offset + shift, offset + shift + length):
            if 0 <= edge < smooth.size:
                scores[i] += smooth[edge]
    return scores


def _boxes_in_place(clean: np.ndarray) -> bool:
    """Whether the phone boxes' printed borders are where registration says: the check that the page
    was straightened right (most of each border's length must carry ink)."""
    boxes = [layout.phone_box(position) for position in range(layout.PHONE_DIGITS)]
    dx, dy = _realign(clean, boxes)
    coverage = []
    for box in boxes:
        x, y, w, h = _px(box, dx, dy)
        edges = (
            clean[max(0, y - 1) : y + 2, x : x + w].any(axis=0),
            clean[max(0, y + h - 1) : y + h + 2, x : x + w].any(axis=0),
            clean[y : y + h, max(0, x - 1) : x + 2].any(axis=1),
            clean[y : y + h, max(0, x + w - 1) : x + w + 2].any(axis=1),
        )
        coverage += [float(edge.mean()) if edge.size else 0.0 for edge in edges]
    return float(np.median(coverage)) >= BORDER_COVERAGE


def _interior(ink: np.ndarray, box: layout.Box, dx: int, dy: int) -> np.ndarray:
    x, y, w, h = _px(box, dx, dy)
    margin = round(BOX_MARGIN_MM * _S)
    return ink[max(0, y + margin) : y + h - margin, max(0, x + margin) : x + w - margin]


def _read_marks(clean: np.ndarray, sheet: layout.SheetLayout, thresholds: Thresholds) -> tuple[Mark, ...]:
    band_count = len(sheet.bands)
    marks = []
    for row, day in enumerate(sheet.dates):
        boxes = [layout.check_box(row, column, band_count) for column in range(band_count)]
        dx, dy = _realign(clean, boxes)
        for band, box in zip(sheet.bands, boxes, strict=True):
            interior = _interior(clean, box, dx, dy)
            ink = float(interior.mean()) if interior.size else 0.0
            marked, confidence = _judge_mark(ink, thresholds)
            marks.append(
                Mark(
                    day,
                    band.start,
                    band.end,
                    marked,
                    confidence,
                    round(ink, 4),
                    confidence < thresholds.review_below,
                )
            )
    return tuple(marks)


def _judge_mark(ink: float, t: Thresholds) -> tuple[bool, float]:
    """Marked or not, and a confidence: 0.8–1.0 outside the two thresholds, 0.5–0.8 between them."""
    low, high = t.mark_blank_below, t.mark_marked_above
    if ink <= low:
        return False, 1.0 - 0.2 * ink / low
    if ink >= high:
        return True, 0.8 + 0.2 * min(1.0, (ink - high) / high)
    middle, half = (low + high) / 2, (high - low) / 2
    return ink >= middle, 0.5 + 0.3 * abs(ink - middle) / half - 1e-9


# --- phone digits ----------------------------------------------------------------------------------


def _read_phone(ink: np.ndarray, thresholds: Thresholds) -> tuple[PhoneDigit, ...]:
    boxes = [layout.phone_box(position) for position in range(layout.PHONE_DIGITS)]
    dx, dy = _realign(cv2.medianBlur(ink, 3), boxes)
    speck = SPECK_MM2 * _S * _S
    written: list[tuple[int, np.ndarray]] = []
    blanks: dict[int, float] = {}
    for position, box in enumerate(boxes):
        interior = _without_specks(_interior(ink, box, dx, dy), speck)
        share = float(interior.mean()) if interior.size else 0.0
        feature = digits.features(interior) if share >= thresholds.digit_blank_below else None
        if feature is None:
            blanks[position] = share
        else:
            written.append((position, feature))
    predictions = dict(
        zip(
            (p for p, _ in written),
            digits.classifier().predict([f for _, f in written]),
            strict=True,
        )
    )
    result = []
    for position in range(layout.PHONE_DIGITS):
        if position in blanks:
            # Sure it is empty unless there is some ink, short of a digit's worth.
            confidence = 1.0 if blanks[position] < thresholds.digit_blank_below / 2 else 0.7
            result.append(PhoneDigit(position, None, confidence, confidence < thresholds.digit_accept_at))
        else:
            p = predictions[position]
            result.append(
                PhoneDigit(
                    position, p.digit, round(p.confidence, 4), p.confidence < thresholds.digit_accept_at
                )
            )
    return tuple(result)


def _without_specks(ink: np.ndarray, min_area: float) -> np.ndarray:
    if ink.size == 0 or not ink.any():
        return ink
    count, labels, stats, _ = cv2.connectedComponentsWithStats(np.ascontiguousarray(ink), connectivity=8)
    keep = np.zeros(count, np.uint8)
    keep[1:] = stats[1:, cv2.CC_STAT_AREA] >= min_area
    return keep[labels]
