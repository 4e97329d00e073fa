"""Call recordings for supervisors (R4.4, R4.5): the list, audited playback, keeping one longer,
and the provision ledger (004 別紙④第7条). There is no edit and no download: playback streams
inline with no-store; a copy leaves only through an approved provision request."""

from __future__ import annotations

from datetime import timedelta

from flask import Response, abort, flash, g, redirect, render_template, request, url_for
from flask_babel import gettext as _
from sqlalchemy import select

from madoguchi import audit, dates, recordings
from madoguchi.audit import AuditTag
from madoguchi.extensions import db
from madoguchi.models import CallRecording, RecordingProvision, Staff
from madoguchi.permissions import Permission
from staffweb.guard import remote_addr, requires

from ..forms import DecisionForm, ExtendForm, PlainForm, ProvisionCloseForm, ProvisionForm
from . import bp, period_asked

REFUSALS = {
    "reason": "理由を入力してください（500文字以内）。",
    "deleted": "この録音はすでに削除されています。",
    "not_longer": "いまの保存期限より後の日付を指定してください。",
    "no_recordings": "提供する録音を選んでください。",
    "basis": "提供の根拠を選んでください。",
    "written_request": "刑事訴訟法第197条第2項による照会は、照会文書の番号等を記入してください。",
    "fields": "提供先と提供の範囲を入力してください。",
    "already_decided": "この申請はすでに決裁されています。",
    "self_approval": "申請した本人は承認できません。別の責任者が承認してください。",
    "not_approved": "承認された申請だけが引き渡せます。",
    "not_handed_over": "引き渡し済みの申請だけが返却・廃棄を記録できます。",
    "closure": "返却か廃棄かを選んでください。",
    "not_requester": "引渡しファイルは申請した本人が作成します。",
}
UNAVAILABLE = {
    "deleted": "この録音は保存期間が終わり、削除されています。",
    "missing": "録音ファイルが見つかりません。管理者に連絡してください。",
    "damaged": "録音ファイルが改変されているか壊れているため再生できません。管理者に連絡してください。",
    "twilio": "録音の保存先（Twilio）に接続できませんでした。しばらくしてからお試しください。",
}


def _recording(recording_id: str) -> CallRecording:
    found = db.session.get(CallRecording, recording_id) if len(recording_id) <= 32 else None
    if found is None:
        abort(404)
    return found


def _provision(provision_id: str) -> RecordingProvision:
    found = db.session.get(RecordingProvision, provision_id) if len(provision_id) <= 32 else None
    if found is None:
        abort(404)
    return found


@bp.get("/recordings")
@requires(Permission.RECORDINGS)
def recording_list():
    rows = db.session.scalars(
        select(CallRecording).order_by(CallRecording.created_at.desc()).limit(200)
    ).all()
    audit.record(
        AuditTag.RECORDINGS_LISTED,
        staff=g.staff,
        subject_type="recordings",
        remote_addr=remote_addr(),
        count=len(rows),
    )
    return render_template("callcenter/recordings.html", recordings=rows, today=dates.today())


@bp.get("/recordings/<recording_id>")
@requires(Permission.RECORDINGS)
def recording_detail(recording_id: str):
    recording = _recording(recording_id)
    minimum = recording.retain_until + timedelta(days=1) if recording.retain_until else dates.today()
    return render_template(
        "callcenter/recording.html",
        recording=recording,
        form=ExtendForm(until=minimum + timedelta(days=90)),
        provisions=recordings.provisions_of(recording),
    )


@bp.get("/recordings/<recording_id>/audio")
@requires(Permission.RECORDINGS)
def recording_audio(recording_id: str):
    """Stream for the page's player: inline, never cached, never offered as a download."""
    recording = _recording(recording_id)
    try:
        data = recordings.audio(recording)
    except recordings.RecordingUnavailable as unavailable:
        audit.record(
            AuditTag.RECORDING_PLAYED,
            staff=g.staff,
            subject_type="recording",
            subject_id=recording.id,
            result=unavailable.reason,
            remote_addr=remote_addr(),
        )
        return Response(
            _(UNAVAILABLE[unavailable.reason]),
            status=404 if unavailable.reason == "deleted" else 503,
            mimetype="text/plain",
        )
    audit.record(
        AuditTag.RECORDING_PLAYED,
        staff=g.staff,
        subject_type="recording",
        subject_id=recording.id,
        remote_addr=remote_addr(),
    )
    response = Response(data, mimetype="audio/wav")
    response.headers["Content-Disposition"] = "inline"
    response.headers["Cache-Control"] = "no-store, private"
    return response


@bp.post("/recordings/<recording_id>/extend")
@requires(Permission.RECORDINGS)
def recording_extend(recording_id: str):
    recording = _recording(recording_id)
    form = ExtendForm()
    if form.validate_on_submit():
        try:
            recordings.extend(recording, form.until.data, reason=form.reason.data, staff=g.staff)
        except recordings.ProvisionRefused as refused:
            flash(_(REFUSALS[refused.reason]), "error")
        else:
            audit.record(
                AuditTag.RECORDING_EXTENDED,
                staff=g.staff,
                subject_type="recording",
                subject_id=recording.id,
                remote_addr=remote_addr(),
                until=form.until.data.isoformat(),
            )
            flash(_("保存期限を延長しました。"), "success")
    else:
        flash(_("延長後の期限と理由を入力してください。"), "error")
    return redirect(url_for(".recording_detail", recording_id=recording.id))


# ---- the provision ledger ---------------------------------------------------------------------------
@bp.route("/recordings/<recording_id>/provide", methods=["GET", "POST"])
@requires(Permission.RECORDINGS)
def provision_new(recording_id: str):
    recording = _recording(recording_id)
    form = ProvisionForm()
    if form.validate_on_submit():
        try:
            provision = recordings.request_provision(
                [recording],
                requester=form.requester.data,
                basis=form.basis.data,
                basis_detail=form.basis_detail.data,
                scope=form.scope.data,
                staff=g.staff,
            )
        except recordings.ProvisionRefused as refused:
            form.basis_detail.errors.append(_(REFUSALS[refused.reason]))
        else:
            audit.record(
                AuditTag.PROVISION_REQUESTED,
                staff=g.staff,
                subject_type="provision",
                subject_id=provision.id,
                remote_addr=remote_addr(),
                basis=provision.legal_basis,
            )
            flash(_("提供の申請を記録しました。別の責任者の承認を受けてください。"), "success")
            return redirect(url_for(".provision_ledger"))
    return render_template("callcenter/provision_new.html", recording=recording, form=form), (
        422 if request.method == "POST" else 200
    )


@bp.get("/provisions")
@requires(Permission.RECORDINGS)
def provision_ledger():
    first, last = period_asked(dates.today().replace(day=1))
    rows = recordings.ledger(first, last)
    audit.record(
        AuditTag.PROVISION_LEDGER_VIEWED,
        staff=g.staff,
        subject_type="provision_ledger",
        subject_id=f"{first.isoformat()}..{last.isoformat()}",
        remote_addr=remote_addr(),
    )
    names = {s.id: s.name for s in db.session.scalars(select(Staff))}
    template = (
        "callcenter/provision_report.html" if request.args.get("print") else "callcenter/provisions.html"
    )
    return render_template(
        template,
        provisions=rows,
        first=first,
        last=last,
        names=names,
        labels=recordings.BASIS_LABELS,
        decision=DecisionForm(),
        close_form=ProvisionCloseForm(),
    )


def _after(provision: RecordingProvision, tag: AuditTag, message: str, **details):
    audit.record(
        tag,
        staff=g.staff,
        subject_type="provision",
        subject_id=provision.id,
        remote_addr=remote_addr(),
        **details,
    )
    flash(message, "success")
    return redirect(url_for(".provision_ledger"))


@bp.post("/provisions/<provision_id>/decide")
@requires(Permission.RECORDINGS)
def provision_decide(provision_id: str):
    provision = _provision(provision_id)
    form = DecisionForm()
    if not form.validate_on_submit() or form.approve.data not in ("yes", "no"):
        flash(_("承認か不承認かを選んでください。"), "error")
        return redirect(url_for(".provision_ledger"))
    try:
        recordings.decide(provision, approve=form.approve.data == "yes", staff=g.staff)
    except recordings.ProvisionRefused as refused:
        flash(_(REFUSALS[refused.reason]), "error")
        return redirect(url_for(".provision_ledger"))
    return _after(provision, AuditTag.PROVISION_DECIDED, _("決裁を記録しました。"), decision=provision.status)


@bp.post("/provisions/<provision_id>/close")
@requires(Permission.RECORDINGS)
def provision_close(provision_id: str):
    provision = _provision(provision_id)
    form = ProvisionCloseForm()
    if not form.validate_on_submit():
        flash(_(REFUSALS["closure"]), "error")
        return redirect(url_for(".provision_ledger"))
    try:
        recordings.close(provision, closure=form.closure.data)
    except recordings.ProvisionRefused as refused:
        flash(_(REFUSALS[refused.reason]), "error")
        return redirect(url_for(".provision_ledger"))
    return _after(
        provision, AuditTag.PROVISION_CLOSED, _("返却・廃棄を記録しました。"), closure=provision.closure
    )


@bp.post("/provisions/<provision_id>/handover")
@requires(Permission.RECORDINGS)
def provision_handover(provision_id: str):
    """Write the approved recordings into an encrypted file and show its passphrase once."""
    provision = _provision(provision_id)
    if not PlainForm().validate_on_submit():
        abort(400)
    try:
        package = recordings.hand_over(provision, staff=g.staff)
    except recordings.ProvisionRefused as refused:
        flash(_(REFUSALS[refused.reason]), "error")
        return redirect(url_for(".provision_ledger"))
    except recordings.RecordingUnavailable as unavailable:
        flash(_(UNAVAILABLE[unavailable.reason]), "error")
        return redirect(url_for(".provision_ledger"))
    audit.record(
        AuditTag.PROVISION_HANDED_OVER,
        staff=g.staff,
        subject_type="provision",
        subject_id=provision.id,
        remote_addr=remote_addr(),
        sha256=package.sha256,
        recordings=len(provision.recordings),
    )
    return render_template("callcenter/provision_handover.html", provision=provision, package=package)


@bp.get("/provisions/<provision_id>/file")
@requires(Permission.RECORDINGS)
def provision_file(provision_id: str):
    """The encrypted file (useless without the passphrase shown once), for the person who produced it."""
    provision = _provision(provision_id)
    if provision.status != "handed_over" or provision.handed_over_by != g.staff.id:
        abort(404)
    path = recordings.package_path(provision)
    if not path.exists():
        abort(404)
    response = Response(path.read_bytes(), mimetype="application/octet-stream")
    response.headers["Content-Disposition"] = f'attachment; filename="{path.name}"'
    return response
