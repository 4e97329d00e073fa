"""Incoming calls: the pop-up feed, taking a call, the call log and its statistics (R4.2, R4.3).

The feed is a server-sent event stream with a JSON fallback for browsers or proxies that cannot
keep it open. Neither carries a personal value: a call's id, when it started, and how many
applicants match the caller; the bookings themselves are shown (and audited) when the operator
takes the call.
"""

from __future__ import annotations

import json
import time
from datetime import timedelta

from flask import (
    Response,
    abort,
    current_app,
    flash,
    g,
    jsonify,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask_babel import gettext as _

from madoguchi import audit, calls, dates
from madoguchi.audit import AuditTag
from madoguchi.extensions import db
from madoguchi.models import CALL_CATEGORY_LABELS, Call
from madoguchi.permissions import Permission
from staffweb.guard import background, can, remote_addr, requires

from ..forms import CallLogForm, PlainForm
from . import bp, period_asked
from .console import audit_search

CALL_STATUS_LABELS = {
    "queued": "待機中",
    "ringing": "呼出し中",
    "in-progress": "通話中",
    "completed": "終了",
    "busy": "話し中",
    "no-answer": "応答なし",
    "failed": "つながらず",
    "canceled": "切断",
}
STREAM_SECONDS = 25  # then the browser reconnects: no worker is held for long
STREAM_POLL_SECONDS = 1.0


@bp.app_template_filter("call_status")
def call_status_label(value: str) -> str:
    return _(CALL_STATUS_LABELS.get(value, value))


def _feed() -> list[dict]:
    """Waiting calls without personal values."""
    waiting = calls.waiting()
    return [
        {
            "id": call.id,
            "since": f"{dates.tokyo(call.started_at):%H:%M:%S}",
            "matches": calls.caller_matches(call),
            "withheld": call.caller_bidx is None,
        }
        for call in waiting
    ]


@bp.get("/calls/waiting.json")
@requires(Permission.BOOKING_SEARCH)
@background
def waiting_json():
    return jsonify({"calls": _feed()})


@bp.get("/calls/stream")
@requires(Permission.BOOKING_SEARCH)
@background
def waiting_stream():
    app = current_app._get_current_object()
    seconds = float(app.config.get("CALL_STREAM_SECONDS", STREAM_SECONDS))

    def events():
        # Each poll is its own short read: a transaction held open would keep an old snapshot
        # (and, on SQLite, stop the WAL from being checkpointed).
        last = None
        deadline = time.monotonic() + seconds
        yield "retry: 1000\n\n"
        with app.app_context():
            try:
                while time.monotonic() < deadline:
                    feed = _feed()
                    db.session.rollback()
                    if feed != last:
                        last = feed
                        yield f"event: calls\ndata: {json.dumps(feed)}\n\n"
                    else:
                        yield ": keep-alive\n\n"
                    time.sleep(STREAM_POLL_SECONDS)
            finally:
                db.session.remove()

    response = Response(events(), mimetype="text/event-stream")
    response.headers["X-Accel-Buffering"] = "no"  # a proxy must pass events on at once
    return response


def _own_call(call_id: str) -> Call:
    """A call this operator took (or a supervisor may see); anything else does not exist."""
    call = db.session.get(Call, call_id) if len(call_id) <= 32 else None
    if call is None or (call.operator_id != g.staff.id and not can(Permission.CALL_STATS)):
        abort(404)
    return call


@bp.post("/calls/<call_id>/take")
@requires(Permission.BOOKING_SEARCH)
def take_call(call_id: str):
    if not PlainForm().validate_on_submit():
        abort(400)
    call = db.session.get(Call, call_id) if len(call_id) <= 32 else None
    if call is None:
        abort(404)
    if not calls.take(call.id, g.staff.id):
        flash(_("この電話には別のオペレーターが応答しました。"), "error")
        return redirect(url_for(".console"))
    audit.record(
        AuditTag.CALL_TAKEN, staff=g.staff, subject_type="call", subject_id=call.id, remote_addr=remote_addr()
    )
    session["active_call"] = call.id
    return redirect(url_for(".call_screen", call_id=call.id))


@bp.post("/calls/manual")
@requires(Permission.BOOKING_SEARCH)
def manual_call():
    """A call that did not come through Twilio (e.g. transferred by the PBX): logged the same way."""
    if not PlainForm().validate_on_submit():
        abort(400)
    call = calls.start_manual(g.staff.id)
    session["active_call"] = call.id
    return redirect(url_for(".call_screen", call_id=call.id))


def _about_choices(call: Call, hits) -> list[tuple[str, str]]:
    choices = [("", _("予約に関係しない"))]
    seen = set()
    about = [
        (hit.applicant_id, hit.name, hit.booking and hit.booking.id, hit.booking and hit.booking.starts_at)
        for hit in hits
    ]
    if call.applicant is not None:
        linked = call.booking
        about.insert(
            0,
            (call.applicant.id, call.applicant.name, linked and linked.id, linked and linked.slot.starts_at),
        )
    for applicant_id, name, booking_id, starts_at in about:
        key = f"{applicant_id}:{booking_id or ''}"
        if key in seen:
            continue
        seen.add(key)
        when = f" {dates.tokyo(starts_at):%m/%d %H:%M}" if starts_at is not None else ""
        choices.append((key, f"{name}{when}"))
    return choices


@bp.route("/calls/<call_id>", methods=["GET", "POST"])
@requires(Permission.BOOKING_SEARCH)
def call_screen(call_id: str):
    call = _own_call(call_id)
    hits = calls.callers_hits(call)
    if call.caller_bidx:
        audit_search("caller", len(hits))
    form = CallLogForm(category=call.category, note=call.note)
    form.about.choices = _about_choices(call, hits)
    if form.about.data is None:
        form.about.data = form.about.choices[1][0] if call.applicant_id else ""
    if form.validate_on_submit():
        applicant_id, _sep, booking_id = (form.about.data or "").partition(":")
        allowed = {value for value, _label in form.about.choices}
        if (form.about.data or "") not in allowed:
            form.about.errors.append(_("関連する予約を選び直してください。"))
        else:
            try:
                calls.log(
                    call,
                    category=form.category.data,
                    note=form.note.data,
                    staff_id=g.staff.id,
                    applicant_id=applicant_id or None,
                    booking_id=booking_id or None,
                )
            except calls.CallLogRejected:
                form.about.errors.append(_("関連する予約を選び直してください。"))
            else:
                audit.record(
                    AuditTag.CALL_LOGGED,
                    staff=g.staff,
                    subject_type="call",
                    subject_id=call.id,
                    remote_addr=remote_addr(),
                    category=call.category,
                )
                session.pop("active_call", None)
                flash(_("通話記録を保存しました。"), "success")
                return redirect(url_for(".console"))
    return render_template(
        "callcenter/call.html",
        call=call,
        hits=hits,
        form=form,
    ), (422 if request.method == "POST" else 200)


@bp.get("/calls")
@requires(Permission.BOOKING_SEARCH)
def call_list():
    everyone = can(Permission.CALL_STATS)
    rows = calls.recent(None if everyone else g.staff.id, limit=100)
    return render_template(
        "callcenter/call_list.html", calls=rows, everyone=everyone, labels=CALL_CATEGORY_LABELS
    )


@bp.get("/calls/statistics")
@requires(Permission.CALL_STATS)
def call_statistics():
    first, last = period_asked(dates.today() - timedelta(days=13))
    days = calls.statistics(first, last)
    audit.record(
        AuditTag.CALL_STATS_VIEWED,
        staff=g.staff,
        subject_type="call_statistics",
        subject_id=f"{first.isoformat()}..{last.isoformat()}",
        remote_addr=remote_addr(),
    )
    totals = {category: sum(day.by_category[category] for day in days) for category in CALL_CATEGORY_LABELS}
    unlogged = sum(day.unlogged for day in days)
    peak = max([day.total for day in days] + [1])
    return render_template(
        "callcenter/statistics.html",
        days=days,
        first=first,
        last=last,
        totals=totals,
        unlogged=unlogged,
        peak=peak,
        labels=CALL_CATEGORY_LABELS,
    )
