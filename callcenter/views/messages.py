"""Messages that could not be delivered (issue 4: "a failed send is retried and shown, never
lost"). Supervisors see them without the recipient's address or number, and may retry one now."""

from __future__ import annotations

from flask import abort, flash, g, redirect, render_template, url_for
from flask_babel import gettext as _

from madoguchi import audit, notify
from madoguchi.audit import AuditTag
from madoguchi.permissions import Permission
from staffweb.guard import remote_addr, requires

from ..forms import PlainForm
from . import bp

TEMPLATE_LABELS = {
    "booking_confirmed": "予約の確認",
    "booking_changed": "変更の確認",
    "booking_cancelled": "取消しの確認",
    "booking_reminder": "前日のお知らせ",
}


@bp.app_template_filter("message_template")
def message_template_label(value: str) -> str:
    return _(TEMPLATE_LABELS.get(value, value))


@bp.get("/messages/undelivered")
@requires(Permission.MESSAGES)
def undelivered_messages():
    rows = notify.undelivered()
    audit.record(
        AuditTag.MESSAGES_VIEWED,
        staff=g.staff,
        subject_type="messages",
        remote_addr=remote_addr(),
        count=len(rows),
    )
    return render_template("callcenter/undelivered.html", messages=rows, form=PlainForm())


@bp.post("/messages/<message_id>/retry")
@requires(Permission.MESSAGES)
def retry_message(message_id: str):
    if not PlainForm().validate_on_submit():
        abort(400)
    message = notify.retry_now(message_id[:32])
    if message is None:
        abort(404)
    audit.record(
        AuditTag.MESSAGE_RETRIED,
        staff=g.staff,
        subject_type="message",
        subject_id=message.id,
        remote_addr=remote_addr(),
    )
    flash(_("再送を予約しました。まもなく送信されます。"), "success")
    return redirect(url_for(".undelivered_messages"))
