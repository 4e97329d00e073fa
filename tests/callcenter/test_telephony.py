"""Twilio's voice webhooks (R4.2): accepted only with a valid signature, the caller told that the
call is recorded, the call stored with the caller's number encrypted, handlers idempotent."""

from __future__ import annotations

from sqlalchemy import select, text

from madoguchi.extensions import db
from madoguchi.models import Applicant, Call, CallRecording
from tests.staffsupport import audit_entries

from .conftest import AUTH_TOKEN, CALLER, incoming_call, twilio_post

CALL_SID = "CA" + "1" * 32


def _calls(app) -> list[Call]:
    with app.app_context():
        rows = db.session.scalars(select(Call)).all()
        for row in rows:
            db.session.expunge(row)
        return rows


def test_a_signed_call_is_answered_with_the_recording_notice_and_put_through(cc_app, client):
    """R4.2, R4.4: the TwiML says in Japanese that the call is recorded, records both sides from the
    answer with a recording-status callback, and dials the operators."""
    response = incoming_call(client)
    assert response.status_code == 200
    assert response.mimetype == "application/xml"
    twiml = response.get_data(as_text=True)
    assert '<Say language="ja-JP">' in twiml
    assert "この通話は録音させていただきます" in twiml
    assert 'record="record-from-answer-dual"' in twiml
    assert 'recordingStatusCallback="/twilio/recording"' in twiml
    assert 'action="/twilio/dial-ended"' in twiml
    assert "<Client>operators</Client>" in twiml
    assert twiml.index("<Say") < twiml.index("<Dial")


def test_the_caller_number_is_stored_encrypted_with_the_phone_index(cc_app, client):
    """R4.2, R2.2: the number is ciphertext at rest; its blind index is the applicants' phone index,
    so the caller's bookings are found without decrypting anything."""
    incoming_call(client)
    with cc_app.app_context():
        call = db.session.scalars(select(Call)).one()
        assert call.caller == "09011112222"
        assert call.caller_bidx == Applicant.phone_key("090-1111-2222")
        raw = db.session.execute(text("SELECT caller_ct FROM calls")).scalar_one()
        assert "1111" not in raw and "2222" not in raw


def test_a_repeated_webhook_records_one_call(cc_app, client):
    """R4.2: Twilio retries and a signed request can be replayed; CallSid makes it idempotent."""
    assert incoming_call(client).status_code == 200
    assert incoming_call(client).status_code == 200
    assert len(_calls(cc_app)) == 1


def test_a_withheld_number_is_stored_as_unknown(cc_app, client):
    incoming_call(client, caller="anonymous")
    (call,) = _calls(cc_app)
    assert call.caller_ct is None and call.caller_bidx is None


def test_missing_signature_is_refused_logged_and_stores_nothing(cc_app, client):
    """R4.2: no X-Twilio-Signature → 403, an audit entry, no call."""
    response = client.post("/twilio/voice", data={"CallSid": CALL_SID, "From": CALLER})
    assert response.status_code == 403
    assert _calls(cc_app) == []
    (entry,) = audit_entries(cc_app, "telephony:webhook_rejected")
    assert entry["result"] == "denied" and '"reason": "missing"' in entry["details"]
    assert "1111" not in entry["details"]


def test_a_signature_with_another_token_is_refused(cc_app, client):
    response = twilio_post(
        client, "/twilio/voice", {"CallSid": CALL_SID, "From": CALLER}, token="not-our-token"
    )
    assert response.status_code == 403
    assert _calls(cc_app) == []
    (entry,) = audit_entries(cc_app, "telephony:webhook_rejected")
    assert '"reason": "invalid"' in entry["details"]


def test_a_tampered_parameter_breaks_the_signature(cc_app, client):
    """R4.2: the signature covers every parameter: changing the caller after signing is refused."""
    params = {"CallSid": CALL_SID, "From": CALLER}
    from twilio.request_validator import RequestValidator

    signature = RequestValidator(AUTH_TOKEN).compute_signature("http://localhost/twilio/voice", params)
    response = client.post(
        "/twilio/voice", data={**params, "From": "+819099998888"}, headers={"X-Twilio-Signature": signature}
    )
    assert response.status_code == 403


def test_without_an_auth_token_every_webhook_is_refused(overrides):
    """R4.2: an installation without Twilio credentials cannot be fed fake calls."""
    from callcenter import create_app

    app = create_app({**overrides, "TWILIO_AUTH_TOKEN": ""})
    client = app.test_client()
    response = twilio_post(client, "/twilio/voice", {"CallSid": CALL_SID, "From": CALLER}, token="anything")
    assert response.status_code == 403
    with app.app_context():
        db.engine.dispose()


def test_behind_a_tls_proxy_the_public_url_is_validated(overrides):
    """PITFALLS (Twilio): Twilio signs https://public-host/…; Flask behind the proxy sees
    http://localhost/…. With TWILIO_WEBHOOK_BASE_URL the public URL is what is checked."""
    from callcenter import create_app

    app = create_app(
        {**overrides, "TWILIO_AUTH_TOKEN": AUTH_TOKEN, "TWILIO_WEBHOOK_BASE_URL": "https://cc.example.lg.jp"}
    )
    client = app.test_client()
    params = {"CallSid": CALL_SID, "From": CALLER}
    good = twilio_post(client, "/twilio/voice", params, url="https://cc.example.lg.jp/twilio/voice")
    assert good.status_code == 200
    as_flask_sees_it = twilio_post(client, "/twilio/voice", {**params, "CallSid": "CA" + "2" * 32})
    assert as_flask_sees_it.status_code == 403
    with app.app_context():
        db.engine.dispose()


def test_status_callbacks_close_the_call_once(cc_app, client):
    """R4.2: completed with its duration; a late 'ringing' never reopens a finished call."""
    incoming_call(client)
    done = {"CallSid": CALL_SID, "CallStatus": "completed", "CallDuration": "95"}
    assert twilio_post(client, "/twilio/status", done).status_code == 204
    twilio_post(client, "/twilio/status", {"CallSid": CALL_SID, "CallStatus": "ringing"})
    (call,) = _calls(cc_app)
    assert call.status == "completed" and call.duration_seconds == 95 and call.ended_at is not None


def test_dial_ended_without_an_answer_apologises_and_hangs_up(client):
    response = twilio_post(client, "/twilio/dial-ended", {"CallSid": CALL_SID, "DialCallStatus": "no-answer"})
    twiml = response.get_data(as_text=True)
    assert "混み合って" in twiml and "<Hangup" in twiml
    answered = twilio_post(client, "/twilio/dial-ended", {"CallSid": CALL_SID, "DialCallStatus": "completed"})
    assert "混み合って" not in answered.get_data(as_text=True)


def test_recording_callbacks_store_metadata_once(cc_app, client):
    """R4.4: the recording-status callback stores SID, call, start, duration; repeats update it."""
    incoming_call(client)
    params = {
        "AccountSid": "AC" + "0" * 32,
        "CallSid": CALL_SID,
        "RecordingSid": "RE" + "3" * 32,
        "RecordingStatus": "in-progress",
        "RecordingStartTime": "Mon, 23 Nov 2026 01:02:03 +0000",
        "RecordingChannels": "2",
    }
    assert twilio_post(client, "/twilio/recording", params).status_code == 204
    final = {**params, "RecordingStatus": "completed", "RecordingDuration": "61"}
    assert twilio_post(client, "/twilio/recording", final).status_code == 204
    with cc_app.app_context():
        (recording,) = db.session.scalars(select(CallRecording)).all()
        assert recording.status == "completed" and recording.duration_seconds == 61
        assert recording.channels == 2
        assert recording.started_at.isoformat() == "2026-11-23T01:02:03+00:00"
        assert recording.call.call_sid == CALL_SID


def test_webhooks_need_no_csrf_token_but_staff_forms_do(overrides):
    """The signature replaces CSRF for Twilio only; staff forms stay protected."""
    from callcenter import create_app

    app = create_app({**overrides, "TWILIO_AUTH_TOKEN": AUTH_TOKEN, "WTF_CSRF_ENABLED": True})
    client = app.test_client()
    assert incoming_call(client).status_code == 200
    assert client.post("/signin", data={"login_id": "x", "password": "y"}).status_code == 400
    with app.app_context():
        db.engine.dispose()
