"""The 漏えい等 incident register (R8.3): list, record, update, print. Reading it decrypts its text,
so every read is audited; changes are audited with the names of the fields, not their text."""

from __future__ import annotations

from flask import abort, flash, g, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l

from madoguchi import audit, dates, incidents
from madoguchi.audit import AuditTag
from madoguchi.models import Incident
from madoguchi.permissions import Permission
from staffweb.guard import remote_addr, requires

from ..forms_settings import IncidentForm
from . import bp

STATUS_LABELS = {"open": _l("対応中"), "closed": _l("完了")}
REJECTED = {
    "empty": _l("入力してください。"),
    "too_long": _l("4000文字以内で入力してください。"),
    "unknown": _l("選び直してください。"),
    "negative": _l("0以上の整数で入力してください。"),
    "future": _l("未来の日時は入力できません。"),
    "after_discovery": _l("発生日は発見日以前にしてください。"),
    "before_discovery": _l("報告日時は発見日時以後にしてください。"),
}


def _incident_or_404(incident_id: str) -> Incident:
    found = incidents.get(incident_id)
    if found is None:
        abort(404)
    return found


def _audit_read(tag: AuditTag, subject_id: str = "", **details) -> None:
    audit.record(
        tag,
        staff=g.staff,
        subject_type="incident",
        subject_id=subject_id,
        remote_addr=remote_addr(),
        **details,
    )


def _values(form: IncidentForm) -> incidents.IncidentValues:
    return incidents.IncidentValues(
        content=form.content.data or "",
        discovered_at=incidents.local_to_utc(form.discovered_at.data),
        occurred_on=form.occurred_on.data,
        affected_count=form.affected_count.data,
        place=form.place.data,
        circumstances=form.circumstances.data,
        actions=form.actions.data,
        reported_to_city_at=incidents.local_to_utc(form.reported_to_city_at.data),
        reported_to_commission_at=incidents.local_to_utc(form.reported_to_commission_at.data),
        status=form.status.data,
    )


def _save(form: IncidentForm, incident: Incident | None):
    """Create or update; a refused value becomes that field's error. Returns the incident or None."""
    try:
        if incident is None:
            return incidents.create(_values(form), staff=g.staff, remote_addr=remote_addr())
        incidents.update(incident, _values(form), staff=g.staff, remote_addr=remote_addr())
        return incident
    except incidents.IncidentRejected as refused:
        getattr(form, refused.field).errors = [str(REJECTED.get(refused.reason, REJECTED["unknown"]))]
        return None


@bp.get("/incidents")
@requires(Permission.INCIDENT_READ)
def incident_list():
    found = incidents.register()
    _audit_read(AuditTag.INCIDENT_VIEWED, count=len(found), screen="list")
    return render_template("admin/incidents.html", incidents=found, status_labels=STATUS_LABELS)


@bp.route("/incidents/new", methods=["GET", "POST"])
@requires(Permission.INCIDENT_MANAGE)
def incident_new():
    form = IncidentForm()
    if request.method == "GET":
        form.discovered_at.data = dates.tokyo(dates.now()).replace(tzinfo=None, second=0, microsecond=0)
    if form.validate_on_submit():
        incident = _save(form, None)
        if incident is not None:
            flash(_("記録しました。"), "success")
            return redirect(url_for("admin.incident_detail", incident_id=incident.id))
    return render_template("admin/incident_form.html", form=form, incident=None)


def _show(incident_id: str, *, printing: bool):
    incident = _incident_or_404(incident_id)
    _audit_read(AuditTag.INCIDENT_PRINTED if printing else AuditTag.INCIDENT_VIEWED, incident.id)
    return render_template(
        "admin/incident.html",
        incident=incident,
        status_labels=STATUS_LABELS,
        printing=printing,
        printed_at=dates.now(),
    )


@bp.get("/incidents/<incident_id>")
@requires(Permission.INCIDENT_READ)
def incident_detail(incident_id: str):
    return _show(incident_id, printing=False)


@bp.get("/incidents/<incident_id>/print")
@requires(Permission.INCIDENT_READ)
def incident_print(incident_id: str):
    """The A4 page for the report to the city (R8.3)."""
    return _show(incident_id, printing=True)


def _local(value):
    return dates.tokyo(value).replace(tzinfo=None) if value else None


@bp.route("/incidents/<incident_id>/edit", methods=["GET", "POST"])
@requires(Permission.INCIDENT_MANAGE)
def incident_edit(incident_id: str):
    incident = _incident_or_404(incident_id)
    form = IncidentForm()
    if request.method == "GET":
        _audit_read(AuditTag.INCIDENT_VIEWED, incident.id, screen="edit")
        for name in (
            "content",
            "place",
            "circumstances",
            "actions",
            "occurred_on",
            "affected_count",
            "status",
        ):
            getattr(form, name).data = getattr(incident, name)
        for name in ("discovered_at", "reported_to_city_at", "reported_to_commission_at"):
            getattr(form, name).data = _local(getattr(incident, name))
    elif form.validate_on_submit() and _save(form, incident) is not None:
        flash(_("保存しました。"), "success")
        return redirect(url_for("admin.incident_detail", incident_id=incident.id))
    return render_template("admin/incident_form.html", form=form, incident=incident)
