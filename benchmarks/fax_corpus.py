"""Generate a corpus of filled-in, faxed booking sheets for the reader's benchmark (issue 6, item 5).

Each page is the real sheet PDF (``madoguchi.fax.sheet``) rendered at 300 dpi, filled in the way
residents fill it in, then sent through a simulated FAX:

- check marks in four styles — ticks (レ), circles, crosses, filled boxes — drawn with a pen of
  random width, with random size, position and wobble;
- phone digits from the *held-out* part of scikit-learn's hand-written digits (written by real
  people; the reader's classifier never trained on them), scaled, slanted and placed at random in
  their boxes; landline numbers leave the eleventh box empty;
- a signature-like scrawl on the signature line;
- the FAX: skew up to ±5°, a shift of a few millimetres, standard (204 × 98 dpi) or fine
  (204 × 196 dpi) sampling to black and white, speckle noise, some pages upside down;
- files: multi-page TIFF (G4 and G3), and some single pages as PDF and PNG.

Usage: ``python benchmarks/fax_corpus.py --pages 300 --out /tmp/madoguchi-fax-corpus``.
Writes the files and ``truth.json`` (what was written on each page). The test suite uses
``make_page`` and ``encode`` from here for its handful of pages.
"""

from __future__ import annotations

import argparse
import io
import json
import math
import sys
from dataclasses import asdict, dataclass, field
from datetime import date, time, timedelta
from pathlib import Path

import cv2
import numpy as np
import pypdfium2
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from madoguchi import numbers  # noqa: E402
from madoguchi.fax import digits, layout  # noqa: E402
from madoguchi.fax.sheet import FaxSheet, TimeBand, fax_sheets  # noqa: E402

RENDER_DPI = 300
RENDER_PX_PER_MM = RENDER_DPI / 25.4
FAX_LINE_MM = 216.0
FAX_LINE_DOTS = 1728
FAX_Y_PER_MM = {"fine": 196 / 25.4, "standard": 98 / 25.4}
MARK_STYLES = ("tick", "circle", "cross", "fill")
BANDS = (
    TimeBand("午前", time(9, 0), time(12, 0)),
    TimeBand("午後", time(13, 0), time(17, 0)),
    TimeBand("夜間", time(17, 30), time(19, 30)),
    TimeBand("土日", time(10, 0), time(16, 0)),
)


@dataclass
class PageTruth:
    """What was written on one page, and how it was sent."""

    number: str
    marked: list[tuple[str, str]]  # (date ISO, band start HH:MM) of each ticked box
    phone: str  # the digits written, left to right ("" boxes not included)
    resolution: str  # fine / standard
    skew: float
    rotated: bool
    speckle: float
    mark_styles: list[str] = field(default_factory=list)


# --- the sheet -------------------------------------------------------------------------------------


def make_sheet(rng: np.random.Generator) -> FaxSheet:
    first = date(2026, 11, 24) + timedelta(days=int(rng.integers(0, 60)))
    offsets = sorted(
        rng.choice(np.arange(0, 30), size=int(rng.integers(3, layout.MAX_DATES + 1)), replace=False)
    )
    offsets = [int(o - offsets[0]) for o in offsets]
    band_count = int(rng.integers(2, len(BANDS) + 1))
    return FaxSheet(
        number=numbers.make(f"{int(rng.integers(0, 10**11)):011d}"),
        venue_name="東陽町会場（江東区文化センター）",
        dates=[first + timedelta(days=o) for o in offsets],
        bands=list(BANDS[:band_count]),
        fax_number="03-3647-0000",
        call_center_phone="0120-123-456",
        city_name="江東区",
        applicant_name="山田 太郎",
        applicant_address="東京都江東区東陽4丁目11番28号",
    )


def render(pdf: bytes, page: int = 0) -> np.ndarray:
    document = pypdfium2.PdfDocument(pdf)
    try:
        bitmap = document[page].render(scale=RENDER_DPI / 72, grayscale=True)
        return np.array(bitmap.to_pil().convert("L"))
    finally:
        document.close()


# --- the pen ---------------------------------------------------------------------------------------


def _pt(x_mm: float, y_mm: float) -> tuple[int, int]:
    return round(x_mm * RENDER_PX_PER_MM * 16), round(y_mm * RENDER_PX_PER_MM * 16)  # 4 fractional bits


def _stroke(image: np.ndarray, points_mm: list[tuple[float, float]], width_mm: float) -> None:
    points = np.array([_pt(x, y) for x, y in points_mm], np.int32)
    thickness = max(1, round(width_mm * RENDER_PX_PER_MM))
    cv2.polylines(image, [points], False, 0, thickness, cv2.LINE_AA, shift=4)


def _wobbly(
    rng, points: list[tuple[float, float]], amount: float, steps: int = 6
) -> list[tuple[float, float]]:
    """A hand's line through ``points``: intermediate points, each pushed a little off course."""
    out = []
    for (x1, y1), (x2, y2) in zip(points, points[1:], strict=False):
        for k in range(steps):
            t = k / steps
            out.append(
                (x1 + (x2 - x1) * t + rng.normal(0, amount), y1 + (y2 - y1) * t + rng.normal(0, amount))
            )
    out.append(points[-1])
    return out


def draw_mark(image: np.ndarray, box: layout.Box, style: str, rng: np.random.Generator) -> None:
    cx = box.left + box.width / 2 + rng.normal(0, 0.4)
    cy = box.top + box.height / 2 + rng.normal(0, 0.4)
    s = box.width / 2
    pen = rng.uniform(0.3, 0.8)  # a fine ball-point to a felt pen
    if style == "tick":  # レ: down to the lower left, then up to the upper right; some small ones
        k = rng.uniform(0.4, 1.0)
        points = [
            (cx - 0.7 * s * k, cy - 0.1 * s * k),
            (cx - 0.2 * s * k, cy + 0.6 * s * k),
            (cx + 0.8 * s * k, cy - 0.8 * s * k),
        ]
        _stroke(image, _wobbly(rng, points, 0.08), pen)
    elif style == "circle":
        r = s * rng.uniform(0.45, 0.95)
        start = rng.uniform(0, 2 * math.pi)
        sweep = rng.uniform(1.85, 2.1) * math.pi  # not quite closed, or overlapping
        points = [
            (
                cx + r * math.cos(start + sweep * t / 40) * rng.uniform(0.95, 1.05),
                cy + r * math.sin(start + sweep * t / 40),
            )
            for t in range(41)
        ]
        _stroke(image, points, pen)
    elif style == "cross":
        k = rng.uniform(0.45, 1.0)
        _stroke(image, _wobbly(rng, [(cx - s * k, cy - s * k), (cx + s * k, cy + s * k)], 0.08), pen)
        _stroke(image, _wobbly(rng, [(cx + s * k, cy - s * k), (cx - s * k, cy + s * k)], 0.08), pen)
    else:  # fill: back-and-forth scribble covering most of the box
        k = rng.uniform(0.7, 0.95)
        lines = int(rng.integers(5, 9))
        points = []
        for i in range(lines + 1):
            y = cy - s * k + 2 * s * k * i / lines
            points += [(cx - s * k, y), (cx + s * k, y + s * k / lines)]
        _stroke(image, _wobbly(rng, points, 0.1, steps=2), max(pen, 0.8))


def draw_digit(image: np.ndarray, box: layout.Box, sample: np.ndarray, rng: np.random.Generator) -> None:
    """Write one held-out hand-written digit into ``box`` (its strokes are the writer's, enlarged)."""
    height_mm = rng.uniform(6.0, 9.5)
    size = round(height_mm * RENDER_PX_PER_MM)
    grey = cv2.resize((sample / 16.0).astype(np.float32), (size, size), interpolation=cv2.INTER_CUBIC)
    angle = rng.uniform(-7, 7)
    matrix = cv2.getRotationMatrix2D((size / 2, size / 2), angle, 1.0)
    matrix[0, 1] += rng.uniform(-0.15, 0.15)
    grey = cv2.warpAffine(grey, matrix, (size, size), flags=cv2.INTER_LINEAR, borderValue=0)
    glyph = grey >= rng.uniform(0.35, 0.55)  # how heavy the pen was
    ys, xs = np.nonzero(glyph)
    if ys.size == 0:
        return
    glyph = glyph[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1]
    gh, gw = glyph.shape
    inner = 0.9  # mm kept clear of the printed border
    room_x = box.width * RENDER_PX_PER_MM - gw - 2 * inner * RENDER_PX_PER_MM
    room_y = box.height * RENDER_PX_PER_MM - gh - 2 * inner * RENDER_PX_PER_MM
    x0 = round(box.left * RENDER_PX_PER_MM + inner * RENDER_PX_PER_MM + rng.uniform(0, max(room_x, 0)))
    y0 = round(box.top * RENDER_PX_PER_MM + inner * RENDER_PX_PER_MM + rng.uniform(0, max(room_y, 0)))
    region = image[y0 : y0 + gh, x0 : x0 + gw]
    region[glyph[: region.shape[0], : region.shape[1]]] = 0


def draw_signature(image: np.ndarray, rng: np.random.Generator) -> None:
    y = layout.SIGNATURE_TOP + 4
    x = layout.PHONE_LEFT + 5
    points = [(x + i * 2.2, y + rng.normal(0, 1.2)) for i in range(int(rng.integers(12, 30)))]
    _stroke(image, points, rng.uniform(0.3, 0.6))


class DigitPool:
    """Held-out hand-written digits by label, each used in turn before any is used again."""

    def __init__(self, rng: np.random.Generator):
        images, labels = digits.digit_set("held_out")
        self._rng = rng
        self._by_label = {
            d: [img for img, lab in zip(images, labels, strict=True) if lab == d] for d in range(10)
        }
        self._next = {d: 0 for d in range(10)}
        for pool in self._by_label.values():
            rng.shuffle(pool)

    def take(self, digit: int) -> np.ndarray:
        pool = self._by_label[digit]
        sample = pool[self._next[digit] % len(pool)]
        self._next[digit] += 1
        return sample


def random_phone(rng: np.random.Generator) -> str:
    if rng.random() < 0.6:
        return "0" + str(rng.choice([7, 8, 9])) + "0" + "".join(str(d) for d in rng.integers(0, 10, 8))
    return "0" + "".join(str(d) for d in rng.integers(0, 10, 9))  # landline: 10 digits


def fill(
    image: np.ndarray, sheet: FaxSheet, rng: np.random.Generator, pool: DigitPool, *, phone: str | None = None
):
    """Fill a rendered sheet in place; returns (marked cells, styles, phone written)."""
    band_count = len(sheet.bands)
    cells = [(r, c) for r in range(len(sheet.dates)) for c in range(band_count)]
    chosen = rng.choice(len(cells), size=int(rng.integers(1, min(6, len(cells)) + 1)), replace=False)
    marked, styles = [], []
    for index in sorted(chosen):
        row, column = cells[index]
        style = str(rng.choice(MARK_STYLES))
        draw_mark(image, layout.check_box(row, column, band_count), style, rng)
        marked.append((sheet.dates[row].isoformat(), f"{sheet.bands[column].start:%H:%M}"))
        styles.append(style)
    phone = random_phone(rng) if phone is None else phone
    for position, ch in enumerate(phone):
        draw_digit(image, layout.phone_box(position), pool.take(int(ch)), rng)
    draw_signature(image, rng)
    return marked, styles, phone


# --- the FAX ---------------------------------------------------------------------------------------


def fax(
    image: np.ndarray,
    rng: np.random.Generator,
    *,
    resolution: str,
    skew: float,
    speckle: float,
    rotated: bool,
):
    """A 300-dpi grey page → the bilevel image a FAX machine would send (uint8, 0/255).

    The scan line is 216 mm (1,728 dots); the page is fed askew by ``skew`` degrees and a little off
    centre, so a skewed page's corners can run off the scan line, as they do on a real machine; the
    scan runs on as long as the paper does."""
    height, width = image.shape
    radians = math.radians(abs(skew))
    out_width = round(FAX_LINE_MM * RENDER_PX_PER_MM)
    out_height = round((height * math.cos(radians) + width * math.sin(radians)) + 4 * RENDER_PX_PER_MM)
    matrix = cv2.getRotationMatrix2D((width / 2, height / 2), skew, rng.uniform(0.98, 1.01))
    matrix[:, 2] += (out_width - width) / 2 + rng.normal(0, 2.0) * RENDER_PX_PER_MM, (out_height - height) / 2
    turned = cv2.warpAffine(image, matrix, (out_width, out_height), flags=cv2.INTER_LINEAR, borderValue=255)
    size = (FAX_LINE_DOTS, round(out_height / RENDER_PX_PER_MM * FAX_Y_PER_MM[resolution]))
    sampled = cv2.resize(turned, size, interpolation=cv2.INTER_AREA)
    bilevel = np.where(sampled < rng.uniform(110, 150), 0, 255).astype(np.uint8)
    noise = rng.random(bilevel.shape)
    bilevel[noise < speckle] = 0
    bilevel[noise > 1 - speckle / 4] = 255
    if rotated:
        bilevel = np.ascontiguousarray(bilevel[::-1, ::-1])
    return bilevel


def encode(pages: list[np.ndarray], kind: str, resolution: str) -> bytes:
    """Bilevel pages at 204 dpi across → file bytes: 'g4' / 'g3' (multi-page TIFF), 'pdf' or 'png'."""
    y_dpi = 196 if resolution == "fine" else 98
    buffer = io.BytesIO()
    frames = [Image.fromarray(p).convert("1") for p in pages]
    if kind in ("g4", "g3"):
        compression = "group4" if kind == "g4" else "group3"
        frames[0].save(
            buffer, "TIFF", compression=compression, dpi=(204, y_dpi), save_all=True, append_images=frames[1:]
        )
    elif kind == "png":
        frames[0].save(buffer, "PNG", dpi=(204, y_dpi))
    elif kind == "pdf":  # a fax-to-mail gateway: square pixels, one resolution for the page
        square = [
            f.resize((f.width, round(f.height * 204 / y_dpi)), Image.Resampling.NEAREST) for f in frames
        ]
        square[0].save(buffer, "PDF", resolution=204.0, save_all=True, append_images=square[1:])
    else:
        raise ValueError(kind)
    return buffer.getvalue()


def make_page(rng: np.random.Generator, pool: DigitPool, **options) -> tuple[np.ndarray, PageTruth]:
    """One filled, faxed page and its truth. ``options`` fix resolution, skew, speckle or rotated."""
    sheet = options.pop("sheet", None) or make_sheet(rng)
    image = render(fax_sheets([sheet]))
    marked, styles, phone = fill(image, sheet, rng, pool, phone=options.pop("phone", None))
    resolution = options.get("resolution") or str(rng.choice(["fine", "standard"]))
    skew = options["skew"] if "skew" in options else float(rng.uniform(-5, 5))
    speckle = options["speckle"] if "speckle" in options else float(rng.uniform(0.0, 0.01))
    rotated = options["rotated"] if "rotated" in options else bool(rng.random() < 0.2)
    page = fax(image, rng, resolution=resolution, skew=skew, speckle=speckle, rotated=rotated)
    truth = PageTruth(
        sheet.number, marked, phone, resolution, round(skew, 2), rotated, round(speckle, 4), styles
    )
    return page, truth


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pages", type=int, default=300)
    parser.add_argument("--out", type=Path, default=Path("/tmp/madoguchi-fax-corpus"))
    parser.add_argument("--seed", type=int, default=2026)
    args = parser.parse_args(argv)
    rng = np.random.default_rng(args.seed)
    pool = DigitPool(rng)
    args.out.mkdir(parents=True, exist_ok=True)
    for old in args.out.glob("fax-*"):
        old.unlink()
    files = []
    made = 0
    while made < args.pages:
        resolution = str(rng.choice(["fine", "standard"]))
        kind = str(rng.choice(["g4", "g4", "g3", "pdf", "png"]))
        count = 1 if kind == "png" else min(int(rng.integers(1, 5)), args.pages - made)
        pages, truths = [], []
        for _ in range(count):
            page, truth = make_page(rng, pool, resolution=resolution)
            pages.append(page)
            truths.append(asdict(truth))
        name = f"fax-{len(files):04d}.{'tif' if kind in ('g3', 'g4') else kind}"
        (args.out / name).write_bytes(encode(pages, kind, resolution))
        files.append({"file": name, "kind": kind, "resolution": resolution, "pages": truths})
        made += count
        print(f"\r{made}/{args.pages} pages", end="", file=sys.stderr)
    (args.out / "truth.json").write_text(
        json.dumps({"seed": args.seed, "files": files}, ensure_ascii=False, indent=1)
    )
    print(f"\n{made} pages in {len(files)} files → {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
