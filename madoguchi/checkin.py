"""Venue check-in (R6.1): find a booking by the 予約管理番号 on the notice and record what happened.

Outcomes are status changes of the one booking, recorded as BookingEvents with the status they
left, so an undo restores it exactly. An undo needs a reason code. A booking at another venue or on
another day is reported as such: the caller decides (another venue: never; another day: only when
the staff member says so explicitly).

Like the booking service, functions flush and never commit; views audit in the same transaction.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import date, datetime

from sqlalchemy import select

from . import dates, numbers
from .applicants import find_by_number
from .booking import atomic, give_back_place, take_place
from .errors import DomainError
from .extensions import db
from .models import LIVE, Booking, BookingEvent, Channel, Slot, Status


class Outcome(enum.StrEnum):
    ARRIVED = "arrived"  # 来庁（受付）
    HANDED_OVER = "handed_over"  # 交付
    NO_SHOW = "no_show"  # 来庁なし
    POSTPONED = "postponed"  # 延期


class UndoReason(enum.StrEnum):
    WRONG_PERSON = "wrong_booking"  # 別の予約に記録した
    WRONG_OUTCOME = "wrong_outcome"  # 記録の種類を誤った
    CAME_LATER = "came_later"  # 来庁なしと記録した後に来庁した
    CARD_NOT_GIVEN = "card_not_given"  # 交付を記録したがカードを渡していない


# Which outcome may follow which status. Handed over is final except through an undo.
_ALLOWED_FROM: dict[Outcome, frozenset[str]] = {
    Outcome.ARRIVED: frozenset({Status.BOOKED}),
    Outcome.HANDED_OVER: frozenset({Status.BOOKED, Status.ARRIVED}),
    Outcome.NO_SHOW: frozenset({Status.BOOKED}),
    Outcome.POSTPONED: frozenset({Status.BOOKED, Status.ARRIVED}),
}
_LEAVES_LIVE = frozenset({Outcome.NO_SHOW, Outcome.POSTPONED})
OUTCOME_ACTIONS = frozenset(f"venue:{o.value}" for o in Outcome)


class Match(enum.StrEnum):
    TODAY = "today"  # this venue, today: go ahead
    OTHER_DAY = "other_day"  # this venue, another day: only with explicit consent
    OTHER_VENUE = "other_venue"  # the card is at another venue: never here
    NOT_BOOKED = "not_booked"  # the number exists but has no booking to act on
    UNKNOWN = "unknown"  # no such number on the roster


class OutcomeNotAllowed(DomainError):
    code = "outcome_not_allowed"


class NothingToUndo(DomainError):
    code = "nothing_to_undo"


class UndoConflict(DomainError):
    """The status cannot be restored (the resident has booked again since, or the slot is full)."""

    code = "undo_conflict"


@dataclass(frozen=True)
class Found:
    match: Match
    number: str
    booking: Booking | None = None


def find(venue_id: int, text: str, today: date) -> Found:
    """Look up the number a scanner typed (hyphens, full-width digits allowed).

    Raises ``numbers.InvalidReservationNumber`` for a mistyped number, before any look-up.
    The booking returned is the live one, else the most recent (to show it was already handed over,
    cancelled, …).
    """
    number = numbers.parse(text)
    applicant = find_by_number(number)
    if applicant is None:
        return Found(Match.UNKNOWN, number)
    booking = db.session.scalars(
        select(Booking)
        .where(Booking.applicant_id == applicant.id)
        .order_by(Booking.status.in_(LIVE).desc(), Booking.updated_at.desc())
        .limit(1)
    ).first()
    if booking is None:
        return Found(Match.NOT_BOOKED, number)
    return Found(match_of(booking, venue_id, today), number, booking)


def match_of(booking: Booking, venue_id: int, today: date) -> Match:
    if booking.slot.venue_id != venue_id:
        return Match.OTHER_VENUE
    if dates.tokyo(booking.slot.starts_at).date() != today:
        return Match.OTHER_DAY
    return Match.TODAY


def todays_bookings(venue_id: int, day: date) -> list[Booking]:
    """A venue's list for one day, by time then order of entry; cancelled ones left out."""
    start, end = dates.day_bounds(day)
    return list(
        db.session.scalars(
            select(Booking)
            .join(Slot, Booking.slot_id == Slot.id)
            .where(
                Slot.venue_id == venue_id,
                Slot.starts_at >= start,
                Slot.starts_at < end,
                Booking.status != Status.CANCELLED.value,
            )
            .order_by(Slot.starts_at, Booking.created_at)
        )
    )


def allowed_outcomes(booking: Booking) -> list[Outcome]:
    return [o for o in Outcome if booking.status in _ALLOWED_FROM[o]]


@atomic
def record(booking: Booking, outcome: Outcome, *, staff_id: int, now: datetime | None = None) -> Booking:
    """Set the outcome; the event keeps the status it replaces. Leaving the live states gives the
    place back, so ``Slot.taken`` still counts live bookings and holds only."""
    now = now or dates.now()
    db.session.refresh(booking, with_for_update=True)
    if booking.status not in _ALLOWED_FROM[outcome]:
        raise OutcomeNotAllowed(f"{outcome.value} after {booking.status}")
    previous = booking.status
    booking.status = outcome.value
    booking.updated_at = now
    if outcome in _LEAVES_LIVE:
        give_back_place(booking.slot_id)
    db.session.add(
        BookingEvent(
            booking=booking,
            at=now,
            action=f"venue:{outcome.value}",
            channel=Channel.COUNTER.value,
            staff_id=staff_id,
            from_slot_id=booking.slot_id,
            from_status=previous,
            to_status=outcome.value,
        )
    )
    db.session.flush()
    return booking


def last_outcome(booking: Booking) -> BookingEvent | None:
    return db.session.scalars(
        select(BookingEvent)
        .where(
            BookingEvent.booking_id == booking.id,
            BookingEvent.action.in_(OUTCOME_ACTIONS),
            BookingEvent.undone.is_(False),
        )
        .order_by(BookingEvent.id.desc())
        .limit(1)
    ).first()


@atomic
def undo(booking: Booking, reason: UndoReason, *, staff_id: int, now: datetime | None = None) -> Booking:
    """Restore the status before the last outcome, naming why (R6.1: undo only with a reason)."""
    now = now or dates.now()
    db.session.refresh(booking, with_for_update=True)
    event = last_outcome(booking)
    if event is None or event.to_status != booking.status:
        raise NothingToUndo(f"booking status {booking.status} has no outcome to undo")
    restored = event.from_status
    if booking.status not in LIVE and restored in LIVE:
        # Coming back to life: the place and the one-live-booking rule apply again.
        if _has_other_live_booking(booking):
            raise UndoConflict("the applicant has another live booking")
        try:
            take_place(booking.slot_id, now)
        except DomainError as exc:
            raise UndoConflict("the slot has no place left") from exc
    booking.status = restored
    booking.updated_at = now
    event.undone = True
    db.session.add(
        BookingEvent(
            booking=booking,
            at=now,
            action="venue:undone",
            channel=Channel.COUNTER.value,
            staff_id=staff_id,
            from_slot_id=booking.slot_id,
            from_status=event.to_status,
            to_status=restored,
            reason=reason.value,
        )
    )
    db.session.flush()
    return booking


def _has_other_live_booking(booking: Booking) -> bool:
    return (
        db.session.scalars(
            select(Booking.id).where(
                Booking.applicant_id == booking.applicant_id,
                Booking.id != booking.id,
                Booking.status.in_(LIVE),
            )
        ).first()
        is not None
    )
