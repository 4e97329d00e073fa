"""Test data factories: ``make_x(**overrides)`` (the Indico pattern). Call inside an app context."""

from __future__ import annotations

import itertools
from datetime import UTC, date, datetime, time, timedelta

from madoguchi import applicants, dates, numbers
from madoguchi.extensions import db
from madoguchi.models import Slot, Venue

_serial = itertools.count(1)


def make_venue(**overrides) -> Venue:
    n = next(_serial)
    values = dict(
        code=f"venue{n}",
        name=f"テスト会場{n}",
        floor="2階",
        address="東京都江東区東陽4丁目11番28号",
        map_url="https://www.openstreetmap.org/",
        directions="駅から徒歩5分",
        open_time=time(9, 0),
        close_time=time(17, 0),
        slot_minutes=30,
        slot_capacity=5,
        open_weekdays="0123456",
    )
    values.update(overrides)
    venue = Venue(**values)
    db.session.add(venue)
    db.session.flush()
    return venue


def make_slot(
    venue: Venue, *, starts_in: timedelta = timedelta(days=2), capacity: int = 5, taken: int = 0
) -> Slot:
    # Distinct start times (unique per venue) that stay within a minute of ``starts_in``.
    start = (dates.now() + starts_in).replace(second=0, microsecond=0) + timedelta(
        milliseconds=next(_serial) * 7 % 60_000
    )
    slot = Slot(
        venue_id=venue.id,
        starts_at=start,
        ends_at=start + timedelta(minutes=30),
        capacity=capacity,
        taken=taken,
    )
    db.session.add(slot)
    db.session.flush()
    return slot


def new_number() -> str:
    return numbers.make(f"{next(_serial) + 10**9:011d}")


def make_applicant(venue: Venue | None = None, **overrides):
    values = dict(
        number=new_number(),
        name="江東　太郎",
        name_kana="コウトウ　タロウ",
        birth_date=date(1980, 4, 1),
        sex="男",
        postal_code="135-8383",
        address="東京都江東区東陽4丁目11番28号",
        email="taro@example.jp",
        phone="090-1234-5678",
        source="roster",
    )
    values.update(overrides)
    applicant = applicants.register(**values)
    if venue is not None:
        applicant.venue_id = venue.id
        db.session.flush()
    return applicant


def utc(*args) -> datetime:
    return datetime(*args, tzinfo=UTC)


def make_staff(roles=("operator",), venue=None, **overrides):
    """A staff member on duty today with an enrolled second factor; ``.totp_secret`` is readable."""
    import pyotp

    from madoguchi import auth

    today = dates.now().astimezone(dates.TOKYO).date()
    n = next(_serial)
    values = dict(
        login_id=f"staff{n}",
        name=f"職員{n}",
        affiliation="コールセンター",
        roles=roles,
        venue_id=venue.id if venue is not None else None,
        duty_start=today - timedelta(days=30),
        duty_end=today + timedelta(days=30),
        password=STAFF_PASSWORD,
    )
    values.update(overrides)
    staff = auth.create_staff(**values)
    staff.totp_secret = pyotp.random_base32()
    staff.totp_enrolled_at = dates.now()
    db.session.flush()
    return staff


STAFF_PASSWORD = "kiwi-lantern-orbit-2026"
