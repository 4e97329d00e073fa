"""A week of a venue's slots with the places left, as residents and operators see it (R3.3, R4.1).

Both the residents' calendar and the call-center console show the same week: the same opening
days, the same places left (lapsed holds count as free), the same limit of how far ahead one books.

The residents' calendar is the page a burst reloads most (R9.2): it may take the week's slots —
which exist, their times and capacities, the closed days — from a per-process cache for up to
``CALENDAR_SLOTS_SECONDS``; the places left are read afresh for every week built. Operators always
read everything afresh.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta

from flask import current_app

from . import booking, cache, dates, venues
from .models import Venue

BOOKING_WEEKS = 4
# Venues × first days (at most 29 each) × today: a few hundred at most; bounded anyway.
SLOTS_CACHE = "calendar_slots"
SLOTS_CACHE_ENTRIES = 256


@dataclass(frozen=True)
class SlotTimes:
    """What a calendar shows of a slot: plain values, never an ORM row (they may be cached)."""

    id: int
    starts_at: datetime  # aware, UTC
    ends_at: datetime
    capacity: int  # as of when the week's slots were read (0: closed by an administrator)
    times: str = ""  # "09:00〜09:30" in Tokyo time, made when the week is read (and cached with it)


@dataclass(frozen=True)
class _Slots:
    """A venue's week as administrators set it, without the places: what may be cached."""

    days: tuple[date, ...]
    slots: tuple[SlotTimes, ...]  # in order of start
    closed: tuple[str | None, ...]  # per day


@dataclass(frozen=True)
class Week:
    days: list[date]
    by_day: dict[date, list[tuple[SlotTimes, int]]]  # future slots with places left, per Tokyo day
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


def neighbours(first: date) -> tuple[date | None, date | None]:
    """The first days of the weeks before and after ``first``, where they can still be booked."""
    today = dates.today()
    following = first + timedelta(days=7)
    return (
        (first - timedelta(days=7)) if first > today else None,
        following if following <= today + timedelta(weeks=BOOKING_WEEKS) else None,
    )


def week(venue: Venue, first: date, *, cached: bool = False) -> Week:
    """``cached``: the week's slots may be up to ``CALENDAR_SLOTS_SECONDS`` old (see the module)."""
    today = dates.today()
    if cached:
        found = cache.of_app(SLOTS_CACHE, SLOTS_CACHE_ENTRIES).get(
            (venue.id, first, today),
            current_app.config["CALENDAR_SLOTS_SECONDS"],
            lambda: _slots(venue, first, today),
        )
    else:
        found = _slots(venue, first, today)
    now = dates.now()
    left = booking.places_left([slot.id for slot in found.slots], now)
    by_day: dict[date, list[tuple[SlotTimes, int]]] = {day: [] for day in found.days}
    for slot in found.slots:
        # Capacity 0 marks a slot an administrator closed (calendar_admin): not offered at all. A
        # slot missing from the places was deleted meanwhile. A slot closed since the week's slots
        # were read has no place left: it shows full until they are read again.
        if slot.starts_at > now and slot.capacity > 0 and slot.id in left:
            by_day[dates.tokyo(slot.starts_at).date()].append((slot, left[slot.id]))
    previous, following = neighbours(first)
    return Week(
        days=list(found.days),
        by_day=by_day,
        closed=dict(zip(found.days, found.closed, strict=True)),
        previous=previous,
        following=following,
    )


def _slots(venue: Venue, first: date, today: date) -> _Slots:
    last_day = today + timedelta(weeks=BOOKING_WEEKS)
    days = tuple(first + timedelta(days=i) for i in range(7) if first + timedelta(days=i) <= last_day)
    found = venues.slots_between(venue.id, days[0], days[-1])
    return _Slots(
        days=days,
        slots=tuple(
            SlotTimes(
                s.id, dates.utc(s.starts_at), dates.utc(s.ends_at), s.capacity, _times(s.starts_at, s.ends_at)
            )
            for s in found
        ),
        closed=tuple(venues.closed_reason(venue, day) for day in days),
    )


def _times(starts_at: datetime, ends_at: datetime) -> str:
    start, end = dates.tokyo(starts_at), dates.tokyo(ends_at)
    return f"{start:%H:%M}〜{end:%H:%M}"
