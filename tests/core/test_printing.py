"""Printed forms (R6.2 各会場送付台帳, R6.4 再発行用交付通知書 and address labels).

The PDFs are read back the way a person or a scanner would: text through poppler's pdftotext, pages
through pdfinfo, and the barcode by rendering the page with pdftoppm and decoding it with zxing-cpp.
"""

from __future__ import annotations

import random
import re
import shutil
import subprocess
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest

from madoguchi import dates, numbers
from madoguchi.printing import (
    Contact,
    LedgerRow,
    Notice,
    address_labels,
    reissue_notices,
    shipping_ledger,
)
from madoguchi.printing import notices as notices_module

pytestmark = pytest.mark.skipif(
    not all(shutil.which(tool) for tool in ("pdftotext", "pdftoppm", "pdfinfo")),
    reason="poppler-utils (pdftotext, pdftoppm, pdfinfo) is not installed",
)

FAMILY = ("佐藤", "鈴木", "高橋", "田中", "伊藤", "渡辺", "山本", "中村", "小林", "加藤", "吉田", "山田")
GIVEN = ("太郎", "花子", "一郎", "美咲", "健太", "陽菜", "翔", "結衣", "大輔", "さくら")
VENUE = "東陽町会場（江東区文化センター）"
CITY = "江東区"
FIRST_DAY = date(2026, 11, 24)
LAST_DAY = date(2026, 11, 30)
PRINTED_AT = datetime(2026, 11, 20, 5, 3, tzinfo=UTC)  # 14:03 in Tokyo
CONTACT = Contact(
    city_name=CITY,
    call_center_phone="0120-123-456",
    call_center_hours="平日 8:30〜17:15",
    web_url="https://yoyaku.example.jp/mynumber",
)
A4_POINTS = (595.3, 841.9)
POSTCARD_POINTS = (283.5, 419.5)


# --- helpers ---------------------------------------------------------------------------------------


def _write(tmp_path: Path, pdf: bytes, name: str = "out.pdf") -> Path:
    assert pdf.startswith(b"%PDF-")
    path = tmp_path / name
    path.write_bytes(pdf)
    return path


def _text(path: Path, *args: str) -> str:
    return subprocess.run(
        ["pdftotext", *args, str(path), "-"], check=True, capture_output=True, text=True
    ).stdout


def _pages_text(path: Path) -> list[str]:
    """Text of each page (-layout), in page order."""
    pages = _text(path, "-layout").split("\f")
    return pages[:-1] if pages and not pages[-1].strip() else pages


def _compact(text: str) -> str:
    """All whitespace removed: wrapped lines of a cell join up again (read with -raw)."""
    return re.sub(r"\s+", "", text)


def _info(path: Path) -> dict[str, str]:
    out = subprocess.run(["pdfinfo", str(path)], check=True, capture_output=True, text=True).stdout
    return dict(line.split(":", 1) for line in out.splitlines() if ":" in line)


def _page_count(path: Path) -> int:
    return int(_info(path)["Pages"].strip())


def _page_size(path: Path) -> tuple[float, float]:
    m = re.match(r"\s*([\d.]+) x ([\d.]+) pts", _info(path)["Page size"])
    assert m
    return float(m.group(1)), float(m.group(2))


def _words(path: Path) -> list[tuple[int, float, float, float, float, str]]:
    """(page, xMin, yMin, xMax, yMax, text) of every word, from pdftotext -bbox."""
    html = _text(path, "-bbox")
    words = []
    for page_no, page in enumerate(html.split("<page ")[1:], start=1):
        for m in re.finditer(
            r'<word xMin="([\d.]+)" yMin="([\d.]+)" xMax="([\d.]+)" yMax="([\d.]+)">([^<]*)</word>', page
        ):
            words.append((page_no, *(float(v) for v in m.groups()[:4]), m.group(5)))
    return words


def _number(i: int) -> str:
    return numbers.make(f"{(i * 7919 + 104729) % 10**11:011d}")


def _rows(count: int, *, seed: int = 7) -> list[LedgerRow]:
    start = datetime(2026, 11, 24, 9, 0, tzinfo=dates.TOKYO)
    rows = [
        LedgerRow(
            slot_start=start + timedelta(minutes=30 * (i // 4)),  # four residents per slot
            number=_number(i),
            name=f"{FAMILY[i % len(FAMILY)]} {GIVEN[(i // len(FAMILY)) % len(GIVEN)]}",
            address=f"東京都江東区東陽{i % 7 + 1}丁目{i + 1}番{i % 30 + 1}号",
        )
        for i in range(count)
    ]
    random.Random(seed).shuffle(rows)
    return rows


def _ledger(tmp_path: Path, rows: list[LedgerRow]) -> Path:
    pdf = shipping_ledger(
        venue_name=VENUE,
        first_day=FIRST_DAY,
        last_day=LAST_DAY,
        rows=rows,
        printed_at=PRINTED_AT,
        city_name=CITY,
    )
    return _write(tmp_path, pdf, "ledger.pdf")


def _sets(pages: list[str]) -> tuple[list[str], list[str]]:
    """Split the ledger's pages into the 原本 set and the 控え set (same length)."""
    assert len(pages) % 2 == 0
    half = len(pages) // 2
    return pages[:half], pages[half:]


def _notices(count: int) -> list[Notice]:
    return [
        Notice(
            number=_number(i),
            name=f"{FAMILY[i % len(FAMILY)]} {GIVEN[i % len(GIVEN)]}",
            address=f"東京都江東区南砂{i % 7 + 1}丁目{i + 1}番{i + 2}号",
            postal_code="1360076" if i % 2 == 0 else "",
            venue_name=VENUE,
            venue_address="東京都江東区東陽四丁目11番3号",
        )
        for i in range(count)
    ]


# --- 各会場送付台帳 (R6.2) ------------------------------------------------------------------------------


def test_ledger_is_a4_and_lists_every_number_name_and_address(tmp_path):
    """R6.2: every 予約管理番号 (1234-5678-9012), 氏名 and 住所 is on the A4 ledger as real text."""
    rows = _rows(30)
    path = _ledger(tmp_path, rows)
    assert _page_size(path) == pytest.approx(A4_POINTS, abs=1)
    original, copy = _sets(_pages_text(path))
    raw = _compact(_text(path, "-raw"))
    for row in rows:
        assert numbers.display(row.number) in "".join(original)
        assert numbers.display(row.number) in "".join(copy)
        assert _compact(row.name) in raw
        assert _compact(row.address) in raw
    first = original[0]
    for heading in ("各会場送付台帳", CITY, VENUE, "令和8年11月24日（火）", "令和8年11月30日（月）", "14:03"):
        assert heading in first
    for column in ("No.", "予約日時", "予約管理番号", "氏名", "住所", "確認"):
        assert column in first


def test_ledger_rows_are_sorted_by_slot_then_number(tmp_path):
    """R6.2: rows come out by 予約日時 then 予約管理番号, whatever order (and time zone) they came in."""
    rows = _rows(40)  # slots 09:00 to 13:30
    # Instants written in UTC sort with their Tokyo peers, not by their wall-clock digits:
    # 00:00Z is 09:00 in Tokyo (first slot, smallest number), 03:15Z is 12:15 (mid-list).
    utc_first = LedgerRow(
        datetime(2026, 11, 24, 0, 0, tzinfo=UTC), numbers.make("00000000000"), "早朝 一番", "江東区1"
    )
    utc_noon = LedgerRow(
        datetime(2026, 11, 24, 3, 15, tzinfo=UTC), numbers.make("00000000001"), "正午 二番", "江東区2"
    )
    rows += [utc_noon, utc_first]
    path = _ledger(tmp_path, rows)
    expected = sorted(rows, key=lambda r: (r.slot_start, r.number))
    assert expected[0] == utc_first
    assert 0 < expected.index(utc_noon) < len(expected) - 1
    raw = _text(path, "-raw")
    original = raw.split("控え（会場保管用）")[0]
    positions = [original.index(numbers.display(r.number)) for r in expected]
    assert positions == sorted(positions)
    # Running No. 1..n follows that order.
    layout = _pages_text(path)[0]
    first_line = next(line for line in layout.splitlines() if numbers.display(expected[0].number) in line)
    assert first_line.split()[0] == "1"


def test_ledger_slot_is_shown_in_tokyo_time(tmp_path):
    """R6.2: 予約日時 reads like 11月24日（火） 10:00 in Tokyo time, even from a UTC datetime."""
    row = LedgerRow(datetime(2026, 11, 24, 1, 0, tzinfo=UTC), _number(1), "江東 太郎", "江東区東陽4-11-28")
    path = _ledger(tmp_path, [row])
    assert "11月24日（火）10:00" in _compact(_text(path, "-raw"))


def test_ledger_has_original_then_copy_marked_on_every_page(tmp_path):
    """R6.2: a complete 原本 set (送付用), then an identical set marked 控え（会場保管用） on every page."""
    rows = _rows(60)
    path = _ledger(tmp_path, rows)
    original, copy = _sets(_pages_text(path))
    assert len(original) >= 2
    for page in original:
        assert "原本（送付用）" in page
        assert "控え" not in page
    for page in copy:
        assert "控え（会場保管用）" in page
        assert "原本（送付用）" not in page
    # Identical content apart from the mark.
    for a, b in zip(original, copy, strict=True):
        assert _compact(a.replace("原本（送付用）", "")) == _compact(b.replace("控え（会場保管用）", ""))


def test_ledger_numbers_pages_per_set_and_totals(tmp_path):
    """R6.2: each set has "1 / N ページ", per-page counts adding up, and 合計 N 件 + signatures on its last page."""
    rows = _rows(60)
    path = _ledger(tmp_path, rows)
    for pages in _sets(_pages_text(path)):
        n = len(pages)
        counts = []
        for k, page in enumerate(pages, start=1):
            assert f"{k} / {n} ページ" in page
            m = re.search(r"このページ (\d+) 件", page)
            assert m, page
            counts.append(int(m.group(1)))
            if k < n:
                assert "合計" not in page
        assert sum(counts) == len(rows)
        assert all(counts)  # no page without rows, not even the closing one
        last = pages[-1]
        assert f"合計 {len(rows)} 件" in last
        assert "送付者" in last and "受領者" in last
        assert "送付日" in last and "受領日" in last


def test_ledger_closing_block_never_stands_alone(tmp_path):
    """R6.2: whatever the row count, the last page of each set shows rows as well as 合計 and signatures."""
    # The closing block is pushed off a page when the rows almost fill it: probe counts around one full page.
    full_page = int(re.search(r"このページ (\d+) 件", _pages_text(_ledger(tmp_path, _rows(60)))[0]).group(1))
    for count in range(full_page - 4, full_page + 2):
        pages = _pages_text(_ledger(tmp_path, _rows(count)))
        for part in _sets(pages):
            assert f"合計 {count} 件" in part[-1]
            m = re.search(r"このページ (\d+) 件", part[-1])
            assert m and int(m.group(1)) > 0, count


def test_ledger_120_rows_paginate_with_repeated_header_row(tmp_path):
    """R6.2: 120 rows run over several A4 pages; the column header row is repeated on each page."""
    rows = _rows(120)
    path = _ledger(tmp_path, rows)
    pages = _pages_text(path)
    assert _page_count(path) == len(pages)
    original, copy = _sets(pages)
    assert len(original) >= 4
    for page in pages:
        assert page.count("予約管理番号") == 1
        assert "予約日時" in page and "住所" in page
    numbers_shown = re.findall(r"\d{4}-\d{4}-\d{4}", "".join(original))
    assert sorted(numbers_shown) == sorted(numbers.display(r.number) for r in rows)
    assert f"合計 {len(rows)} 件" in original[-1]
    assert f"合計 {len(rows)} 件" in copy[-1]


def test_ledger_wraps_long_address_and_name_without_cutting(tmp_path):
    """R6.2: a 120-character address and a long name wrap inside their cells; nothing is cut or off the page."""
    address = "東京都江東区東陽四丁目11番28号" + "".join(f"第{k}棟" for k in range(1, 40))
    address = address[:120]
    assert len(address) == 120
    name = "寿限無寿限無五劫の擦り切れ海砂利水魚の水行末雲来末風来末食う寝る処に住む処"
    rows = [
        *_rows(5),
        LedgerRow(datetime(2026, 11, 24, 9, 0, tzinfo=dates.TOKYO), _number(99), name, address),
    ]
    path = _ledger(tmp_path, rows)
    raw = _compact(_text(path, "-raw"))
    assert raw.count(address) == 2  # once per set, complete
    assert raw.count(name) == 2
    width, height = _page_size(path)
    for _, x_min, y_min, x_max, y_max, text in _words(path):
        assert x_min >= 30 and x_max <= width - 30, text  # inside the 12 mm side margins
        assert y_min >= 25 and y_max <= height - 25, text  # inside the 10 mm top/bottom margins


def test_ledger_escapes_markup_in_personal_text(tmp_path):
    """R6.2: names and addresses are printed literally, even with characters that look like markup."""
    rows = [
        LedgerRow(
            datetime(2026, 11, 24, 9, 0, tzinfo=dates.TOKYO), _number(3), "A&B <b>C</b>", "1-2-3 <x> & y"
        )
    ]
    raw = _text(_ledger(tmp_path, rows), "-raw")
    assert "A&B <b>C</b>" in raw
    assert "1-2-3 <x> & y" in raw


def test_ledger_without_rows_says_so(tmp_path):
    """R6.2: an empty ledger still prints both sets: 対象はありません, 合計 0 件."""
    path = _ledger(tmp_path, [])
    pages = _pages_text(path)
    assert len(pages) == 2
    for page in pages:
        assert "対象はありません" in page
        assert "合計 0 件" in page
        assert "1 / 1 ページ" in page
    assert "原本（送付用）" in pages[0]
    assert "控え（会場保管用）" in pages[1]


def test_ledger_refuses_malformed_numbers():
    """R6.2: only 12-digit 予約管理番号 are printed (a formatted or short number is a caller bug)."""
    row = LedgerRow(datetime(2026, 11, 24, 9, 0, tzinfo=dates.TOKYO), "1234-5678-9012", "江東 太郎", "江東区")
    with pytest.raises(ValueError, match="12"):
        shipping_ledger(
            venue_name=VENUE,
            first_day=FIRST_DAY,
            last_day=LAST_DAY,
            rows=[row],
            printed_at=PRINTED_AT,
            city_name=CITY,
        )


# --- 再発行用交付通知書 (R6.4) ---------------------------------------------------------------------------


def _notice_pdf(tmp_path: Path, notices: list[Notice]) -> Path:
    return _write(tmp_path, reissue_notices(notices, CONTACT, issued_on=date(2026, 11, 20)), "notices.pdf")


def test_notices_are_postcards_one_page_each(tmp_path):
    """R6.4: ハガキサイズ (100 × 148 mm), one page per notice, each page about its own resident."""
    items = _notices(3)
    path = _notice_pdf(tmp_path, items)
    assert _page_size(path) == pytest.approx(POSTCARD_POINTS, abs=1)
    pages = _pages_text(path)
    assert _page_count(path) == len(pages) == 3
    for page, notice in zip(pages, items, strict=True):
        assert numbers.display(notice.number) in page
        for other in items:
            if other is not notice:
                assert numbers.display(other.number) not in page


def test_notice_text_has_reissue_mark_number_addressee_and_contact(tmp_path):
    """R6.4: 再発行 is evident; 予約番号, あて先, 注意事項 and the コールセンター (phone, hours) are printed."""
    items = _notices(2)
    path = _notice_pdf(tmp_path, items)
    pages = _pages_text(path)
    for page, notice in zip(pages, items, strict=True):
        compact = _compact(page)
        assert "再発行" in page
        assert "個人番号カード交付通知書（再発行）" in compact
        assert numbers.display(notice.number) in page
        assert notice.number in page  # human-readable digits under the barcode
        assert _compact(f"{notice.name} 様") in compact
        assert _compact(notice.address) in compact
        assert CONTACT.call_center_phone in page
        assert _compact(CONTACT.call_center_hours) in compact
        assert CONTACT.web_url in page
        assert notice.venue_name in page
        assert _compact(notice.venue_address) in compact
        assert "本人確認書類" in compact and "予約が必要" in compact
        assert "令和8年11月20日" in page
    assert "〒136-0076" in pages[0]  # postal code given
    assert "〒" not in pages[1]  # no postal code: no 〒 line


def test_notice_with_very_long_address_stays_on_one_page(tmp_path):
    """R6.4: a long address shrinks to fit; the notice never spills onto a second card."""
    long_address = "東京都江東区南砂二丁目3番4号" + "".join(f"第{k}号棟" for k in range(1, 30))
    item = Notice(_number(5), "江東 太郎", long_address, "1360076", VENUE, "東京都江東区東陽四丁目11番3号")
    path = _notice_pdf(tmp_path, [item])
    assert _page_count(path) == 1
    assert _compact(long_address) in _compact(_text(path, "-raw"))


def _decode_pages(tmp_path: Path, pdf: Path, dpi: int) -> list[list]:
    zxingcpp = pytest.importorskip("zxingcpp", reason="zxing-cpp decodes the rendered barcode")
    image_module = pytest.importorskip("PIL.Image", reason="pillow opens the rendered page")
    prefix = tmp_path / f"page{dpi}"
    subprocess.run(["pdftoppm", "-r", str(dpi), "-gray", "-png", str(pdf), str(prefix)], check=True)
    results = []
    for png in sorted(tmp_path.glob(f"page{dpi}-*.png")):
        image = image_module.open(png)
        results.append((image, zxingcpp.read_barcodes(image)))
    return results


@pytest.mark.parametrize("dpi", [300, 200], ids=["300dpi", "200dpi-office-scanner"])
def test_notice_barcode_scans_back_to_the_number(tmp_path, dpi):
    """R6.4: the Code 128 barcode on each printed notice decodes to its 12-digit 予約管理番号."""
    items = _notices(3)
    path = _notice_pdf(tmp_path, items)
    decoded = _decode_pages(tmp_path, path, dpi)
    assert len(decoded) == len(items)
    for (_, barcodes), notice in zip(decoded, items, strict=True):
        assert [b.text for b in barcodes] == [notice.number]
        assert barcodes[0].format.name == "Code128"


def test_notice_barcode_modules_and_quiet_zones(tmp_path):
    """R6.4: bars are at least 0.33 mm per module, with 10 modules of white on both sides."""
    path = _notice_pdf(tmp_path, _notices(1))
    dpi = 300
    [(image, barcodes)] = _decode_pages(tmp_path, path, dpi)
    position = barcodes[0].position
    left = min(position.top_left.x, position.bottom_left.x)
    right = max(position.top_right.x, position.bottom_right.x)
    modules = 11 + 6 * 11 + 11 + 13  # start C, six digit pairs, check, stop
    module_px = (right - left) / modules
    assert module_px * 25.4 / dpi >= 0.33
    assert notices_module.BAR_MODULE / 72 * 25.4 >= 0.33  # the design values themselves
    assert notices_module.BAR_QUIET >= 10 * notices_module.BAR_MODULE
    y = (position.top_left.y + position.bottom_left.y) // 2
    quiet = int(10 * module_px)
    gray = image.convert("L")
    assert all(gray.getpixel((x, y)) > 200 for x in range(left - quiet, left - 1))
    assert all(gray.getpixel((x, y)) > 200 for x in range(right + 2, right + quiet))


def test_notices_refuse_an_empty_list():
    """R6.4: nothing to print is a caller error, not an empty PDF."""
    with pytest.raises(ValueError, match="no notices"):
        reissue_notices([], CONTACT, issued_on=date(2026, 11, 20))


# --- address labels (R6.4) -------------------------------------------------------------------------


def test_labels_twelve_per_a4_sheet(tmp_path):
    """R6.4: address labels come 12 to an A4 sheet (2 × 6); 13 residents take two sheets."""
    items = _notices(13)
    path = _write(tmp_path, address_labels(items), "labels.pdf")
    assert _page_count(path) == 2
    assert _page_size(path) == pytest.approx(A4_POINTS, abs=1)
    pages = [_compact(page) for page in _pages_text(path)]
    for index, notice in enumerate(items):
        page = pages[index // notices_module.LABELS_PER_PAGE]
        assert _compact(f"{notice.name} 様") in page
        assert _compact(notice.address) in page
        assert numbers.display(notice.number) in page
    assert sum(page.count("様") for page in pages[:1]) == 12
    assert sum(page.count("様") for page in pages[1:]) == 1
    assert pages[0].count("〒136-0076") == 6  # every other resident has a postal code


def test_labels_print_inside_the_label_cells(tmp_path):
    """R6.4: all label text lies inside one of the 12 label rectangles (not in the sheet margins)."""
    n = notices_module
    path = _write(tmp_path, address_labels(_notices(12)), "labels.pdf")
    mm = 72 / 25.4
    cells = []
    for row in range(n.LABEL_ROWS):
        for column in range(n.LABEL_COLUMNS):
            x0 = n.LABEL_LEFT + column * (n.LABEL_WIDTH + n.LABEL_COLUMN_GAP)
            y0 = n.LABEL_TOP + row * (n.LABEL_HEIGHT + n.LABEL_ROW_GAP)  # from the top, like pdftotext
            cells.append(
                (x0 + 1 * mm, y0 + 1 * mm, x0 + n.LABEL_WIDTH - 1 * mm, y0 + n.LABEL_HEIGHT - 1 * mm)
            )
    used = set()
    for _, x_min, y_min, x_max, y_max, text in _words(path):
        inside = [
            i
            for i, (a, b, c, d) in enumerate(cells)
            if a <= x_min and x_max <= c and b <= y_min and y_max <= d
        ]
        assert inside, text
        used.add(inside[0])
    assert used == set(range(12))


def test_labels_refuse_an_empty_list():
    """R6.4: no labels to print is a caller error."""
    with pytest.raises(ValueError, match="no labels"):
        address_labels([])
