"""Call recordings (R4.4, R4.5; 004 別紙④第5–9条): retention, irrecoverable deletion, audited
playback, and the provision ledger.

Retention: a recording is kept unaltered until the end of the month after the month of the call,
counted in Asia/Tokyo, then deleted everywhere it exists — at Twilio through the API, and locally
by destroying the file's own key and removing the file. A supervisor may keep one recording
longer, with a reason.

The purge is idempotent and resumable: each recording is one unit of work (the caller commits
after each), Twilio's 404 counts as deleted, and any error leaves the recording queued for the next
run and is reported — never dropped silently.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path

from flask import current_app
from sqlalchemy import select

from . import crypto, dates, exports, telephony, wipe
from .crypto import DecryptionError, decrypt_file_bytes, encrypt_file_bytes, new_file_key, new_row_id
from .extensions import db
from .models import CallRecording, LegalBasis, RecordingProvision, Staff

EXTENSION_REASON_MAX = 500


class RecordingUnavailable(RuntimeError):
    """The audio cannot be played (deleted, or Twilio unreachable); ``reason`` for the message."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


class ProvisionRefused(ValueError):
    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


# ---- retention ------------------------------------------------------------------------------------
def retention_end(call_started: datetime) -> date:
    """The last day a recording is kept: the end of the month after the call's month (Tokyo)."""
    local = dates.tokyo(call_started).date()
    year, month = (local.year + 1, 1) if local.month == 12 else (local.year, local.month + 1)
    first_of_following = date(year + 1, 1, 1) if month == 12 else date(year, month + 1, 1)
    return first_of_following - timedelta(days=1)


def call_start(recording: CallRecording) -> datetime:
    if recording.call is not None:
        return recording.call.started_at
    return recording.started_at or recording.created_at


def ensure_retention(recording: CallRecording) -> None:
    """Set the minimum retention once (a later callback never shortens an extension)."""
    minimum = retention_end(call_start(recording))
    if recording.retain_until is None or recording.retain_until < minimum:
        recording.retain_until = minimum


def extend(recording: CallRecording, until: date, *, reason: str, staff: Staff) -> CallRecording:
    """Keep one recording longer (a supervisor's decision, with a reason; the view audits it)."""
    reason = (reason or "").strip()
    if not reason or len(reason) > EXTENSION_REASON_MAX:
        raise ProvisionRefused("reason")
    if recording.deleted_at is not None:
        raise ProvisionRefused("deleted")
    if recording.retain_until is not None and until <= recording.retain_until:
        raise ProvisionRefused("not_longer")
    recording.retain_until = until
    recording.extended_reason = reason
    recording.extended_by = staff.id
    recording.updated_at = dates.now()
    db.session.flush()
    return recording


def due(today: date | None = None) -> list[CallRecording]:
    """Recordings whose retention has ended and that still exist somewhere."""
    today = today or dates.today()
    return list(
        db.session.scalars(
            select(CallRecording)
            .where(CallRecording.deleted_at.is_(None), CallRecording.retain_until < today)
            .order_by(CallRecording.retain_until, CallRecording.id)
        )
    )


# ---- local storage (optional) ---------------------------------------------------------------------
def _local_dir() -> Path | None:
    folder = current_app.config.get("RECORDINGS_LOCAL_DIR", "")
    return Path(folder) if folder else None


def _purpose(recording: CallRecording) -> str:
    return f"call_recordings:{recording.id}"


def store_locally(recording: CallRecording) -> bool:
    """Download a completed recording into local storage, encrypted with its own key. Returns
    True when stored now; False when not configured, not completed, or already stored."""
    folder = _local_dir()
    if folder is None or recording.status != "completed" or recording.storage == "local":
        return False
    if recording.deleted_at is not None:
        return False
    audio = telephony.download_recording(recording.recording_sid)
    key = new_file_key()
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    path = folder / f"{recording.id}.rec"
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "wb") as out:
        out.write(encrypt_file_bytes(audio, file_key=key, purpose=_purpose(recording)))
    recording.file_key = key
    recording.local_file = path.name
    recording.file_sha256 = hashlib.sha256(audio).hexdigest()
    recording.storage = "local"
    recording.updated_at = dates.now()
    db.session.flush()
    return True


def audio(recording: CallRecording) -> bytes:
    """The recording's audio for playback: from local storage (checked against its hash) or
    streamed from Twilio. Nothing here writes it anywhere."""
    if recording.deleted_at is not None:
        raise RecordingUnavailable("deleted")
    if recording.storage == "local":
        folder = _local_dir()
        if folder is None or not recording.local_file or not recording.file_key_ct:
            raise RecordingUnavailable("missing")
        try:
            data = decrypt_file_bytes(
                (folder / recording.local_file).read_bytes(),
                file_key=recording.file_key,
                purpose=_purpose(recording),
            )
        except (OSError, DecryptionError):
            raise RecordingUnavailable("damaged") from None
        if hashlib.sha256(data).hexdigest() != recording.file_sha256:
            raise RecordingUnavailable("damaged")
        return data
    try:
        return telephony.download_recording(recording.recording_sid)
    except telephony.TelephonyUnavailable:
        raise RecordingUnavailable("twilio") from None


# ---- the purge ---------------------------------------------------------------------------------------
@dataclass
class PurgeOutcome:
    deleted: list[str] = field(default_factory=list)  # recording SIDs deleted everywhere
    evidence: dict[str, str] = field(default_factory=dict)  # SID → "204+404" / "404" / …
    local_files: int = 0
    failed: dict[str, str] = field(default_factory=dict)  # SID → reason (still queued)


def _destroy_local(recording: CallRecording) -> bool:
    """Crypto-shred: drop the file's key, then overwrite and remove the file."""
    if recording.storage != "local" or not recording.local_file:
        return False
    recording.file_key = None  # without it the ciphertext is noise, wherever a copy survives
    folder = _local_dir()
    if folder is not None:
        wipe.shred_file(folder / recording.local_file)
    recording.local_file = None
    return True


def purge_one(recording: CallRecording, outcome: PurgeOutcome, *, now: datetime | None = None) -> None:
    """Delete one due recording everywhere. The caller commits after each call (resumable)."""
    now = now or dates.now()
    if _destroy_local(recording):
        outcome.local_files += 1
    try:
        answer = telephony.delete_recording(recording.recording_sid)
    except telephony.TelephonyUnavailable as unavailable:
        recording.deletion_error = unavailable.reason[:200]
        recording.updated_at = now
        outcome.failed[recording.recording_sid] = unavailable.reason
        db.session.flush()
        return
    if answer is telephony.Deleted.DELETED:
        evidence = "204+404" if telephony.confirm_gone(recording.recording_sid) else "204"
    else:
        evidence = "404"
    recording.deleted_at = now
    recording.deletion_error = None
    recording.updated_at = now
    outcome.deleted.append(recording.recording_sid)
    outcome.evidence[recording.recording_sid] = evidence
    db.session.flush()


# ---- reconciliation (lost callbacks) -------------------------------------------------------------------
def reconcile(since: datetime, *, now: datetime | None = None) -> int:
    """Add recordings Twilio has and we do not know of (a callback that never arrived)."""
    from . import calls  # calls imports this module for retention

    added = 0
    for remote in telephony.list_recordings(since):
        known = db.session.scalars(
            select(CallRecording).where(CallRecording.recording_sid == remote.sid)
        ).one_or_none()
        if known is None:
            added += 1
        calls.recording_status(
            remote.sid,
            call_sid=remote.call_sid,
            status=remote.status,
            started_at=remote.started_at,
            duration=remote.duration,
            channels=remote.channels,
            now=now,
        )
    return added


# ---- the provision ledger (第7条) -------------------------------------------------------------------------
BASIS_LABELS = {
    LegalBasis.CONSENT: "本人の同意がある場合",
    LegalBasis.CRIMINAL_PROCEDURE: "刑事訴訟法第197条第2項に基づく照会（文書による）",
    LegalBasis.OTHER_LAW: "その他法令に基づく場合",
    LegalBasis.DANGER: "人の生命、身体又は財産の保護のために緊急に必要がある場合",
    LegalBasis.INTERNAL_COPY: "区の業務のための複製（承認による）",
}


def request_provision(
    recordings: list[CallRecording],
    *,
    requester: str,
    basis: str,
    basis_detail: str,
    scope: str,
    staff: Staff,
    now: datetime | None = None,
) -> RecordingProvision:
    if not recordings:
        raise ProvisionRefused("no_recordings")
    if basis not in {b.value for b in LegalBasis}:
        raise ProvisionRefused("basis")
    if basis == LegalBasis.CRIMINAL_PROCEDURE and not (basis_detail or "").strip():
        raise ProvisionRefused("written_request")  # 197条2項 needs the written request's reference
    if not (requester or "").strip() or not (scope or "").strip():
        raise ProvisionRefused("fields")
    if any(r.deleted_at is not None for r in recordings):
        raise ProvisionRefused("deleted")
    provision = RecordingProvision(
        id=new_row_id(),
        legal_basis=basis,
        status="requested",
        requested_by=staff.id,
        requested_at=now or dates.now(),
    )
    provision.requester = requester.strip()
    provision.basis_detail = (basis_detail or "").strip() or None
    provision.scope = scope.strip()
    provision.recordings = list(recordings)
    db.session.add(provision)
    db.session.flush()
    return provision


def decide(provision: RecordingProvision, *, approve: bool, staff: Staff, now: datetime | None = None):
    """Approve or refuse — never by the person who asked (another person's check is the point)."""
    if provision.status != "requested":
        raise ProvisionRefused("already_decided")
    if provision.requested_by == staff.id:
        raise ProvisionRefused("self_approval")
    provision.status = "approved" if approve else "rejected"
    provision.decided_by = staff.id
    provision.decided_at = now or dates.now()
    db.session.flush()
    return provision


def record_handover(provision: RecordingProvision, *, staff: Staff, file_sha256: str, now=None):
    if provision.status != "approved":
        raise ProvisionRefused("not_approved")
    provision.status = "handed_over"
    provision.handed_over_at = now or dates.now()
    provision.handed_over_by = staff.id
    provision.file_sha256 = file_sha256
    db.session.flush()
    return provision


def close(provision: RecordingProvision, *, closure: str, now: datetime | None = None):
    """Returned or destroyed: the ledger line is complete, and our copy of the file is shredded."""
    if provision.status != "handed_over":
        raise ProvisionRefused("not_handed_over")
    if closure not in ("returned", "destroyed"):
        raise ProvisionRefused("closure")
    provision.status = "closed"
    provision.closure = closure
    provision.closed_at = now or dates.now()
    db.session.flush()
    wipe.shred_file(package_path(provision))
    return provision


def provisions_of(recording: CallRecording) -> list[RecordingProvision]:
    return list(
        db.session.scalars(
            select(RecordingProvision)
            .where(RecordingProvision.recordings.contains(recording))
            .order_by(RecordingProvision.requested_at)
        )
    )


def ledger(first: date, last: date) -> list[RecordingProvision]:
    start, _ = dates.day_bounds(first)
    _, end = dates.day_bounds(last)
    return list(
        db.session.scalars(
            select(RecordingProvision)
            .where(RecordingProvision.requested_at >= start, RecordingProvision.requested_at < end)
            .order_by(RecordingProvision.requested_at)
        )
    )


@dataclass(frozen=True)
class Package:
    passphrase: str  # shown once to the person handing over; never stored
    path: Path
    sha256: str


def package_path(provision: RecordingProvision) -> Path:
    return Path(current_app.config["EXPORT_SPOOL_DIR"]) / f"recordings-{provision.id}{exports.FILE_SUFFIX}"


def hand_over(provision: RecordingProvision, *, staff: Staff, now: datetime | None = None) -> Package:
    """Write the approved recordings (and only those) into an encrypted export file — the same
    format and opening command as the export ledger's files — and record the hand-over. Only the
    person who asked carries the data out; the approver checked it."""
    if provision.status != "approved":
        raise ProvisionRefused("not_approved")
    if staff.id != provision.requested_by:
        raise ProvisionRefused("not_requester")
    now = now or dates.now()
    audio_files = {}
    listing = []
    for recording in provision.recordings:
        data = audio(recording)  # raises RecordingUnavailable: nothing is handed over
        name = f"{recording.recording_sid}.wav"
        audio_files[name] = data
        listing.append(
            {
                "file": name,
                "sha256": hashlib.sha256(data).hexdigest(),
                "call_started": call_start(recording).isoformat(),
            }
        )
    passphrase = crypto.new_passphrase()
    path = package_path(provision)
    sha256 = exports.write_file(
        path,
        passphrase=passphrase,
        dataset="call_recordings",
        request_id=provision.id,
        tables={},
        files=audio_files,
        manifest={"dataset": "call_recordings", "legal_basis": provision.legal_basis, "recordings": listing},
        now=now,
    )
    record_handover(provision, staff=staff, file_sha256=sha256, now=now)
    return Package(passphrase, path, sha256)
