"""Reconciliation of notices and cards (R6.3; 004 別紙⑥2(1)②③).

Counts are appended, never edited; a correction replaces one entry and must say why. Balances are
computed from the entries in force and from the bookings (cards handed over at the venues), and
every difference is reported rather than hidden.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime

from sqlalchemy import func, select
from sqlalchemy.orm import aliased

from . import dates
from .booking import atomic
from .crypto import new_row_id
from .errors import DomainError
from .extensions import db
from .models import PER_VENUE, Booking, LogisticsEntry, LogisticsKind, Slot, Status, Venue

MAX_QUANTITY = 1_000_000
REASON_MAX = 200


class CountRejected(DomainError):
    code = "count_rejected"


@atomic
def record(
    kind: LogisticsKind,
    quantity: int,
    *,
    day: date,
    staff_id: int,
    venue_id: int | None = None,
    now: datetime | None = None,
) -> LogisticsEntry:
    _check(kind, quantity, venue_id)
    entry = LogisticsEntry(
        id=new_row_id(),
        kind=kind.value,
        quantity=quantity,
        day=day,
        venue_id=venue_id if kind in PER_VENUE else None,
        staff_id=staff_id,
        recorded_at=now or dates.now(),
    )
    db.session.add(entry)
    db.session.flush()
    return entry


@atomic
def correct(
    entry_id: str, quantity: int, reason: str, *, staff_id: int, now: datetime | None = None
) -> LogisticsEntry:
    """Replace an entry in force by a new one with ``quantity`` (0 voids it), naming the reason."""
    reason = (reason or "").strip()
    if not reason:
        raise CountRejected("a correction needs a reason")
    if len(reason) > REASON_MAX:
        raise CountRejected("reason too long")
    old = db.session.get(LogisticsEntry, entry_id, with_for_update=True)
    if old is None or not in_force(old):
        raise CountRejected("only an entry in force can be corrected")
    _check(LogisticsKind(old.kind), quantity, old.venue_id)
    entry = LogisticsEntry(
        id=new_row_id(),
        kind=old.kind,
        quantity=quantity,
        day=old.day,
        venue_id=old.venue_id,
        staff_id=staff_id,
        recorded_at=now or dates.now(),
        corrects_id=old.id,
    )
    entry.reason = reason
    db.session.add(entry)
    db.session.flush()  # the unique corrects_id refuses a second, concurrent correction
    return entry


def _check(kind: LogisticsKind, quantity: int, venue_id: int | None) -> None:
    if not 0 <= quantity <= MAX_QUANTITY:
        raise CountRejected("quantity out of range")
    if kind in PER_VENUE and (venue_id is None or db.session.get(Venue, venue_id) is None):
        raise CountRejected("this count belongs to a venue")


def in_force(entry: LogisticsEntry) -> bool:
    return (
        db.session.scalars(select(LogisticsEntry.id).where(LogisticsEntry.corrects_id == entry.id)).first()
        is None
    )


def entries() -> list[LogisticsEntry]:
    """Every entry, newest first (the history a screen shows, corrections included)."""
    return list(db.session.scalars(select(LogisticsEntry).order_by(LogisticsEntry.recorded_at.desc())))


def _totals() -> dict[tuple[str, int | None], int]:
    replacing = aliased(LogisticsEntry)
    superseded = select(replacing.corrects_id).where(replacing.corrects_id.is_not(None))
    rows = db.session.execute(
        select(LogisticsEntry.kind, LogisticsEntry.venue_id, func.sum(LogisticsEntry.quantity))
        .where(LogisticsEntry.id.not_in(superseded))
        .group_by(LogisticsEntry.kind, LogisticsEntry.venue_id)
    ).all()
    return {(kind, venue_id): int(total or 0) for kind, venue_id, total in rows}


def handed_over_in_system() -> dict[int, int]:
    """Cards handed over per venue according to the check-in records (R6.1)."""
    rows = db.session.execute(
        select(Slot.venue_id, func.count())
        .select_from(Booking)
        .join(Slot, Booking.slot_id == Slot.id)
        .where(Booking.status == Status.HANDED_OVER.value)
        .group_by(Slot.venue_id)
    ).all()
    return {venue_id: count for venue_id, count in rows}


@dataclass(frozen=True)
class Balance:
    label_key: str  # what is compared, for the screen to name
    left: int
    right: int

    @property
    def difference(self) -> int:
        return self.left - self.right

    @property
    def flagged(self) -> bool:
        return self.difference != 0


@dataclass(frozen=True)
class VenueBalance:
    venue: Venue
    sent: int  # cards sent to the venue
    handed_over: int  # as the venue reported
    handed_over_in_system: int  # as check-in recorded
    returned: int

    @property
    def on_hand(self) -> int:
        return self.sent - self.handed_over - self.returned

    @property
    def flags(self) -> list[str]:
        found = []
        if self.handed_over != self.handed_over_in_system:
            found.append("handed_over_mismatch")
        if self.on_hand < 0:
            found.append("negative_stock")
        return found


@dataclass(frozen=True)
class Reconciliation:
    notices: Balance  # received from the city = sent to residents
    cards: Balance  # received = sent to the venues, summed
    venues: list[VenueBalance] = field(default_factory=list)

    @property
    def differences(self) -> int:
        return (
            int(self.notices.flagged)
            + int(self.cards.flagged)
            + sum(len(venue.flags) for venue in self.venues)
        )


def reconcile() -> Reconciliation:
    totals = _totals()

    def total(kind: LogisticsKind, venue_id: int | None = None) -> int:
        if venue_id is None and kind in PER_VENUE:
            return sum(v for (k, _), v in totals.items() if k == kind.value)
        return totals.get((kind.value, venue_id), 0)

    system = handed_over_in_system()
    venues = [
        VenueBalance(
            venue=venue,
            sent=total(LogisticsKind.CARDS_TO_VENUE, venue.id),
            handed_over=total(LogisticsKind.CARDS_HANDED_OVER, venue.id),
            handed_over_in_system=system.get(venue.id, 0),
            returned=total(LogisticsKind.CARDS_RETURNED, venue.id),
        )
        for venue in db.session.scalars(select(Venue).order_by(Venue.id))
    ]
    return Reconciliation(
        notices=Balance("notices", total(LogisticsKind.NOTICES_RECEIVED), total(LogisticsKind.NOTICES_SENT)),
        cards=Balance("cards", total(LogisticsKind.CARDS_RECEIVED), total(LogisticsKind.CARDS_TO_VENUE)),
        venues=venues,
    )
