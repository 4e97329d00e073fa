"""FAX sheets for tests: a real sheet printed for a seeded applicant, filled in with ticks and
hand-written digits (benchmarks/fax_corpus.py's pen and data set), sent through a simulated FAX."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

import numpy as np

from benchmarks import fax_corpus
from madoguchi import dates
from madoguchi.extensions import db
from madoguchi.fax import layout, sheet
from madoguchi.models import Slot
from tests.factories import make_applicant, make_venue

BANDS = (sheet.TimeBand("午前", time(9, 0), time(12, 0)), sheet.TimeBand("午後", time(13, 0), time(17, 0)))


@dataclass(frozen=True)
class Sheet:
    applicant_id: str
    number: str
    days: tuple[date, ...]
    slots: dict[tuple[date, str], int]  # (day, band start) → slot id


def _slot_at(venue, day: date, hour: int, capacity: int) -> Slot:
    starts = datetime.combine(day, time(hour, 0), tzinfo=dates.TOKYO).astimezone(UTC)
    slot = Slot(
        venue_id=venue.id,
        starts_at=starts,
        ends_at=starts + timedelta(minutes=30),
        capacity=capacity,
        taken=0,
    )
    db.session.add(slot)
    db.session.flush()
    return slot


def seed_sheet(app, *, capacity=3) -> Sheet:
    with app.app_context():
        venue = make_venue()
        person = make_applicant(venue, phone=None)
        today = dates.today()
        days = (today + timedelta(days=8), today + timedelta(days=9), today + timedelta(days=10))
        slots = {}
        for day in days:
            slots[(day, "09:00")] = _slot_at(venue, day, 10, capacity).id
            slots[(day, "13:00")] = _slot_at(venue, day, 14, capacity).id
        db.session.commit()
        return Sheet(person.id, person.reservation_number, days, slots)


def filled_fax(
    seeded: Sheet, marked: list[tuple[int, int]], phone: str, *, kind="g4", rotated=False
) -> bytes:
    """The printed sheet, ticked in ``marked`` (row, column) with ``phone`` written, faxed."""
    rng = np.random.default_rng(7)
    printed = sheet.FaxSheet(
        number=seeded.number,
        venue_name="テスト会場",
        dates=seeded.days,
        bands=BANDS,
        fax_number="03-0000-0001",
        call_center_phone="03-0000-0000",
        city_name="江東区",
    )
    image = fax_corpus.render(sheet.fax_sheets([printed]))
    for row, column in marked:
        fax_corpus.draw_mark(image, layout.check_box(row, column, len(BANDS)), "tick", rng)
    pool = fax_corpus.DigitPool(rng)
    for position, ch in enumerate(phone):
        fax_corpus.draw_digit(image, layout.phone_box(position), pool.take(int(ch)), rng)
    page = fax_corpus.fax(image, rng, resolution="fine", skew=1.5, speckle=0.001, rotated=rotated)
    return fax_corpus.encode([page], kind, "fine")
