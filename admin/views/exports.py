"""The export ledger (持ち出し管理簿, R7.5): request, approval by another person, the encrypted file
with its passphrase shown once, return or destruction, and the printed ledger for the city."""

from __future__ import annotations

from datetime import timedelta

from flask import abort, current_app, g, redirect, render_template, request, send_file, url_for

from madoguchi import audit, dates, exports
from madoguchi import venues as venue_service
from madoguchi.audit import AuditTag
from madoguchi.models import ExportStatus
from madoguchi.permissions import Permission
from madoguchi.printing.export_ledger import export_ledger
from staffweb.guard import can, remote_addr, requires

from ..compliance_forms import CloseForm, DecisionForm, ExportRequestForm, PeriodFilterForm, ProduceForm
from . import bp
from .ledgers import _pdf

REFUSALS = {
    "dataset": "この種類のデータは持ち出せません。",
    "venue": "会場が見つかりません。",
    "period": "期間を確認してください。",
    "period_too_long": f"期間は{exports.MAX_DAYS}日以内にしてください。",
    "text": f"目的・持ち出し先・コメントは{exports.TEXT_MAX}文字以内で入力してください。",
    "not_requested": "この申請はすでに判断されています。",
    "self_approval": "自分の申請は承認できません。別の承認者に依頼してください。",
    "not_approved": "承認された申請だけがファイルを作成できます。",
    "not_requester": "ファイルを作成できるのは申請者本人だけです。",
    "not_produced": "ファイルが作成された申請だけを完了にできます。",
    "closure": "返却か廃棄かを選んでください。",
}


def _entry_or_404(entry_id: str):
    entry = exports.get(entry_id)
    if entry is None:
        abort(404)
    return entry


def _period(form: PeriodFilterForm):
    today = dates.today()
    since = form.since.data or today - timedelta(days=365)
    until = form.until.data or today
    return since, until, dates.day_bounds(since)[0], dates.day_bounds(until)[1]


@bp.get("/exports")
@requires(Permission.EXPORT_LEDGER)
def export_ledger_list():
    form = PeriodFilterForm(request.args)
    since, until, start, end = _period(form) if form.validate() else _period(PeriodFilterForm(formdata=None))
    entries = exports.ledger(start, end)
    audit.record(AuditTag.EXPORT_LEDGER_VIEWED, staff=g.staff, remote_addr=remote_addr(), count=len(entries))
    return render_template(
        "admin/exports.html",
        form=form,
        entries=entries,
        lines=exports.ledger_lines(entries),
        since=since,
        until=until,
        labels=exports.STATUS_LABELS,
    )


@bp.get("/exports/print")
@requires(Permission.EXPORT_LEDGER)
def export_ledger_print():
    form = PeriodFilterForm(request.args)
    since, until, start, end = _period(form) if form.validate() else _period(PeriodFilterForm(formdata=None))
    entries = exports.ledger(start, end)
    data = export_ledger(
        exports.ledger_lines(entries),
        period=f"{dates.wareki(since)}〜{dates.wareki(until)}",
        printed_at=dates.now(),
        city_name=current_app.config["CITY_NAME"],
    )
    audit.record(AuditTag.EXPORT_LEDGER_PRINTED, staff=g.staff, remote_addr=remote_addr(), count=len(entries))
    return _pdf(data, f"export-ledger-{since:%Y%m%d}-{until:%Y%m%d}.pdf")


@bp.route("/exports/new", methods=["GET", "POST"])
@requires(Permission.EXPORT_REQUEST)
def export_new():
    form = ExportRequestForm()
    form.venue_id.choices = [("", "選んでください")] + [
        (v.id, v.display_name) for v in venue_service.all_venues()
    ]
    refusal = None
    if form.validate_on_submit():
        try:
            entry = exports.request_export(
                actor=g.staff,
                dataset=exports.Dataset.BOOKINGS,
                venue_id=form.venue_id.data,
                first_day=form.first_day.data,
                last_day=form.last_day.data,
                purpose=form.purpose.data,
                destination=form.destination.data,
                remote_addr=remote_addr(),
            )
            return redirect(url_for("admin.export_detail", entry_id=entry.id))
        except exports.ExportRefused as refused:
            refusal = REFUSALS.get(refused.reason, "申請できませんでした。")
    return render_template("admin/export_new.html", form=form, refusal=refusal)


def _detail(entry, *, refusal=None, status=200, **forms):
    names = exports.staff_names([entry])
    return (
        render_template(
            "admin/export_detail.html",
            entry=entry,
            line=exports.ledger_lines([entry])[0],
            names=names,
            labels=exports.STATUS_LABELS,
            decision_form=forms.get("decision_form") or DecisionForm(formdata=None),
            produce_form=ProduceForm(formdata=None),
            close_form=forms.get("close_form") or CloseForm(formdata=None),
            refusal=refusal,
            mine=entry.requested_by == g.staff.id,
            can_decide=can(Permission.EXPORT_APPROVE) and entry.status == ExportStatus.REQUESTED,
        ),
        status,
    )


@bp.get("/exports/<entry_id>")
@requires(Permission.EXPORT_LEDGER)
def export_detail(entry_id: str):
    return _detail(_entry_or_404(entry_id))


@bp.post("/exports/<entry_id>/decide")
@requires(Permission.EXPORT_APPROVE)
def export_decide(entry_id: str):
    entry = _entry_or_404(entry_id)
    form = DecisionForm()
    if not form.validate():
        return _detail(entry, decision_form=form, status=400)
    try:
        exports.decide(
            entry,
            actor=g.staff,
            approve=form.decision.data == "approve",
            note=form.note.data,
            remote_addr=remote_addr(),
        )
    except exports.ExportRefused as refused:
        return _detail(entry, refusal=REFUSALS.get(refused.reason), status=409)
    return redirect(url_for("admin.export_detail", entry_id=entry.id))


@bp.post("/exports/<entry_id>/produce")
@requires(Permission.EXPORT_REQUEST)
def export_produce(entry_id: str):
    """The passphrase is in this one response only (no-store): it is never stored or shown again."""
    entry = _entry_or_404(entry_id)
    if not ProduceForm().validate():
        return _detail(entry, status=400)
    try:
        produced = exports.produce(entry, actor=g.staff, remote_addr=remote_addr())
    except exports.ExportRefused as refused:
        return _detail(entry, refusal=REFUSALS.get(refused.reason), status=409)
    return render_template("admin/export_produced.html", entry=entry, produced=produced)


@bp.get("/exports/<entry_id>/file")
@requires(Permission.EXPORT_REQUEST)
def export_file(entry_id: str):
    entry = _entry_or_404(entry_id)
    path = exports.spool_path(entry)
    if entry.status != ExportStatus.PRODUCED or entry.requested_by != g.staff.id or not path.exists():
        abort(404)
    audit.record(
        AuditTag.EXPORT_DOWNLOADED,
        staff=g.staff,
        subject_type="export_request",
        subject_id=entry.id,
        remote_addr=remote_addr(),
    )
    response = send_file(
        path, mimetype="application/octet-stream", as_attachment=True, download_name=path.name
    )
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.post("/exports/<entry_id>/close")
@requires(Permission.EXPORT_REQUEST)
def export_close(entry_id: str):
    entry = _entry_or_404(entry_id)
    form = CloseForm()
    if not form.validate():
        return _detail(entry, close_form=form, status=400)
    try:
        exports.close(
            entry, actor=g.staff, closure=form.closure.data, note=form.note.data, remote_addr=remote_addr()
        )
    except exports.ExportRefused as refused:
        return _detail(entry, refusal=REFUSALS.get(refused.reason), status=409)
    return redirect(url_for("admin.export_detail", entry_id=entry.id))
