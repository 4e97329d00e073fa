"""The administrators' dashboard: aggregates only, never a personal value (R6, R7.2, R4.3).

Bookings per day, venue and channel; how full the slots are; how many booked people did not come;
the call log's categories. Every figure is a count over ids, slots and statuses: no encrypted column
is read, so nothing here can show who anyone is.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, timedelta

from sqlalchemy import func, select

from . import calls, dates, venues
from .extensions import db
from .models import Booking, CallCategory, Channel, Slot, Status, Venue

MAX_DAYS = 92
CHANNELS = tuple(c.value for c in Channel)
# Bookings a resident made and did not withdraw: what the venue prepared for.
COUNTED = (Status.BOOKED, Status.ARRIVED, Status.HANDED_OVER, Status.NO_SHOW, Status.POSTPONED)
CAME = (Status.ARRIVED.value, Status.HANDED_OVER.value, Status.POSTPONED.value)


@dataclass
class VenueFigures:
    venue: Venue
    by_channel: dict[str, int] = field(default_factory=lambda: dict.fromkeys(CHANNELS, 0))
    capacity: int = 0
    taken: int = 0
    came: int = 0
    no_show: int = 0
    unrecorded: int = 0  # booked for a past slot, no outcome recorded yet

    @property
    def bookings(self) -> int:
        return sum(self.by_channel.values())

    @property
    def fill_rate(self) -> float | None:
        return self.taken / self.capacity if self.capacity else None

    @property
    def no_show_rate(self) -> float | None:
        settled = self.came + self.no_show
        return self.no_show / settled if settled else None


@dataclass
class Figures:
    first: date
    last: date
    days: list[date]
    per_day: dict[date, dict[str, int]]  # day → channel → bookings
    venues: list[VenueFigures]
    calls: dict[str, int]  # category → calls (+ "unlogged")

    @property
    def total_bookings(self) -> int:
        return sum(sum(v.values()) for v in self.per_day.values())

    @property
    def peak_day(self) -> int:
        return max((sum(v.values()) for v in self.per_day.values()), default=0)


def period(first: date | None, last: date | None) -> tuple[date, date]:
    """Default: two weeks back and two weeks ahead; at most MAX_DAYS days."""
    today = dates.today()
    first = first or today - timedelta(days=13)
    last = last or today + timedelta(days=14)
    if last < first:
        first, last = last, first
    return first, min(last, first + timedelta(days=MAX_DAYS - 1))


def figures(first: date, last: date) -> Figures:
    start, _ = dates.day_bounds(first)
    _, end = dates.day_bounds(last)
    now = dates.now()
    days = [first + timedelta(days=i) for i in range((last - first).days + 1)]
    per_day = {day: dict.fromkeys(CHANNELS, 0) for day in days}
    by_venue = {v.id: VenueFigures(v) for v in venues.all_venues()}
    in_period = (Slot.starts_at >= start, Slot.starts_at < end)

    rows = db.session.execute(
        select(Slot.venue_id, Slot.starts_at, Booking.channel, Booking.status, func.count())
        .join(Slot, Booking.slot_id == Slot.id)
        .where(*in_period, Booking.status.in_([s.value for s in COUNTED]))
        .group_by(Slot.venue_id, Slot.starts_at, Booking.channel, Booking.status)
    ).all()
    for venue_id, starts_at, channel, status, count in rows:
        day = dates.tokyo(starts_at).date()
        if day in per_day and channel in per_day[day]:
            per_day[day][channel] += count
        figures_ = by_venue.get(venue_id)
        if figures_ is None:
            continue
        if channel in figures_.by_channel:
            figures_.by_channel[channel] += count
        if dates.utc(starts_at) <= now:
            if status in CAME:
                figures_.came += count
            elif status == Status.NO_SHOW.value:
                figures_.no_show += count
            elif status == Status.BOOKED.value:
                figures_.unrecorded += count

    for venue_id, capacity, taken in db.session.execute(
        select(Slot.venue_id, func.sum(Slot.capacity), func.sum(Slot.taken))
        .where(*in_period)
        .group_by(Slot.venue_id)
    ).all():
        if venue_id in by_venue:
            by_venue[venue_id].capacity = int(capacity or 0)
            by_venue[venue_id].taken = int(taken or 0)

    call_totals = dict.fromkeys([c.value for c in CallCategory], 0)
    call_totals["unlogged"] = 0
    for day_counts in calls.statistics(first, last):
        for category, count in day_counts.by_category.items():
            call_totals[category] = call_totals.get(category, 0) + count
        call_totals["unlogged"] += day_counts.unlogged
    return Figures(first, last, days, per_day, list(by_venue.values()), call_totals)


def peak(values) -> int:
    """The largest value, at least 1 (a chart's scale)."""
    return max([1, *values])


def share(part: int | float, whole: int | float) -> float:
    return 100.0 * part / whole if whole else 0.0


def bars(counts: dict[str, int], keys, scale: int) -> list[tuple[str, float, float]]:
    """Stacked segments (key, start %, width %) of one bar on a 0..scale axis."""
    result, x = [], 0.0
    for key in keys:
        width = share(counts.get(key, 0), scale)
        if width:
            result.append((key, round(x, 2), round(width, 2)))
            x += width
    return result
