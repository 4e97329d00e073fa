"""Staff registry (R7.3): accounts, roles, venue scope, duty period; printable list."""

from __future__ import annotations

from flask import abort, flash, g, redirect, render_template, request, url_for
from flask_babel import gettext as _
from sqlalchemy import func, select
from wtforms.fields.choices import SelectChoice

from madoguchi import audit, auth, dates, venues
from madoguchi.audit import AuditTag
from madoguchi.extensions import db
from madoguchi.models import Staff
from madoguchi.permissions import ROLE_LABELS, Permission, Role
from staffweb.guard import remote_addr, requires

from ..forms import StaffForm
from . import bp


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
        today=dates.today(),
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
