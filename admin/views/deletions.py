"""Deletion records and the printed deletion report (R8.1): what was deleted, on which medium, how
many, how, when, who was responsible and who witnessed it."""

from __future__ import annotations

from flask import current_app, g, render_template, request

from madoguchi import audit, dates, retention
from madoguchi.audit import AuditTag
from madoguchi.permissions import Permission
from madoguchi.printing.deletion_report import deletion_report
from staffweb.guard import remote_addr, requires

from ..compliance_forms import PeriodFilterForm
from . import bp
from .ledgers import _pdf


def _period():
    form = PeriodFilterForm(request.args)
    if not form.validate():
        form.since.data = form.until.data = None
    today = dates.today()
    since = form.since.data or today.replace(day=1)
    until = form.until.data or today
    return form, since, until, retention.report_rows(dates.day_bounds(since)[0], dates.day_bounds(until)[1])


@bp.get("/deletions")
@requires(Permission.DELETION_REPORT)
def deletion_records():
    form, since, until, rows = _period()
    audit.record(AuditTag.DELETION_REPORT_VIEWED, staff=g.staff, remote_addr=remote_addr(), count=len(rows))
    return render_template(
        "admin/deletions.html",
        form=form,
        rows=rows,
        since=since,
        until=until,
        due=retention.due(),
        kinds=retention.KINDS,
    )


@bp.get("/deletions/report")
@requires(Permission.DELETION_REPORT)
def deletion_report_pdf():
    _, since, until, rows = _period()
    data = deletion_report(
        rows,
        period=f"{dates.wareki(since)}〜{dates.wareki(until)}",
        printed_at=dates.now(),
        city_name=current_app.config["CITY_NAME"],
    )
    audit.record(AuditTag.DELETION_REPORT_PRINTED, staff=g.staff, remote_addr=remote_addr(), count=len(rows))
    return _pdf(data, f"deletion-report-{since:%Y%m%d}-{until:%Y%m%d}.pdf")
