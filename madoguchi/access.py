"""Scopes (R7.2): which records a staff member may see. Venue staff see only their own venue;
loading a record and checking the scope happen in one call, so no view can forget."""

from __future__ import annotations

from sqlalchemy import select

from .extensions import db
from .models import Booking, Slot, Staff
from .permissions import VENUE_SCOPED


def venue_scope(staff: Staff) -> int | None:
    """The one venue this person is limited to, or None when not limited by venue."""
    if staff.role_set & {r.value for r in VENUE_SCOPED}:
        return staff.venue_id if staff.venue_id is not None else -1  # scoped without a venue: nothing
    return None


def may_see_venue(staff: Staff, venue_id: int) -> bool:
    scope = venue_scope(staff)
    return scope is None or scope == venue_id


def visible_booking(staff: Staff, booking_id: str) -> Booking | None:
    query = select(Booking).join(Slot, Booking.slot_id == Slot.id).where(Booking.id == booking_id)
    scope = venue_scope(staff)
    if scope is not None:
        query = query.where(Slot.venue_id == scope)
    return db.session.scalars(query).one_or_none()
