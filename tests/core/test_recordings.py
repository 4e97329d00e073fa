"""Call recordings (R4.4, R4.5): retention counted in Asia/Tokyo, deletion everywhere (Twilio and
local), an idempotent and resumable purge, the provision ledger's rules. Twilio is the local fake
(tests/fakes/twilio_api.py) driven by the real twilio client."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta

import pytest
from sqlalchemy import select

from madoguchi import calls, recordings
from madoguchi.cli_recordings import purge_recordings
from madoguchi.extensions import db
from madoguchi.models import CallRecording, DeletionRecord
from tests.factories import make_staff


def jst(*args) -> datetime:
    return datetime(*args, tzinfo=UTC) - timedelta(hours=9)  # the moment these Tokyo numbers name


@pytest.mark.parametrize(
    ("call_at", "kept_until"),
    [
        (jst(2026, 11, 23, 10, 0), date(2026, 12, 31)),  # a month with 31 days after
        (jst(2026, 1, 15, 9, 0), date(2026, 2, 28)),  # February, common year
        (jst(2028, 1, 15, 9, 0), date(2028, 2, 29)),  # February, leap year
        (jst(2026, 12, 1, 9, 0), date(2027, 1, 31)),  # December → January of the next year
        (jst(2026, 12, 31, 23, 59), date(2027, 1, 31)),  # the last minute of the year (JST)
        (jst(2027, 1, 31, 23, 59), date(2027, 2, 28)),  # just before midnight JST: still January
        (jst(2027, 2, 1, 0, 30), date(2027, 3, 31)),  # just after: February (UTC says January 31)
        (jst(2026, 10, 31, 12, 0), date(2026, 11, 30)),  # a month with 30 days after
    ],
)
def test_retention_ends_at_the_end_of_the_month_after_the_call(call_at, kept_until):
    """R4.4 (004 別紙④第6条): kept until the end of the month after the month of the call, in JST."""
    assert recordings.retention_end(call_at) == kept_until


def test_a_december_call_is_deleted_in_february_not_before(ctx):
    """R4.4: due only after its retention ends — December's recording exists all of January."""
    call = calls.incoming("CA" + "d" * 32, "+819011112222", now=jst(2026, 12, 20, 15, 0))
    recording = calls.recording_status("RE" + "d" * 32, call_sid=call.call_sid, status="completed")
    assert recording.retain_until == date(2027, 1, 31)
    assert recordings.due(date(2027, 1, 31)) == []
    assert recordings.due(date(2027, 2, 1)) == [recording]


def _seeded(_ctx, fake, *, when=None, local=False):
    """A completed recording at Twilio (the fake) and in our table, its call months ago."""
    when = when or jst(2026, 8, 10, 11, 0)
    call = calls.incoming(f"CA{len(fake.recordings):032d}", "+819011112222", now=when)
    remote = fake.add_recording(call_sid=call.call_sid, date_created=when)
    recording = calls.recording_status(remote["sid"], call_sid=call.call_sid, status="completed", duration=42)
    if local:
        assert recordings.store_locally(recording)
    db.session.commit()
    return recording


@pytest.fixture
def twilio_ctx(overrides, fake_twilio, tmp_path):
    overrides.update(fake_twilio.overrides(), RECORDINGS_LOCAL_DIR=str(tmp_path / "recordings"))
    return fake_twilio


def test_purge_deletes_at_twilio_with_evidence(twilio_ctx, ctx):
    """R4.4: DELETE answered 204, then a fetch answering 404 — the evidence kept in the record."""
    fake = twilio_ctx
    recording = _seeded(ctx, fake)
    outcome = recordings.PurgeOutcome()
    recordings.purge_one(recording, outcome)
    assert (
        outcome.deleted == [recording.recording_sid]
        and outcome.evidence[recording.recording_sid] == "204+404"
    )
    assert fake.deleted == [recording.recording_sid]
    assert recording.deleted_at is not None


def test_twilio_not_found_counts_as_deleted(twilio_ctx, ctx):
    """R4.4: a recording already gone at Twilio (404) is deleted, not an error."""
    fake = twilio_ctx
    recording = _seeded(ctx, fake)
    fake.recordings.clear()
    outcome = recordings.PurgeOutcome()
    recordings.purge_one(recording, outcome)
    assert outcome.evidence[recording.recording_sid] == "404" and not outcome.failed
    assert recording.deleted_at is not None


@pytest.mark.parametrize("failure", ["500", "20009", "network"])
def test_an_error_leaves_the_recording_queued_then_the_next_run_deletes_it(twilio_ctx, ctx, failure):
    """R4.4: 5xx, Twilio 20009 (call in progress) or a dropped connection: queued and reported,
    never dropped; the next run deletes it."""
    fake = twilio_ctx
    recording = _seeded(ctx, fake)
    if failure == "network":
        fake.drop_next(1)
    else:
        fake.fail_next(1, status=500 if failure == "500" else 400, code=None if failure == "500" else 20009)
    first = recordings.PurgeOutcome()
    recordings.purge_one(recording, first)
    assert recording.recording_sid in first.failed and recording.deleted_at is None
    assert recording.deletion_error
    assert recordings.due(date.today() + timedelta(days=1)) == [recording]
    second = recordings.PurgeOutcome()
    recordings.purge_one(recording, second)
    assert second.deleted == [recording.recording_sid] and recording.deleted_at is not None


def test_local_copy_is_encrypted_playable_and_shredded(twilio_ctx, ctx, tmp_path):
    """R4.4: the downloaded audio is stored encrypted with its own key, plays back unaltered, and
    after the purge neither the key nor the file exists."""
    fake = twilio_ctx
    recording = _seeded(ctx, fake, local=True)
    path = tmp_path / "recordings" / recording.local_file
    stored = path.read_bytes()
    assert b"RIFF" not in stored and b"WAVE" not in stored
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    original = fake.media[recording.recording_sid]["wav"]
    assert recordings.audio(recording) == original
    outcome = recordings.PurgeOutcome()
    recordings.purge_one(recording, outcome)
    assert outcome.local_files == 1 and not path.exists()
    assert recording.file_key_ct is None and recording.local_file is None
    with pytest.raises(recordings.RecordingUnavailable):
        recordings.audio(recording)


def test_an_altered_local_file_is_refused(twilio_ctx, ctx, tmp_path):
    """R4.4 (kept unaltered): a changed byte fails authentication; nothing is played."""
    recording = _seeded(ctx, twilio_ctx, local=True)
    path = tmp_path / "recordings" / recording.local_file
    data = bytearray(path.read_bytes())
    data[-1] ^= 1
    path.write_bytes(bytes(data))
    with pytest.raises(recordings.RecordingUnavailable) as refused:
        recordings.audio(recording)
    assert refused.value.reason == "damaged"


def test_a_supervisor_keeps_one_recording_longer_with_a_reason(twilio_ctx, ctx):
    """R4.4: a longer period with a reason; never shorter; without reason refused."""
    recording = _seeded(ctx, twilio_ctx)
    staff = make_staff(roles=("supervisor",))
    minimum = recording.retain_until
    with pytest.raises(recordings.ProvisionRefused):
        recordings.extend(recording, minimum + timedelta(days=30), reason="  ", staff=staff)
    with pytest.raises(recordings.ProvisionRefused):
        recordings.extend(recording, minimum - timedelta(days=1), reason="苦情対応", staff=staff)
    recordings.extend(recording, date(2030, 3, 31), reason="苦情申立ての調査のため", staff=staff)
    assert recordings.due(date(2030, 3, 31)) == [] and recordings.due(date(2030, 4, 1)) == [recording]
    assert (
        recording.extended_reason == "苦情申立ての調査のため" and "苦情" not in recording.extended_reason_ct
    )
    # A repeated status callback never shortens it back.
    calls.recording_status(recording.recording_sid, call_sid=None, status="completed")
    assert recording.retain_until == date(2030, 3, 31)


def test_reconcile_adds_recordings_whose_callback_was_lost(twilio_ctx, ctx):
    """PITFALLS (Twilio): callbacks can be lost; the daily sync finds them at Twilio."""
    fake = twilio_ctx
    call = calls.incoming("CA" + "9" * 32, "+819011112222")
    fake.add_recording(call_sid=call.call_sid)
    assert recordings.reconcile(datetime.now(UTC) - timedelta(days=1)) == 1
    assert recordings.reconcile(datetime.now(UTC) - timedelta(days=1)) == 0
    (stored,) = db.session.scalars(select(CallRecording)).all()
    assert stored.call_id == call.id and stored.retain_until is not None


def test_the_purge_command_is_idempotent_and_writes_a_deletion_record(twilio_ctx, app):
    """R4.4, R8.1: `madoguchi purge recordings` deletes what is due, writes items, medium, count,
    method, date and responsible person; a second run finds nothing and writes nothing."""
    fake = twilio_ctx
    with app.app_context():
        due = [_seeded(None, fake) for _ in range(2)]
        fresh = _seeded(None, fake, when=datetime.now(UTC))
        staff = make_staff(roles=("supervisor",), name="削除 責任者")
        db.session.commit()
        due_sids, fresh_sid, login = [r.recording_sid for r in due], fresh.recording_sid, staff.login_id
    runner = app.test_cli_runner()

    fake.fail_next(1, status=503)  # the first DELETE fails: that one stays queued
    result = runner.invoke(purge_recordings, ["--responsible", login, "--witness", "立会 花子"])
    assert result.exit_code == 1, result.output
    assert "deleted 1 recordings" in result.output and "1 still queued" in result.output
    again = runner.invoke(purge_recordings, ["--responsible", login])
    assert again.exit_code == 0 and "deleted 1 recordings" in again.output
    third = runner.invoke(purge_recordings, [])
    assert third.exit_code == 0 and "deleted 0 recordings" in third.output
    with app.app_context():
        records = db.session.scalars(select(DeletionRecord).order_by(DeletionRecord.executed_at)).all()
        assert len(records) == 2  # the empty run writes nothing
        first, second = records
        assert (first.kind, first.count, first.outcome) == ("call_recordings", 1, "partial")
        assert first.responsible_name == "削除 責任者" and first.witness_name == "立会 花子"
        assert "Twilio" in first.medium and "204" in first.method
        assert json.loads(first.details)["still_queued"] and (second.count, second.outcome) == (1, "done")
        remaining = db.session.scalars(select(CallRecording).where(CallRecording.deleted_at.is_(None))).all()
        assert [r.recording_sid for r in remaining] == [fresh_sid]
    assert sorted(fake.deleted) == sorted(due_sids)


def test_provision_needs_a_basis_another_approver_and_closes(twilio_ctx, ctx):
    """R4.5 (第7条): legal basis (197条2項 needs the written request), another person approves,
    hand-over recorded, then returned or destroyed."""
    recording = _seeded(ctx, twilio_ctx)
    asker, approver = make_staff(roles=("supervisor",)), make_staff(roles=("supervisor",))
    with pytest.raises(recordings.ProvisionRefused) as no_paper:
        recordings.request_provision(
            [recording],
            requester="深川警察署",
            basis="criminal_procedure",
            basis_detail="",
            scope="通話全体",
            staff=asker,
        )
    assert no_paper.value.reason == "written_request"
    provision = recordings.request_provision(
        [recording],
        requester="深川警察署 刑事課",
        basis="criminal_procedure",
        basis_detail="捜査関係事項照会書 第123号",
        scope="2026年8月10日 11時台の通話1件",
        staff=asker,
    )
    with pytest.raises(recordings.ProvisionRefused) as own:
        recordings.decide(provision, approve=True, staff=asker)
    assert own.value.reason == "self_approval"
    with pytest.raises(recordings.ProvisionRefused):
        recordings.close(provision, closure="returned")
    recordings.decide(provision, approve=True, staff=approver)
    recordings.record_handover(provision, staff=asker, file_sha256="0" * 64)
    recordings.close(provision, closure="destroyed")
    assert provision.status == "closed" and provision.closure == "destroyed"
    assert "警察" not in provision.requester_ct
