"""The access log (R7.4): browse, analyse, verify the chain."""

from __future__ import annotations

from datetime import timedelta

from flask import g, render_template, request
from sqlalchemy import select

from madoguchi import audit, audit_report, dates
from madoguchi.audit import AuditTag
from madoguchi.extensions import db
from madoguchi.models import AuditEntry
from madoguchi.permissions import Permission
from staffweb.guard import remote_addr, requires

from ..forms import AuditFilterForm
from . import bp

PAGE = 100


# ---- access log (R7.4) ------------------------------------------------------------------------
def _day_bounds(form: AuditFilterForm):
    today = dates.today()
    since = form.since.data or today - timedelta(days=7)
    until = form.until.data or today
    return dates.day_bounds(since)[0], dates.day_bounds(until)[1]


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
