"""Paper for the venues (R6.2, R6.4, R6 no-shows): the shipping ledger with its 控え, the list of
those who have not collected their card, and their re-issue notices and envelope labels.

Each PDF holds personal data: producing one is an export, audited with what it covered (never the
values), and the response is never cached.
"""

from __future__ import annotations

from datetime import timedelta

from flask import current_app, g, make_response, render_template, request

from madoguchi import audit, dates, ledgers, printing
from madoguchi.audit import AuditTag
from madoguchi.permissions import Permission
from staffweb.guard import remote_addr, requires

from ..forms import PeriodForm, UncollectedForm
from . import bp
from .venues import _venue_in_scope


def _pdf(data: bytes, filename: str):
    response = make_response(data)
    response.headers["Content-Type"] = "application/pdf"
    response.headers["Content-Disposition"] = f'attachment; filename="{filename}"'
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.route("/venues/<int:venue_id>/ledger", methods=["GET", "POST"])
@requires(Permission.LEDGER_PRINT)
def ledger(venue_id: int):
    venue = _venue_in_scope(venue_id)
    form = PeriodForm()
    if request.method == "GET":
        tomorrow = dates.today() + timedelta(days=1)
        form.first_day.data = form.first_day.data or tomorrow
        form.last_day.data = form.last_day.data or tomorrow
    if not form.validate_on_submit():
        return render_template("admin/ledger.html", venue=venue, form=form)
    first, last = form.first_day.data, form.last_day.data
    rows = ledgers.ledger_rows(venue.id, first, last)
    data = printing.shipping_ledger(
        venue_name=venue.display_name,
        first_day=first,
        last_day=last,
        rows=rows,
        printed_at=dates.tokyo(dates.now()),
        city_name=current_app.config["CITY_NAME"],
    )
    audit.record(
        AuditTag.LEDGER_EXPORTED,
        staff=g.staff,
        subject_type="venue",
        subject_id=venue.id,
        remote_addr=remote_addr(),
        first_day=first.isoformat(),
        last_day=last.isoformat(),
        count=len(rows),
    )
    return _pdf(data, f"ledger-{venue.code}-{first:%Y%m%d}-{last:%Y%m%d}.pdf")


def _kinds(form: UncollectedForm) -> set[ledgers.Uncollected]:
    allowed = {k.value for k in ledgers.Uncollected}
    return {ledgers.Uncollected(k) for k in form.kinds.data or [] if k in allowed}


@bp.route("/venues/<int:venue_id>/uncollected", methods=["GET", "POST"])
@requires(Permission.LEDGER_PRINT)
def uncollected(venue_id: int):
    """未受領者: the list, then the notices or labels for the kinds chosen."""
    venue = _venue_in_scope(venue_id)
    if request.method == "POST":
        form = UncollectedForm()
        valid = form.validate()
    elif request.args:
        form = UncollectedForm(request.args, meta={"csrf": False})  # a filter: nothing changes
        valid = form.validate()
    else:
        form = UncollectedForm(formdata=None, kinds=[k.value for k in ledgers.Uncollected])
        valid = True
    if not valid:
        return render_template("admin/uncollected.html", venue=venue, form=form, people=[])
    kinds = _kinds(form)
    people = ledgers.uncollected(venue.id, dates.now(), kinds)
    document = form.document.data if request.method == "POST" else ""
    if document in ("notices", "labels") and people:
        notices = [ledgers.notice_for(applicant, venue) for applicant, _ in people]
        if document == "notices":
            data = printing.reissue_notices(notices, _contact(), issued_on=dates.today())
            tag, name = AuditTag.NOTICES_EXPORTED, "reissue-notices"
        else:
            data = printing.address_labels(notices)
            tag, name = AuditTag.LABELS_EXPORTED, "address-labels"
        audit.record(
            tag,
            staff=g.staff,
            subject_type="venue",
            subject_id=venue.id,
            remote_addr=remote_addr(),
            kinds=sorted(kinds),
            count=len(notices),
        )
        return _pdf(data, f"{name}-{venue.code}-{dates.today():%Y%m%d}.pdf")
    audit.record(
        AuditTag.UNCOLLECTED_LISTED,
        staff=g.staff,
        subject_type="venue",
        subject_id=venue.id,
        remote_addr=remote_addr(),
        kinds=sorted(kinds),
        count=len(people),
    )
    return render_template("admin/uncollected.html", venue=venue, form=form, people=people)


def _contact() -> printing.Contact:
    config = current_app.config
    return printing.Contact(
        city_name=config["CITY_NAME"],
        call_center_phone=config["CALL_CENTER_PHONE"],
        call_center_hours=config["CALL_CENTER_HOURS"],
        web_url=config["RESIDENTS_URL"],
    )
