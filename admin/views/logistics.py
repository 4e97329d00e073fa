"""The logistics desk (R6.3): record counts, correct them with a reason, see every balance."""

from __future__ import annotations

from flask import abort, flash, g, redirect, render_template, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from wtforms.fields.choices import SelectChoice

from madoguchi import audit, dates, logistics, venues
from madoguchi.audit import AuditTag
from madoguchi.extensions import db
from madoguchi.models import LogisticsEntry, LogisticsKind
from madoguchi.permissions import Permission
from staffweb.guard import remote_addr, requires

from ..forms import CorrectionForm, CountForm
from . import bp

KIND_LABELS = {
    LogisticsKind.NOTICES_RECEIVED: _l("交付通知書 区から受領"),
    LogisticsKind.NOTICES_SENT: _l("交付通知書 発送"),
    LogisticsKind.CARDS_RECEIVED: _l("カード 区から受領"),
    LogisticsKind.CARDS_TO_VENUE: _l("カード 会場へ送付"),
    LogisticsKind.CARDS_HANDED_OVER: _l("カード 会場で交付"),
    LogisticsKind.CARDS_RETURNED: _l("カード 会場から返却"),
}


def _count_form(**kwargs) -> CountForm:
    form = CountForm(**kwargs)
    form.kind.choices = [SelectChoice("", _("選んでください"))] + [
        SelectChoice(k.value, str(label)) for k, label in KIND_LABELS.items()
    ]
    form.venue_id.choices = [SelectChoice("", _("（会場なし）"))] + [
        SelectChoice(str(v.id), v.display_name) for v in venues.all_venues()
    ]
    return form


def _page(form: CountForm):
    history = logistics.entries()
    return render_template(
        "admin/logistics.html",
        form=form,
        result=logistics.reconcile(),
        entries=history,
        superseded={e.corrects_id for e in history if e.corrects_id},
        kind_labels=KIND_LABELS,
    )


@bp.get("/logistics", endpoint="logistics")
@requires(Permission.LOGISTICS)
def logistics_screen():
    return _page(_count_form(formdata=None, day=dates.today()))


@bp.post("/logistics")
@requires(Permission.LOGISTICS)
def logistics_record():
    form = _count_form()
    if not form.validate():
        return _page(form)
    kind = LogisticsKind(form.kind.data)
    try:
        entry = logistics.record(
            kind, form.quantity.data, day=form.day.data, staff_id=g.staff.id, venue_id=form.venue_id.data
        )
    except logistics.CountRejected:
        form.quantity.errors = [_("この内容では記録できません。項目・会場・数量を確かめてください。")]
        return _page(form)
    audit.record(
        AuditTag.LOGISTICS_RECORDED,
        staff=g.staff,
        subject_type="logistics_entry",
        subject_id=entry.id,
        remote_addr=remote_addr(),
        kind=kind.value,
        quantity=entry.quantity,
        venue_id=entry.venue_id,
    )
    flash(_("記録しました。"), "success")
    return redirect(url_for("admin.logistics"))


@bp.route("/logistics/<entry_id>/correct", methods=["GET", "POST"])
@requires(Permission.LOGISTICS)
def logistics_correct(entry_id: str):
    entry = db.session.get(LogisticsEntry, entry_id[:64])
    if entry is None:
        abort(404)
    form = CorrectionForm()
    if not logistics.in_force(entry):
        flash(_("この記録はすでに訂正されています。最新の記録を訂正してください。"), "error")
        return redirect(url_for("admin.logistics"))
    if form.validate_on_submit():
        try:
            fixed = logistics.correct(entry.id, form.quantity.data, form.reason.data, staff_id=g.staff.id)
        except logistics.CountRejected:
            form.quantity.errors = [_("この内容では訂正できません。")]
        else:
            audit.record(
                AuditTag.LOGISTICS_CORRECTED,
                staff=g.staff,
                subject_type="logistics_entry",
                subject_id=fixed.id,
                remote_addr=remote_addr(),
                corrects=entry.id,
                kind=entry.kind,
                old_quantity=entry.quantity,
                quantity=fixed.quantity,
            )
            flash(_("訂正しました。"), "success")
            return redirect(url_for("admin.logistics"))
    elif not form.is_submitted():
        form.quantity.data = entry.quantity
    return render_template("admin/logistics_correct.html", entry=entry, form=form, kind_labels=KIND_LABELS), (
        422 if form.errors else 200
    )
