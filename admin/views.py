"""Back office (R7): staff registry, access log and its analysis, venue lists."""

from __future__ import annotations

from datetime import datetime, time, timedelta

from flask import Blueprint, abort, flash, g, redirect, render_template, request, url_for
from flask_babel import gettext as _
from sqlalchemy import func, select
from wtforms.fields.choices import SelectChoice

from madoguchi import access, audit, audit_report, auth, dates, venues
from madoguchi.audit import AuditTag
from madoguchi.extensions import db
from madoguchi.models import AuditEntry, Booking, Slot, Staff, Venue
from madoguchi.permissions import ROLE_LABELS, Permission, Role
from staffweb.guard import remote_addr, requires

from .forms import AuditFilterForm, StaffForm

bp = Blueprint("admin", __name__)
PAGE = 100


@bp.get("/")
@requires(Permission.SIGNED_IN)
def home():
    return render_template("admin/home.html", venues=venues.all_venues())


# ---- staff registry (R7.3) --------------------------------------------------------------------
def _staff_or_404(staff_id: int) -> Staff:
    staff = db.session.get(Staff, staff_id)
    if staff is None:
        abort(404)
    return staff


def _venue_choices(form: StaffForm) -> None:
    form.venue_id.choices = [SelectChoice("", _("（なし）"))] + [
        SelectChoice(str(v.id), v.display_name) for v in venues.all_venues()
    ]


@bp.get("/staff")
@requires(Permission.STAFF_READ)
def staff_list():
    people = db.session.scalars(select(Staff).order_by(Staff.affiliation, Staff.login_id)).all()
    return render_template(
        "admin/staff_list.html",
        people=people,
        role_labels=ROLE_LABELS,
        Role=Role,
        today=dates.now().astimezone(dates.TOKYO).date(),
    )


@bp.get("/staff/print")
@requires(Permission.STAFF_READ)
def staff_print():
    """The registry as the list a city asks for (003 第9条): name, affiliation, period, role."""
    people = db.session.scalars(select(Staff).order_by(Staff.affiliation, Staff.name)).all()
    audit.record(AuditTag.REGISTRY_PRINTED, staff=g.staff, remote_addr=remote_addr(), count=len(people))
    return render_template(
        "admin/staff_print.html", people=people, role_labels=ROLE_LABELS, Role=Role, printed_at=dates.now()
    )


@bp.route("/staff/new", methods=["GET", "POST"])
@requires(Permission.STAFF_MANAGE)
def staff_new():
    form = StaffForm()
    _venue_choices(form)
    if form.validate_on_submit():
        problems = auth.password_problems(
            form.password.data or "", user_inputs=(form.login_id.data, form.name.data)
        )
        taken = db.session.scalar(
            select(func.count()).select_from(Staff).where(Staff.login_id == form.login_id.data)
        )
        if taken:
            form.login_id.errors.append(_("この職員IDはすでに使われています。"))
        elif problems:
            form.password.errors.extend(problems)
        else:
            staff = auth.create_staff(
                login_id=form.login_id.data,
                name=form.name.data.strip(),
                affiliation=form.affiliation.data.strip(),
                roles=form.roles.data,
                venue_id=form.venue_id.data,
                duty_start=form.duty_start.data,
                duty_end=form.duty_end.data,
                password=form.password.data,
                actor=g.staff,
                remote_addr=remote_addr(),
            )
            flash(_("職員を登録しました。"), "info")
            return redirect(url_for(".staff_edit", staff_id=staff.id))
    return render_template("admin/staff_form.html", form=form, staff=None)


@bp.route("/staff/<int:staff_id>", methods=["GET", "POST"])
@requires(Permission.STAFF_MANAGE)
def staff_edit(staff_id: int):
    staff = _staff_or_404(staff_id)
    form = StaffForm(obj=staff if request.method == "GET" else None)
    if request.method == "GET":
        form.roles.data = sorted(staff.role_set)
    _venue_choices(form)
    form.login_id.data = staff.login_id  # the ID never changes: the log refers to it
    if form.validate_on_submit():
        problems = (
            auth.password_problems(form.password.data, user_inputs=(staff.login_id, staff.name))
            if form.password.data
            else []
        )
        if problems:
            form.password.errors.extend(problems)
        else:
            auth.update_staff(
                staff,
                actor=g.staff,
                remote_addr=remote_addr(),
                name=form.name.data.strip(),
                affiliation=form.affiliation.data.strip(),
                roles=form.roles.data,
                venue_id=form.venue_id.data,
                duty_start=form.duty_start.data,
                duty_end=form.duty_end.data,
                active=form.active.data,
            )
            if form.password.data:
                auth.set_password(staff, form.password.data)
                audit.record(
                    AuditTag.STAFF_UPDATED,
                    staff=g.staff,
                    subject_type="staff",
                    subject_id=staff.id,
                    remote_addr=remote_addr(),
                    changes={"password": ["", "reset"]},
                )
            flash(_("保存しました。"), "info")
            return redirect(url_for(".staff_edit", staff_id=staff.id))
    return render_template("admin/staff_form.html", form=form, staff=staff)


@bp.post("/staff/<int:staff_id>/reset-mfa")
@requires(Permission.STAFF_MANAGE)
def staff_reset_mfa(staff_id: int):
    staff = _staff_or_404(staff_id)
    auth.reset_second_factor(staff)
    audit.record(
        AuditTag.STAFF_MFA_RESET,
        staff=g.staff,
        subject_type="staff",
        subject_id=staff.id,
        remote_addr=remote_addr(),
    )
    flash(_("二要素認証をリセットしました。次回のサインインで再登録になります。"), "info")
    return redirect(url_for(".staff_edit", staff_id=staff.id))


# ---- access log (R7.4) ------------------------------------------------------------------------
def _day_bounds(form: AuditFilterForm):
    today = dates.now().astimezone(dates.TOKYO).date()
    since = form.since.data or today - timedelta(days=7)
    until = form.until.data or today
    return (
        datetime.combine(since, time(0), tzinfo=dates.TOKYO),
        datetime.combine(until + timedelta(days=1), time(0), tzinfo=dates.TOKYO),
    )


@bp.get("/audit")
@requires(Permission.AUDIT_READ)
def audit_log():
    form = AuditFilterForm(request.args)
    form.validate()
    since, until = _day_bounds(form)
    query = select(AuditEntry).where(AuditEntry.at >= since, AuditEntry.at < until)
    if form.login_id.data:
        query = query.where(AuditEntry.login_id == form.login_id.data)
    if form.action.data:
        query = query.where(AuditEntry.action == form.action.data)
    entries = db.session.scalars(query.order_by(AuditEntry.id.desc()).limit(PAGE)).all()
    audit.record(AuditTag.AUDIT_VIEWED, staff=g.staff, remote_addr=remote_addr(), count=len(entries))
    return render_template("admin/audit_log.html", form=form, entries=entries, tags=list(AuditTag))


@bp.get("/audit/report")
@requires(Permission.AUDIT_READ)
def audit_analysis():
    form = AuditFilterForm(request.args)
    form.validate()
    since, until = _day_bounds(form)
    flags = audit_report.analyse(since, until)
    audit.record(AuditTag.AUDIT_REPORT_VIEWED, staff=g.staff, remote_addr=remote_addr(), flags=len(flags))
    return render_template("admin/audit_report.html", form=form, flags=flags, since=since, until=until)


@bp.get("/audit/verify")
@requires(Permission.AUDIT_READ)
def audit_verify():
    result = audit.verify()
    audit.record(
        AuditTag.AUDIT_VERIFIED,
        staff=g.staff,
        remote_addr=remote_addr(),
        ok=result.ok,
        checked=result.checked,
        first_bad_id=result.first_bad_id,
    )
    return render_template("admin/audit_verify.html", result=result)


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
