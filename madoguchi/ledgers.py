"""What goes on paper for the venues (R6.2, R6.4): the shipping ledger's rows, and the people a
re-issue notice goes to (未受領: booked and did not come, or never booked).

This module reads the store and decrypts; ``madoguchi.printing`` lays the pages out. Callers audit.
"""

from __future__ import annotations

import enum
from collections import defaultdict
from datetime import date, datetime

from sqlalchemy import select

from . import dates
from .extensions import db
from .models import LIVE, Applicant, Booking, Slot, Status, Venue
from .printing import LedgerRow, Notice


def ledger_rows(venue_id: int, first: date, last: date) -> list[LedgerRow]:
    """The cards to send to a venue for bookings from ``first`` to ``last`` (Tokyo days), in slot
    then 予約管理番号 order (the order the venue works through its day)."""
    start, _ = dates.day_bounds(first)
    _, end = dates.day_bounds(last)
    bookings = db.session.scalars(
        select(Booking)
        .join(Slot, Booking.slot_id == Slot.id)
        .where(
            Slot.venue_id == venue_id,
            Slot.starts_at >= start,
            Slot.starts_at < end,
            Booking.status.in_(LIVE),
        )
    ).all()
    rows = [
        LedgerRow(
            slot_start=dates.tokyo(b.slot.starts_at),
            number=b.applicant.reservation_number,
            name=b.applicant.name or "",
            address=b.applicant.address or "",
        )
        for b in bookings
    ]
    return sorted(rows, key=lambda r: (r.slot_start, r.number))


class Uncollected(enum.StrEnum):
    NO_SHOW = "no_show"  # booked, and the day passed without a visit
    NOT_BOOKED = "not_booked"  # on the roster, no booking in force


def uncollected(venue_id: int, now: datetime, kinds: set[Uncollected]) -> list[tuple[Applicant, Uncollected]]:
    """Applicants of a venue who have not received their card, by kind, in 予約管理番号 order.

    A person with a live booking still to come is not uncollected; neither is one who has the card.
    """
    applicants = db.session.scalars(select(Applicant).where(Applicant.venue_id == venue_id)).all()
    history: dict[str, list[tuple[str, datetime]]] = defaultdict(list)
    for applicant_id, status, starts_at in db.session.execute(
        select(Booking.applicant_id, Booking.status, Slot.starts_at)
        .join(Slot, Booking.slot_id == Slot.id)
        .join(Applicant, Booking.applicant_id == Applicant.id)
        .where(Applicant.venue_id == venue_id)
    ):
        history[applicant_id].append((status, starts_at))
    found = []
    for applicant in applicants:
        kind = _classify(history.get(applicant.id, []), now)
        if kind is not None and kind in kinds:
            found.append((applicant, kind))
    return sorted(found, key=lambda pair: pair[0].reservation_number)


def _classify(bookings: list[tuple[str, datetime]], now: datetime) -> Uncollected | None:
    if any(status == Status.HANDED_OVER for status, _ in bookings):
        return None
    start_of_today, _ = dates.day_bounds(dates.tokyo(now).date())
    if any(status in LIVE and starts_at >= start_of_today for status, starts_at in bookings):
        return None  # still to come
    missed = any(
        status == Status.NO_SHOW or (status in LIVE and starts_at < start_of_today)
        for status, starts_at in bookings
    )
    return Uncollected.NO_SHOW if missed else Uncollected.NOT_BOOKED


def notice_for(applicant: Applicant, venue: Venue) -> Notice:
    return Notice(
        number=applicant.reservation_number,
        name=applicant.name or "",
        address=applicant.address or "",
        postal_code=applicant.postal_code or "",
        venue_name=venue.display_name,
        venue_address=venue.address or "",
    )
