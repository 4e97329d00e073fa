"""Twilio's webhooks (R4.2, R4.4). Twilio cannot sign in or hold a CSRF token: a request is
trusted only when its X-Twilio-Signature checks out against our auth token and the public URL
Twilio called (PITFALLS: behind a TLS proxy, validate the URL Twilio saw, not the one Flask sees).

Handlers are idempotent on CallSid/RecordingSid: signatures carry no timestamp, so a captured
request can be replayed, and Twilio itself retries.
"""

from __future__ import annotations

import functools
from email.utils import parsedate_to_datetime

from flask import Blueprint, Response, abort, current_app, request, url_for
from twilio.request_validator import RequestValidator
from twilio.twiml.voice_response import VoiceResponse

from madoguchi import audit, calls
from madoguchi.audit import AuditTag
from staffweb.guard import public, remote_addr

bp = Blueprint("telephony", __name__, url_prefix="/twilio")

RECORDING_NOTICE = (
    "お電話ありがとうございます。{city} マイナンバーカード交付予約センターです。"
    "応対の品質向上と、お申し出内容の確認のため、この通話は録音させていただきます。"
    "オペレーターにおつなぎします。しばらくお待ちください。"
)
ALL_BUSY = (
    "ただいま電話が大変混み合っており、おつなぎできませんでした。"
    "恐れ入りますが、しばらくたってからおかけ直しください。"
    "インターネットでのご予約は、二十四時間受け付けております。"
)


def public_url() -> str:
    """The URL Twilio signed: the configured public base (if any) plus this path and query."""
    base = current_app.config.get("TWILIO_WEBHOOK_BASE_URL", "").rstrip("/")
    if not base:
        return request.url
    path = request.script_root + request.full_path
    return base + (path[:-1] if path.endswith("?") else path)


def signed(view):
    """Refuse (403, audited) any request whose Twilio signature does not verify."""

    @functools.wraps(view)
    def wrapper(*args, **kwargs):
        token = current_app.config.get("TWILIO_AUTH_TOKEN", "")
        signature = request.headers.get("X-Twilio-Signature", "")
        valid = bool(token and signature) and RequestValidator(token).validate(
            public_url(), request.form, signature
        )
        if not valid:
            reason = "no_token" if not token else ("missing" if not signature else "invalid")
            audit.record(
                AuditTag.WEBHOOK_REJECTED,
                subject_type="webhook",
                subject_id=request.endpoint or "",
                result="denied",
                remote_addr=remote_addr(),
                reason=reason,
            )
            current_app.logger.warning("Twilio webhook %s refused: signature %s", request.endpoint, reason)
            abort(403)
        return view(*args, **kwargs)

    return public(wrapper)


def twiml(response: VoiceResponse) -> Response:
    return Response(str(response), mimetype="application/xml")


def _dial_target(dial, target: str) -> None:
    if target.startswith("client:"):
        dial.client(target.removeprefix("client:"))
    elif target.startswith("sip:"):
        dial.sip(target)
    else:
        dial.number(target)


@bp.post("/voice")
@signed
def voice():
    """An incoming call: store it (the consoles pop it up), tell the caller it is recorded, record
    both sides from the moment an operator answers, and put the call through."""
    call_sid = request.form.get("CallSid", "")[:64]
    if not call_sid:
        abort(400)
    calls.incoming(call_sid, request.form.get("From"))
    config = current_app.config
    response = VoiceResponse()
    response.say(RECORDING_NOTICE.format(city=config["CITY_NAME"]), language="ja-JP")
    dial = response.dial(
        action=url_for(".dial_ended", _external=False),
        timeout=60,
        record="record-from-answer-dual",
        recording_status_callback=url_for(".recording_status"),
        recording_status_callback_event="in-progress completed absent",
    )
    _dial_target(dial, config["CALL_CENTER_OPERATOR_TARGET"])
    return twiml(response)


@bp.post("/dial-ended")
@signed
def dial_ended():
    """After <Dial>: if no operator answered, say so politely and hang up."""
    response = VoiceResponse()
    if request.form.get("DialCallStatus") != "completed":
        response.say(ALL_BUSY, language="ja-JP")
    response.hangup()
    return twiml(response)


@bp.post("/status")
@signed
def call_status():
    """The call's status callback (configured on the phone number in Twilio's console)."""
    duration = request.form.get("CallDuration", "")
    calls.status_changed(
        request.form.get("CallSid", "")[:64],
        request.form.get("CallStatus", ""),
        duration=int(duration) if duration.isdigit() else None,
    )
    return Response(status=204)


@bp.post("/recording")
@signed
def recording_status():
    """Recording-status callback: the recording's metadata (the audio stays where it is)."""
    form = request.form
    recording_sid = form.get("RecordingSid", "")[:64]
    if not recording_sid:
        abort(400)
    try:
        started = (
            parsedate_to_datetime(form["RecordingStartTime"]) if form.get("RecordingStartTime") else None
        )
    except (TypeError, ValueError):
        started = None
    duration, channels = form.get("RecordingDuration", ""), form.get("RecordingChannels", "")
    calls.recording_status(
        recording_sid,
        call_sid=form.get("CallSid", "")[:64] or None,
        status=form.get("RecordingStatus", "")[:16] or "unknown",
        started_at=started if started is not None and started.tzinfo is not None else None,
        duration=int(duration) if duration.isdigit() else None,
        channels=int(channels) if channels.isdigit() else None,
    )
    return Response(status=204)
