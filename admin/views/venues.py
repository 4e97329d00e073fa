"""Venue lists and booking detail (R6.1), scoped to the staff member's venue (R7.2)."""

from __future__ import annotations

from collections import Counter
from datetime import datetime, timedelta

from flask import abort, flash, g, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l

from madoguchi import access, audit, checkin, dates, numbers
from madoguchi.appbase import STATUS_LABELS, reads_only
from madoguchi.audit import AuditTag
from madoguchi.extensions import db
from madoguchi.models import Booking, Venue
from madoguchi.permissions import Permission
from staffweb.guard import remote_addr, requires

from ..forms import OutcomeForm, ScanForm, UndoForm
from . import bp


def _venue_in_scope(venue_id: int) -> Venue:
    venue = db.session.get(Venue, venue_id)
    if venue is None or not access.may_see_venue(g.staff, venue_id):
        abort(404)  # another venue does not exist for this person
    return venue


# ---- venue lists (R6.1, scoped by R7.2) ---------------------------------------------------------
@bp.get("/venues/<int:venue_id>/bookings")
@requires(Permission.VENUE_LIST)
def venue_bookings(venue_id: int):
    venue = _venue_in_scope(venue_id)
    try:
        day = datetime.strptime(request.args.get("day", ""), "%Y-%m-%d").date()
    except ValueError:
        day = dates.today()
    rows = checkin.todays_bookings(venue_id, day)
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


# ---- check-in (R6.1) ---------------------------------------------------------------------------
OUTCOME_DONE = {
    checkin.Outcome.ARRIVED: _l("来庁（受付）を記録しました。"),
    checkin.Outcome.HANDED_OVER: _l("カードの交付を記録しました。"),
    checkin.Outcome.NO_SHOW: _l("来庁なしを記録しました。"),
    checkin.Outcome.POSTPONED: _l("延期を記録しました。改めて予約するようご案内ください。"),
}


def _checkin_page(venue: Venue, form: ScanForm, found: checkin.Found | None = None):
    today = dates.today()
    bookings = checkin.todays_bookings(venue.id, today)
    audit.record(
        AuditTag.BOOKING_LISTED,
        staff=g.staff,
        subject_type="venue",
        subject_id=venue.id,
        remote_addr=remote_addr(),
        day=today.isoformat(),
        count=len(bookings),
        screen="checkin",
    )
    counts = Counter(b.status for b in bookings)
    return render_template(
        "admin/checkin.html",
        venue=venue,
        today=today,
        form=form,
        found=found,
        bookings=bookings,
        counts=counts,
        outcomes=checkin.allowed_outcomes(found.booking) if found and found.booking else [],
        last_outcome=checkin.last_outcome(found.booking) if found and found.booking else None,
        undo_form=UndoForm(formdata=None),
        outcome_form=OutcomeForm(formdata=None),
    )


@bp.get("/venues/<int:venue_id>/checkin")
@requires(Permission.VENUE_CHECKIN)
def checkin_screen(venue_id: int):
    venue = _venue_in_scope(venue_id)
    booking_id = request.args.get("booking", "")
    found = None
    if booking_id:
        booking = access.visible_booking(g.staff, booking_id[:64])
        if booking is not None and booking.slot.venue_id == venue.id:
            match = checkin.match_of(booking, venue.id, dates.today())
            found = checkin.Found(match, booking.applicant.reservation_number, booking)
            _audit_view(booking, match)
    return _checkin_page(venue, ScanForm(formdata=None), found)


def _audit_view(booking: Booking, match: checkin.Match) -> None:
    audit.record(
        AuditTag.BOOKING_VIEWED,
        staff=g.staff,
        subject_type="booking",
        subject_id=booking.id,
        remote_addr=remote_addr(),
        screen="checkin",
        match=match.value,
    )


@bp.post("/venues/<int:venue_id>/checkin")
@requires(Permission.VENUE_CHECKIN)
@reads_only
def checkin_lookup(venue_id: int):
    venue = _venue_in_scope(venue_id)
    form = ScanForm()
    if not form.validate():
        return _checkin_page(venue, form)
    try:
        found = checkin.find(venue.id, form.number.data, dates.today())
    except numbers.InvalidReservationNumber:
        form.number.errors = [_("予約管理番号が正しくありません。12桁の数字をもう一度確かめてください。")]
        return _checkin_page(venue, form)
    audit.record(
        AuditTag.CHECKIN_LOOKUP,
        staff=g.staff,
        subject_type="booking" if found.booking is not None else "",
        subject_id=found.booking.id if found.booking is not None else "",
        result=found.match.value,
        remote_addr=remote_addr(),
        venue_id=venue.id,
    )
    if found.match in (checkin.Match.TODAY, checkin.Match.OTHER_DAY):
        _audit_view(found.booking, found.match)
    return _checkin_page(venue, ScanForm(formdata=None), found)


def _booking_at_venue(venue: Venue, booking_id: str) -> Booking:
    booking = access.visible_booking(g.staff, booking_id[:64])
    if booking is None or booking.slot.venue_id != venue.id:
        abort(404)
    return booking


@bp.post("/venues/<int:venue_id>/bookings/<booking_id>/outcome")
@requires(Permission.VENUE_CHECKIN)
def checkin_outcome(venue_id: int, booking_id: str):
    venue = _venue_in_scope(venue_id)
    booking = _booking_at_venue(venue, booking_id)
    form = OutcomeForm()
    back = redirect(url_for("admin.checkin_screen", venue_id=venue.id, booking=booking.id))
    if not form.validate() or form.outcome.data not in {o.value for o in checkin.Outcome}:
        flash(_("記録する内容を選んでください。"), "error")
        return back
    outcome = checkin.Outcome(form.outcome.data)
    other_day = dates.tokyo(booking.slot.starts_at).date() != dates.today()
    if other_day and not form.other_day.data:
        flash(
            _(
                "予約日が本日ではありません。記録する場合は「予約日以外の来庁として記録する」にチェックを入れてください。"
            ),
            "error",
        )
        return redirect(url_for("admin.checkin_screen", venue_id=venue.id, booking=booking.id))
    try:
        checkin.record(booking, outcome, staff_id=g.staff.id)
    except checkin.OutcomeNotAllowed:
        flash(
            _(
                "この予約には、その記録はできません（状態: %(status)s）。",
                status=STATUS_LABELS.get(booking.status, booking.status),
            ),
            "error",
        )
        return redirect(url_for("admin.checkin_screen", venue_id=venue.id, booking=booking.id))
    audit.record(
        AuditTag.OUTCOME_RECORDED,
        staff=g.staff,
        subject_type="booking",
        subject_id=booking.id,
        remote_addr=remote_addr(),
        outcome=outcome.value,
        other_day=other_day,
    )
    flash(str(OUTCOME_DONE[outcome]), "success")
    return redirect(url_for("admin.checkin_screen", venue_id=venue.id, booking=booking.id))


@bp.post("/venues/<int:venue_id>/bookings/<booking_id>/undo")
@requires(Permission.VENUE_CHECKIN)
def checkin_undo(venue_id: int, booking_id: str):
    venue = _venue_in_scope(venue_id)
    booking = _booking_at_venue(venue, booking_id)
    form = UndoForm()
    back = redirect(url_for("admin.checkin_screen", venue_id=venue.id, booking=booking.id))
    if not form.validate():
        flash(_("取り消す理由を選んでください。"), "error")
        return back
    try:
        checkin.undo(booking, checkin.UndoReason(form.reason.data), staff_id=g.staff.id)
    except checkin.NothingToUndo:
        flash(_("取り消せる記録がありません。"), "error")
        return back
    except checkin.UndoConflict:
        flash(_("取り消せません。この方は別の予約をお持ちか、時間帯に空きがありません。"), "error")
        return back
    audit.record(
        AuditTag.OUTCOME_UNDONE,
        staff=g.staff,
        subject_type="booking",
        subject_id=booking.id,
        remote_addr=remote_addr(),
        reason=form.reason.data,
    )
    flash(_("記録を取り消しました。"), "success")
    return back
