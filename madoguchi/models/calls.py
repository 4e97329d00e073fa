"""Telephone calls and their recordings (R4.2–R4.4).

A call arrives through Twilio's voice webhook (or is logged by hand for a call the PBX took). The
caller's number is personal: encrypted, with the same blind index as ``Applicant.phone`` so the
console can find the caller's bookings without decrypting anything. The operator's note is free
text and therefore encrypted too.
"""

from __future__ import annotations

import enum
from datetime import date, datetime

from sqlalchemy import Column, Date, ForeignKey, Integer, String, Table
from sqlalchemy.orm import Mapped, mapped_column, relationship

from ..crypto import EncryptedField
from ..extensions import db
from .applicants import Applicant
from .bookings import Booking
from .types import BlindIndex, Ciphertext, RowId, UTCDateTime


class CallCategory(enum.StrEnum):
    """The categories of 004 別紙④第2条(1) (R4.3)."""

    APPLICATION = "application"  # ア 申請
    ISSUANCE = "issuance"  # イ 交付
    RENEWAL = "renewal"  # ウ 更新
    OPINION = "opinion"  # エ ご意見
    OTHER = "other"  # オ その他


CALL_CATEGORY_LABELS = {
    CallCategory.APPLICATION: "ア 申請",
    CallCategory.ISSUANCE: "イ 交付",
    CallCategory.RENEWAL: "ウ 更新",
    CallCategory.OPINION: "エ ご意見",
    CallCategory.OTHER: "オ その他",
}


class Call(db.Model):
    __tablename__ = "calls"

    id: Mapped[str] = mapped_column(RowId(), primary_key=True)
    # Twilio's CallSid; None for a call logged by hand. Unique: webhooks carry no timestamp and
    # may be retried, so handlers are idempotent on it (PITFALLS: Twilio).
    call_sid: Mapped[str | None] = mapped_column(String(64), unique=True)
    direction: Mapped[str] = mapped_column(String(8), default="inbound")  # inbound | outbound
    caller_ct: Mapped[str | None] = mapped_column(Ciphertext())
    caller_bidx: Mapped[str | None] = mapped_column(BlindIndex(), index=True)
    # Twilio's CallStatus: ringing, in-progress, completed, busy, no-answer, failed, canceled.
    status: Mapped[str] = mapped_column(String(16), default="ringing")
    started_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    duration_seconds: Mapped[int | None] = mapped_column(Integer)
    # The operator who took the call in the console.
    operator_id: Mapped[int | None] = mapped_column(ForeignKey("staff.id"))
    answered_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # The call log (R4.3): category, note, and the applicant/booking it was about.
    category: Mapped[str | None] = mapped_column(String(16), index=True)
    note_ct: Mapped[str | None] = mapped_column(Ciphertext())
    applicant_id: Mapped[str | None] = mapped_column(ForeignKey("applicants.id"), index=True)
    booking_id: Mapped[str | None] = mapped_column(ForeignKey("bookings.id"), index=True)
    logged_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    logged_by: Mapped[int | None] = mapped_column(ForeignKey("staff.id"))

    applicant: Mapped[Applicant | None] = relationship()
    booking: Mapped[Booking | None] = relationship()

    caller = EncryptedField()
    note = EncryptedField()


class CallRecording(db.Model):
    """A recording's metadata from Twilio's recording-status callback (R4.4). The audio itself
    stays at Twilio unless local storage is configured; retention and deletion act on this row."""

    __tablename__ = "call_recordings"

    id: Mapped[str] = mapped_column(RowId(), primary_key=True)
    call_id: Mapped[str | None] = mapped_column(ForeignKey("calls.id"), index=True)
    recording_sid: Mapped[str] = mapped_column(String(64), unique=True)
    status: Mapped[str] = mapped_column(
        String(16)
    )  # Twilio's RecordingStatus: in-progress, completed, absent, failed
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    duration_seconds: Mapped[int | None] = mapped_column(Integer)
    channels: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
    # Retention (R4.4): kept unaltered until the end of the month after the call (Asia/Tokyo);
    # a supervisor may keep one longer, with a reason.
    retain_until: Mapped[date | None] = mapped_column(Date, index=True)
    extended_reason_ct: Mapped[str | None] = mapped_column(Ciphertext())
    extended_by: Mapped[int | None] = mapped_column(ForeignKey("staff.id"))
    # Where the audio is: "twilio" (streamed through the app) or "local" (downloaded, encrypted
    # with its own key, which is wrapped by the field keys; destroying it makes the file unreadable).
    storage: Mapped[str] = mapped_column(String(8), default="twilio")
    local_file: Mapped[str | None] = mapped_column(String(200))
    file_key_ct: Mapped[str | None] = mapped_column(Ciphertext())
    file_sha256: Mapped[str | None] = mapped_column(String(64))
    # Deletion: pending (due, queued) → deleted; an error keeps it queued for the next run.
    deleted_at: Mapped[datetime | None] = mapped_column(UTCDateTime, index=True)
    deletion_error: Mapped[str | None] = mapped_column(String(200))

    call: Mapped[Call | None] = relationship()

    extended_reason = EncryptedField()
    file_key = EncryptedField()


class LegalBasis(enum.StrEnum):
    """Why a recording may be handed to someone outside (004 別紙④第7条)."""

    CONSENT = "consent"  # 本人の同意
    CRIMINAL_PROCEDURE = "criminal_procedure"  # 刑事訴訟法第197条第2項（文書による照会）
    OTHER_LAW = "other_law"  # その他法令に基づく場合
    DANGER = "danger"  # 人の生命、身体又は財産の保護のため緊急に必要な場合
    INTERNAL_COPY = "internal_copy"  # 区の業務のための複製（第6条: 承認を得た場合のみ）


provision_recordings = Table(
    "provision_recordings",
    db.metadata,
    Column("provision_id", ForeignKey("recording_provisions.id"), primary_key=True),
    Column("recording_id", ForeignKey("call_recordings.id"), primary_key=True),
)


class RecordingProvision(db.Model):
    """The provision ledger (004 別紙④第7条): a request to hand recordings to someone outside (or to
    copy them), its legal basis, minimal scope, approver, what was handed over, and its return or
    destruction."""

    __tablename__ = "recording_provisions"

    id: Mapped[str] = mapped_column(RowId(), primary_key=True)
    requester_ct: Mapped[str] = mapped_column(Ciphertext())  # who asks (e.g. 〇〇警察署 刑事課)
    legal_basis: Mapped[str] = mapped_column(String(32))
    basis_detail_ct: Mapped[str | None] = mapped_column(Ciphertext())  # e.g. the written request's number
    scope_ct: Mapped[str] = mapped_column(Ciphertext())  # the minimal scope, in words
    status: Mapped[str] = mapped_column(String(16), default="requested", index=True)
    requested_by: Mapped[int] = mapped_column(ForeignKey("staff.id"))
    requested_at: Mapped[datetime] = mapped_column(UTCDateTime)
    decided_by: Mapped[int | None] = mapped_column(ForeignKey("staff.id"))
    decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    handed_over_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    handed_over_by: Mapped[int | None] = mapped_column(ForeignKey("staff.id"))
    file_sha256: Mapped[str | None] = mapped_column(String(64))
    closure: Mapped[str | None] = mapped_column(String(16))  # returned | destroyed
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    recordings: Mapped[list[CallRecording]] = relationship(secondary=provision_recordings)

    requester = EncryptedField()
    basis_detail = EncryptedField()
    scope = EncryptedField()
