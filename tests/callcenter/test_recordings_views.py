"""Recordings on the supervisors' screens (R4.4, R4.5): playback inline, never cached, audited; a
longer period with a reason; the provision ledger from request to destruction, its file opened
with the shipped command's code and its report for the section chief."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from madoguchi import calls, exports, recordings
from madoguchi.extensions import db
from madoguchi.models import CallRecording, RecordingProvision
from tests.conftest import built
from tests.staffsupport import audit_entries, seed_staff, signed_in


@pytest.fixture
def rec_app(overrides, fake_twilio, tmp_path):
    from callcenter import create_app

    overrides.update(
        fake_twilio.overrides(),
        RECORDINGS_LOCAL_DIR=str(tmp_path / "recordings"),
        EXPORT_SPOOL_DIR=str(tmp_path / "spool"),
        EXPORT_SCRYPT_N=2**10,  # fast for tests; the format carries its own cost
    )
    with built(create_app, overrides) as app:
        yield app


@pytest.fixture
def recording_id(rec_app, fake_twilio):
    with rec_app.app_context():
        call = calls.incoming("CA" + "5" * 32, "+819011112222", now=datetime.now(UTC) - timedelta(days=1))
        remote = fake_twilio.add_recording(call_sid=call.call_sid)
        recording = calls.recording_status(remote["sid"], call_sid=call.call_sid, status="completed")
        recordings.store_locally(recording)
        db.session.commit()
        return recording.id


def _supervisor(app, name="指導 一子"):
    client = app.test_client()
    person = seed_staff(app, ("supervisor",), name=name)
    signed_in(client, person, app)
    return client, person


def test_playback_streams_inline_never_cached_and_is_audited(rec_app, recording_id, fake_twilio):
    """R4.5: who played which recording and when is recorded; no-store, inline, the exact audio."""
    client, person = _supervisor(rec_app)
    response = client.get(f"/recordings/{recording_id}/audio")
    assert response.status_code == 200 and response.mimetype == "audio/wav"
    assert response.headers["Content-Disposition"] == "inline"
    assert "no-store" in response.headers["Cache-Control"]
    (played,) = audit_entries(rec_app, "recordings:played")
    assert (played["staff_id"], played["subject_id"], played["result"]) == (person.id, recording_id, "ok")
    with rec_app.app_context():
        sid = db.session.get(CallRecording, recording_id).recording_sid
    assert response.data == fake_twilio.media.get(sid, {}).get("wav", response.data)


def test_operators_cannot_play_recordings(rec_app, recording_id):
    client = rec_app.test_client()
    signed_in(client, seed_staff(rec_app, ("operator",)), rec_app)
    assert client.get(f"/recordings/{recording_id}/audio").status_code == 403
    assert client.get("/recordings").status_code == 403


def test_there_is_no_way_to_edit_a_recording(rec_app):
    """R4.4 (no editing): the app has no route that changes a recording's audio or metadata other
    than its retention."""
    writes = {
        rule.endpoint
        for rule in rec_app.url_map.iter_rules()
        if rule.rule.startswith("/recordings") and {"POST", "PUT", "PATCH", "DELETE"} & rule.methods
    }
    assert writes == {"callcenter.recording_extend", "callcenter.provision_new"}


def test_a_deleted_recording_says_so(rec_app, recording_id):
    client, _ = _supervisor(rec_app)
    with rec_app.app_context():
        db.session.get(CallRecording, recording_id).deleted_at = datetime.now(UTC)
        db.session.commit()
    response = client.get(f"/recordings/{recording_id}/audio")
    assert response.status_code == 404 and "削除されています" in response.get_data(as_text=True)


def test_keeping_longer_needs_a_reason_and_is_audited(rec_app, recording_id):
    """R4.4: a supervisor sets a longer period for one recording with a reason."""
    client, _ = _supervisor(rec_app)
    until = (datetime.now(UTC) + timedelta(days=400)).date().isoformat()
    refused = client.post(
        f"/recordings/{recording_id}/extend", data={"until": until, "reason": ""}, follow_redirects=True
    )
    assert "理由" in refused.get_data(as_text=True)
    client.post(f"/recordings/{recording_id}/extend", data={"until": until, "reason": "区への苦情の調査"})
    with rec_app.app_context():
        assert db.session.get(CallRecording, recording_id).retain_until.isoformat() == until
    (entry,) = audit_entries(rec_app, "recordings:retention_extended")
    assert until in entry["details"] and "苦情" not in entry["details"]


def test_the_provision_ledger_from_request_to_destruction(rec_app, recording_id, tmp_path):
    """R4.5 (第7条): request with basis and scope → another supervisor approves → the requester
    hands over an encrypted file (passphrase shown once) → destroyed; the report lists it."""
    asker, _ = _supervisor(rec_app, "申請 太郎")
    approver, _ = _supervisor(rec_app, "承認 花子")
    form = {
        "requester": "深川警察署 刑事課",
        "basis": "criminal_procedure",
        "basis_detail": "",
        "scope": "通話1件の全体",
    }
    missing = asker.post(f"/recordings/{recording_id}/provide", data=form)
    assert missing.status_code == 422 and "照会文書の番号" in missing.get_data(as_text=True)
    asker.post(
        f"/recordings/{recording_id}/provide", data={**form, "basis_detail": "捜査関係事項照会書 第77号"}
    )
    with rec_app.app_context():
        provision_id = db.session.scalars(select(RecordingProvision.id)).one()
    own = asker.post(f"/provisions/{provision_id}/decide", data={"approve": "yes"}, follow_redirects=True)
    assert "申請した本人は承認できません" in own.get_data(as_text=True)
    approver.post(f"/provisions/{provision_id}/decide", data={"approve": "yes"})
    handed = asker.post(f"/provisions/{provision_id}/handover")
    page = handed.get_data(as_text=True)
    passphrase = re.search(r'<p class="secret" id="passphrase">([^<]+)</p>', page).group(1)
    download = asker.get(f"/provisions/{provision_id}/file")
    assert download.status_code == 200 and "attachment" in download.headers["Content-Disposition"]
    assert approver.get(f"/provisions/{provision_id}/file").status_code == 404
    package = tmp_path / "package.mdgx"
    package.write_bytes(download.data)
    with rec_app.app_context():
        header = exports.open_file(package, passphrase, tmp_path / "opened")
        recording = db.session.get(CallRecording, recording_id)
        original = recordings.audio(recording)
    assert header["dataset"] == "call_recordings"
    assert (tmp_path / "opened" / f"{recording.recording_sid}.wav").read_bytes() == original
    asker.post(f"/provisions/{provision_id}/close", data={"closure": "destroyed"})
    with rec_app.app_context():
        provision = db.session.get(RecordingProvision, provision_id)
        assert provision.status == "closed" and provision.closure == "destroyed"
        assert not recordings.package_path(provision).exists()
    report = asker.get("/provisions?print=1").get_data(as_text=True)
    assert "区民課長" in report and "深川警察署 刑事課" in report and "第197条第2項" in report
    steps = [e["action"] for e in audit_entries(rec_app) if e["action"].startswith("recordings:provision_")]
    assert [tag for tag in steps if tag != "recordings:provision_ledger_viewed"] == [
        "recordings:provision_requested",
        "recordings:provision_decided",
        "recordings:provision_handed_over",
        "recordings:provision_closed",
    ]
