"""A week of a venue's slots with the places left, as residents and operators see it (R3.3, R4.1).

Both the residents' calendar and the call-center console show the same week: the same opening
days, the same places left (lapsed holds count as free), the same limit of how far ahead one books.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

from . import booking, dates, venues
from .models import Slot, Venue

BOOKING_WEEKS = 4


@dataclass(frozen=True)
class Week:
    days: list[date]
    by_day: dict[date, list[tuple[Slot, int]]]  # future slots with places left, per Tokyo day
    closed: dict[date, str | None]  # why a day has no slots (holiday, year end…)
    previous: date | None  # first day of the week before, if it can still be booked
    following: date | None

    def places(self) -> dict[int, int]:
        return {slot.id: left for entries in self.by_day.values() for slot, left in entries}


def parse_first_day(text: str | None) -> date:
    """The first day asked for (ISO date), or today; kept within the bookable period."""
    today = dates.today()
    try:
        first = date.fromisoformat(text) if text else today
    except ValueError:
        first = today
    return min(max(first, today), today + timedelta(weeks=BOOKING_WEEKS))


def week(venue: Venue, first: date) -> Week:
    today = dates.today()
    last_day = today + timedelta(weeks=BOOKING_WEEKS)
    days = [first + timedelta(days=i) for i in range(7) if first + timedelta(days=i) <= last_day]
    day_slots = venues.slots_between(venue.id, days[0], days[-1])
    left = booking.places_left([s.id for s in day_slots])
    now = dates.now()
    by_day: dict[date, list[tuple[Slot, int]]] = {day: [] for day in days}
    for slot in day_slots:
        # Capacity 0 marks a slot an administrator closed (calendar_admin): not offered at all.
        if slot.starts_at > now and slot.capacity > 0:
            by_day[dates.tokyo(slot.starts_at).date()].append((slot, left.get(slot.id, 0)))
    return Week(
        days=days,
        by_day=by_day,
        closed={day: venues.closed_reason(venue, day) for day in days},
        previous=(first - timedelta(days=7)) if first > today else None,
        following=(first + timedelta(days=7)) if first + timedelta(days=7) <= last_day else None,
    )
