"""The FAX booking sheet, 個人番号カード交付予約申込依頼書（ＦＡＸ用） (R5.1).

The PDF is read back as a person or a machine would: its text through pdftotext, its pages through
pdfinfo, and its picture through pdftoppm — the QR code decoded by zxing-cpp, the registration marks
and the phone boxes found as shapes in the rendered image.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from datetime import date, time, timedelta
from pathlib import Path

import cv2
import numpy as np
import pytest
import zxingcpp
from PIL import Image

from madoguchi import numbers
from madoguchi.fax import layout
from madoguchi.fax.sheet import TITLE, FaxSheet, TimeBand, fax_sheets

pytestmark = pytest.mark.skipif(
    not all(shutil.which(tool) for tool in ("pdftotext", "pdftoppm", "pdfinfo")),
    reason="poppler-utils (pdftotext, pdftoppm, pdfinfo) is not installed",
)

FIRST = date(2026, 11, 24)
BANDS = [
    TimeBand("午前", time(9, 0), time(12, 0)),
    TimeBand("午後", time(13, 0), time(17, 0)),
    TimeBand("夜間", time(17, 30), time(19, 30)),
]
DPI = 150


def _sheet(i: int = 0, **overrides) -> FaxSheet:
    values = dict(
        number=numbers.make(f"{(i * 7919 + 104729) % 10**11:011d}"),
        venue_name="東陽町会場（江東区文化センター）",
        dates=[FIRST + timedelta(days=d) for d in (0, 1, 2, 6, 7)],
        bands=BANDS,
        fax_number="03-3647-9999",
        call_center_phone="0120-123-456",
        city_name="江東区",
        applicant_name="江東 花子",
        applicant_address="東京都江東区東陽四丁目11番28号",
    )
    values.update(overrides)
    return FaxSheet(**values)


def _pdf(tmp_path: Path, sheets: list[FaxSheet]) -> Path:
    path = tmp_path / "sheets.pdf"
    data = fax_sheets(sheets)
    assert data.startswith(b"%PDF-")
    path.write_bytes(data)
    return path


def _text(path: Path) -> str:
    out = subprocess.run(
        ["pdftotext", "-raw", str(path), "-"], check=True, capture_output=True, text=True
    ).stdout
    return re.sub(r"\s+", "", out)


def _pages(tmp_path: Path, path: Path) -> list[np.ndarray]:
    subprocess.run(
        ["pdftoppm", "-r", str(DPI), "-gray", "-png", str(path), str(tmp_path / "page")], check=True
    )
    return [np.asarray(Image.open(png).convert("L")) for png in sorted(tmp_path.glob("page-*.png"))]


def _components(ink: np.ndarray) -> list[tuple[int, int, int, int, int]]:
    count, _, stats, _ = cv2.connectedComponentsWithStats(ink.astype(np.uint8), connectivity=8)
    return [tuple(row) for row in stats[1:].tolist()]


def test_one_a4_page_per_applicant_with_title_and_instructions(tmp_path):
    """R5.1: one A4 page per applicant, titled as the city's specification names the form, with the
    FAX number to send to, the call centre, the grouped number, the name to check and the rows."""
    sheets = [_sheet(0), _sheet(1, applicant_name="", applicant_address="")]
    path = _pdf(tmp_path, sheets)
    info = subprocess.run(["pdfinfo", str(path)], check=True, capture_output=True, text=True).stdout
    assert re.search(r"Pages:\s+2\b", info)
    assert re.search(r"Page size:\s+595\.\d+ x 841\.\d+ pts \(A4\)", info)
    text = _text(path)
    assert text.count(re.sub(r"\s+", "", TITLE)) >= 2  # each page's title (and footer)
    for sheet in sheets:
        assert numbers.display(sheet.number) in text
    assert "03-3647-9999" in text and "0120-123-456" in text
    assert "江東花子様" in text  # the first applicant checks their name
    assert "11月24日（火）" in text and "12月1日（火）" in text
    assert "氏名（自署）" in text and "電話番号" in text


def test_qr_code_scans_back_to_the_number_and_the_grid(tmp_path):
    """R5.1: the machine-readable code gives the 予約管理番号 (check digit intact) and what the rows
    and columns mean, so the reader needs no database."""
    sheets = [_sheet(2), _sheet(3, dates=[FIRST], bands=BANDS[:1])]
    pages = _pages(tmp_path, _pdf(tmp_path, sheets))
    assert len(pages) == 2
    for page, sheet in zip(pages, sheets, strict=True):
        codes = zxingcpp.read_barcodes(page, formats=zxingcpp.BarcodeFormat.QRCode)
        assert len(codes) == 1
        decoded = layout.decode_payload(codes[0].text)
        assert numbers.parse(decoded.number) == sheet.number
        assert decoded.dates == tuple(sheet.dates)
        assert decoded.bands == tuple(layout.Band(b.start, b.end) for b in sheet.bands)


def test_eleven_phone_boxes_and_four_corner_marks(tmp_path):
    """R5.1: eleven separate boxes for the phone digits, and solid corner squares (the top-left one
    larger, so a page turned upside down is recognised) where ``layout`` says they are."""
    (page,) = _pages(tmp_path, _pdf(tmp_path, [_sheet(4)]))
    ink = page < 128
    px = DPI / 25.4
    top, bottom = (
        round((layout.PHONE_TOP - 1) * px),
        round((layout.PHONE_TOP + layout.PHONE_BOX_HEIGHT + 1) * px),
    )
    boxes = [
        (x, w, h)
        for x, y, w, h, area in _components(ink[top:bottom])
        if abs(w - layout.PHONE_BOX_WIDTH * px) < 3 and abs(h - layout.PHONE_BOX_HEIGHT * px) < 3
    ]
    assert len(boxes) == layout.PHONE_DIGITS
    lefts = sorted(x for x, _, _ in boxes)
    assert all(
        b - a > layout.PHONE_BOX_WIDTH * px for a, b in zip(lefts, lefts[1:], strict=False)
    )  # not touching

    solid = [
        (x + w / 2, y + h / 2, w)
        for x, y, w, h, area in _components(ink)
        if area > 0.9 * w * h and w > 4 * px and abs(w - h) <= 2
    ]
    assert len(solid) == 4
    for (cx, cy), size in zip(layout.MARK_CENTRES, layout.MARK_SIZES, strict=True):
        match = [s for s in solid if abs(s[0] - cx * px) < 3 and abs(s[1] - cy * px) < 3]
        assert len(match) == 1 and abs(match[0][2] - size * px) < 3


def test_check_box_grid_has_a_box_per_date_and_band(tmp_path):
    """R5.1: one check box per (candidate date, time band), at the place the reader measures."""
    sheet = _sheet(5)
    (page,) = _pages(tmp_path, _pdf(tmp_path, [sheet]))
    ink = page < 128
    px = DPI / 25.4
    for row in range(len(sheet.dates)):
        for column in range(len(sheet.bands)):
            box = layout.check_box(row, column, len(sheet.bands))
            x, y, w = round(box.left * px), round(box.top * px), round(box.width * px)
            edges = ink[y - 1 : y + 2, x : x + w].any(axis=0), ink[y : y + w, x - 1 : x + 2].any(axis=1)
            assert all(edge.mean() > 0.9 for edge in edges)
            inside = ink[y + 4 : y + w - 4, x + 4 : x + w - 4]
            assert inside.mean() == 0  # the interior is empty for the resident's mark


def test_refuses_a_number_with_a_wrong_check_digit_and_too_many_rows():
    """R5.1: a sheet is never printed for a wrong number (every reply would go astray), nor with
    more dates or bands than the page holds."""
    good = _sheet(6)
    wrong = good.number[:-1] + str((int(good.number[-1]) + 1) % 10)
    with pytest.raises(numbers.InvalidReservationNumber):
        fax_sheets([_sheet(6, number=wrong)])
    with pytest.raises(ValueError):
        fax_sheets([_sheet(6, dates=[FIRST + timedelta(days=d) for d in range(layout.MAX_DATES + 1)])])
    with pytest.raises(ValueError):
        fax_sheets([_sheet(6, dates=[FIRST + timedelta(days=1), FIRST])])  # not ascending
    with pytest.raises(ValueError):
        fax_sheets([])


def test_payload_format_round_trips_and_refuses_foreign_text():
    """R5.1/R5.2: the documented code format, ``MF1/<number>/<YYYYMMDD>/<offsets>/<bands>``."""
    sheet = _sheet(7)
    payload = layout.encode_payload(sheet.layout())
    assert payload == f"MF1/{sheet.number}/20261124/0.1.2.6.7/0900-1200.1300-1700.1730-1930"
    assert layout.decode_payload(payload) == sheet.layout()
    with pytest.raises(layout.PayloadError) as foreign:
        layout.decode_payload("https://example.jp/")
    assert foreign.value.reason == "foreign"
    for broken in (
        "MF1/123/20261124/0/0900-1200",
        "MF2" + payload[3:],
        payload.replace("20261124", "20261341"),
    ):
        with pytest.raises(layout.PayloadError) as malformed:
            layout.decode_payload(broken)
        assert malformed.value.reason == "malformed"
