"""Venue lists and booking detail (R6.1), scoped to the staff member's venue (R7.2)."""

from __future__ import annotations

from datetime import datetime, time, timedelta

from flask import abort, g, render_template, request
from sqlalchemy import select

from madoguchi import access, audit, dates
from madoguchi.audit import AuditTag
from madoguchi.extensions import db
from madoguchi.models import Booking, Slot, Venue
from madoguchi.permissions import Permission
from staffweb.guard import remote_addr, requires

from . import bp


# ---- venue lists (R6.1, scoped by R7.2) ---------------------------------------------------------
@bp.get("/venues/<int:venue_id>/bookings")
@requires(Permission.VENUE_LIST)
def venue_bookings(venue_id: int):
    venue = db.session.get(Venue, venue_id)
    if venue is None or not access.may_see_venue(g.staff, venue_id):
        abort(404)  # another venue's list does not exist for this person
    try:
        day = datetime.strptime(request.args.get("day", ""), "%Y-%m-%d").date()
    except ValueError:
        day = dates.now().astimezone(dates.TOKYO).date()
    start = datetime.combine(day, time(0), tzinfo=dates.TOKYO)
    rows = db.session.scalars(
        select(Booking)
        .join(Slot, Booking.slot_id == Slot.id)
        .where(
            Slot.venue_id == venue_id,
            Slot.starts_at >= start,
            Slot.starts_at < start + timedelta(days=1),
            Booking.status != "cancelled",
        )
        .order_by(Slot.starts_at)
    ).all()
    audit.record(
        AuditTag.BOOKING_LISTED,
        staff=g.staff,
        subject_type="venue",
        subject_id=venue_id,
        remote_addr=remote_addr(),
        day=day.isoformat(),
        count=len(rows),
    )
    return render_template(
        "admin/venue_bookings.html",
        venue=venue,
        day=day,
        bookings=rows,
        previous=day - timedelta(days=1),
        following=day + timedelta(days=1),
    )


@bp.get("/bookings/<booking_id>")
@requires(Permission.BOOKING_READ)
def booking_detail(booking_id: str):
    found = access.visible_booking(g.staff, booking_id)
    if found is None:
        audit.record(
            AuditTag.BOOKING_VIEWED,
            staff=g.staff,
            subject_type="booking",
            subject_id=booking_id[:64],
            result="denied",
            remote_addr=remote_addr(),
        )
        abort(404)
    audit.record(
        AuditTag.BOOKING_VIEWED,
        staff=g.staff,
        subject_type="booking",
        subject_id=found.id,
        remote_addr=remote_addr(),
    )
    return render_template("admin/booking.html", booking=found, applicant=found.applicant, slot=found.slot)
