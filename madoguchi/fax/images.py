"""Received FAX files → grey page images with square pixels at a known scale (R5.2).

A FAX arrives as multi-page TIFF (G3/G4, as fax servers store it), as PDF (fax-to-mail gateways)
or as PNG. Standard-resolution FAX has half as many lines as columns (204 × 98 dpi), so every page
is resampled to ``PIXELS_PER_MM`` in both directions, using the file's own resolution when it has
one; a file without one is taken to be a full A4 width, and a page much wider than A4's proportions
is taken to be standard resolution.
"""

from __future__ import annotations

import io
import warnings
from collections.abc import Iterator
from dataclasses import dataclass

import cv2
import numpy as np
from PIL import Image, ImageSequence

from . import layout

PIXELS_PER_MM = 8.0  # ≈ 203 dpi: the FAX's own horizontal resolution, so nothing is invented
MAX_PAGES = 50  # a FAX booking sheet is one page; a bigger file is not a booking
MAX_PIXELS = 60_000_000  # per page, before resampling (A4 at 600 dpi is ~35 M)
MM_PER_INCH = 25.4


class UnreadableFile(Exception):
    """The bytes are not an image file we can open (``reason`` is a Japanese sentence for staff)."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class PageImage:
    index: int
    grey: np.ndarray  # uint8, 0 = black, square pixels at PIXELS_PER_MM


def pages(data: bytes) -> Iterator[PageImage]:
    """Each page of the file in order. Raises UnreadableFile before the first page when the file is bad;
    a page that fails to decode later ends the iteration with UnreadableFile too."""
    if data[:4] in (b"II*\x00", b"MM\x00*"):
        yield from _raster_pages(data, "TIFF")
    elif data[:5] == b"%PDF-":
        yield from _pdf_pages(data)
    elif data[:8] == b"\x89PNG\r\n\x1a\n" or data[:3] == b"\xff\xd8\xff":
        yield from _raster_pages(data, "PNG/JPEG")
    else:
        raise UnreadableFile("対応していない形式のファイルです（TIFF・PDF・PNG を受け付けます）")


def _raster_pages(data: bytes, kind: str) -> Iterator[PageImage]:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
            image.load()
    except Exception as exc:  # Pillow raises many types for damaged files
        raise UnreadableFile(f"{kind} ファイルが壊れていて開けません") from exc
    for index, frame in enumerate(ImageSequence.Iterator(image)):
        if index >= MAX_PAGES:
            raise UnreadableFile(f"ページ数が多すぎます（{MAX_PAGES} ページまで）")
        try:
            if frame.width * frame.height > MAX_PIXELS:
                raise UnreadableFile("画像が大きすぎます")
            grey = np.asarray(frame.convert("L"))
            dpi = frame.info.get("dpi")
        except UnreadableFile:
            raise
        except Exception as exc:
            raise UnreadableFile(f"{index + 1} ページ目が壊れていて読めません") from exc
        yield PageImage(index, _to_scale(grey, dpi))


def _pdf_pages(data: bytes) -> Iterator[PageImage]:
    import pypdfium2  # imported here: only PDFs need it

    try:
        document = pypdfium2.PdfDocument(data)
        count = len(document)
    except Exception as exc:
        raise UnreadableFile("PDF ファイルが壊れていて開けません") from exc
    if count == 0:
        raise UnreadableFile("PDF にページがありません")
    if count > MAX_PAGES:
        raise UnreadableFile(f"ページ数が多すぎます（{MAX_PAGES} ページまで）")
    try:
        for index in range(count):
            page = document[index]
            # Render so that the page's own size maps to PIXELS_PER_MM (PDF units are 1/72 inch).
            scale = PIXELS_PER_MM * MM_PER_INCH / 72.0
            bitmap = page.render(scale=scale, grayscale=True)
            grey = np.array(bitmap.to_pil().convert("L"))
            yield PageImage(index, grey)
    except UnreadableFile:
        raise
    except Exception as exc:
        raise UnreadableFile("PDF のページを描画できません") from exc
    finally:
        document.close()


def _to_scale(grey: np.ndarray, dpi: tuple[float, float] | None) -> np.ndarray:
    height, width = grey.shape
    x_per_mm, y_per_mm = _resolution(width, height, dpi)
    fx, fy = PIXELS_PER_MM / x_per_mm, PIXELS_PER_MM / y_per_mm
    if abs(fx - 1) < 0.02 and abs(fy - 1) < 0.02:
        return grey
    size = (max(1, round(width * fx)), max(1, round(height * fy)))
    interpolation = cv2.INTER_AREA if fx * fy < 1 else cv2.INTER_LINEAR
    return cv2.resize(grey, size, interpolation=interpolation)


def _resolution(width: int, height: int, dpi: tuple[float, float] | None) -> tuple[float, float]:
    """Pixels per mm across and down, from the file or, failing that, from the page's proportions."""
    if dpi and len(dpi) == 2 and all(isinstance(v, int | float) and v > 0 for v in dpi):
        x_per_mm, y_per_mm = dpi[0] / MM_PER_INCH, dpi[1] / MM_PER_INCH
        # Trust the file only where it makes the page about A4 (or FAX) wide: many programs
        # write a meaningless 72 dpi.
        if 150 <= width / x_per_mm <= 300 and 0.4 <= y_per_mm / x_per_mm <= 1.1:
            return x_per_mm, y_per_mm
    x_per_mm = width / layout.PAGE_WIDTH
    # A portrait A4 page is √2 times taller than wide; at standard FAX resolution it looks 0.7 times.
    y_per_mm = x_per_mm / 2 if height / width < 1.0 else x_per_mm
    return x_per_mm, y_per_mm
