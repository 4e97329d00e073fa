"""Helpers for the compliance tests (R7.5, R8.1, R8.2, R8.4): cheap scrypt, per-test spool folder,
bookings with known personal values, reading PDFs back with pdftotext, scanning files for values."""

from __future__ import annotations

import subprocess
from datetime import timedelta
from pathlib import Path

from madoguchi import booking
from madoguchi.extensions import db
from madoguchi.models import Channel
from tests.factories import make_applicant, make_slot, make_venue

# Values no other test uses, so a scan that finds them found ours.
NAME = "契約　満了子"
KANA = "ケイヤク　マンリョウコ"
PHONE = "080-9753-1864"
EMAIL = "manryo.keiyaku@example.jp"
ADDRESS = "東京都江東区豊洲九丁目八番七号"


def compliance_overrides(overrides: dict, tmp: Path) -> dict:
    overrides.update(
        {
            "EXPORT_SCRYPT_N": 2**10,  # the real cost (2**17) is the default; tests need speed only
            "EXPORT_SPOOL_DIR": str(tmp / "spool"),
        }
    )
    return overrides


def make_booking(venue=None, *, starts_in=timedelta(days=2), **values):
    """A booking (by phone) for a new applicant; returns (booking, applicant)."""
    venue = venue or make_venue()
    slot = make_slot(venue, starts_in=starts_in)
    applicant = make_applicant(
        venue,
        **{"name": NAME, "name_kana": KANA, "phone": PHONE, "email": EMAIL, "address": ADDRESS, **values},
    )
    made = booking.book(applicant, slot.id, actor=booking.Actor(Channel.PHONE))
    db.session.flush()
    return made, applicant


def pdf_text(data: bytes, tmp: Path, name: str = "report.pdf") -> str:
    assert data.startswith(b"%PDF-")
    path = tmp / name
    path.write_bytes(data)
    return subprocess.run(
        ["pdftotext", "-layout", str(path), "-"], check=True, capture_output=True, text=True
    ).stdout


def needles(*values: str) -> list[bytes]:
    """The byte forms a value could take in a file: UTF-8, and digits alone for numbers."""
    found = []
    for value in values:
        found.append(value.encode("utf-8"))
        digits = "".join(c for c in value if c.isdigit())
        if len(digits) >= 8:
            found.append(digits.encode())
        if "　" in value:
            found.append(value.replace("　", "").encode("utf-8"))
    return found


def files_containing(folder: Path, patterns: list[bytes]) -> list[str]:
    hits = []
    for path in folder.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            hits += [f"{path.relative_to(folder)}: {p!r}" for p in patterns if p in data]
    return hits
