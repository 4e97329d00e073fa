"""Received FAX sheets (R5.2–R5.4): the received file, kept encrypted with its own key, and one
work-queue item per page with what the reader found and what staff confirmed."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import Date, ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from ..crypto import EncryptedField
from ..extensions import db
from .applicants import Applicant
from .bookings import Booking
from .types import Ciphertext, RowId, UTCDateTime


class FaxDocument(db.Model):
    """One received file (what the FAX server dropped, or a staff upload). The bytes live in the FAX
    store, encrypted under ``file_key`` (itself an encrypted field): destroying the key destroys the
    image, wherever a copy of the file went."""

    __tablename__ = "fax_documents"

    id: Mapped[str] = mapped_column(RowId(), primary_key=True)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    source: Mapped[str] = mapped_column(String(16))  # inbox | upload
    media_type: Mapped[str] = mapped_column(String(40))
    pages: Mapped[int] = mapped_column(Integer)
    file_sha256: Mapped[str] = mapped_column(String(64), unique=True)  # the same file twice is one document
    stored_file: Mapped[str | None] = mapped_column(String(100))
    file_key_ct: Mapped[str | None] = mapped_column(Ciphertext())
    retain_until: Mapped[date | None] = mapped_column(Date, index=True)
    deleted_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    uploaded_by: Mapped[int | None] = mapped_column(ForeignKey("staff.id"))

    file_key = EncryptedField()


class FaxItem(db.Model):
    """One page in the work queue. ``reading`` is the reader's result as JSON (number, marks, phone
    digits, confidences) — personal, so encrypted; ``review`` lists the fields a person must check."""

    __tablename__ = "fax_items"

    id: Mapped[str] = mapped_column(RowId(), primary_key=True)
    document_id: Mapped[str] = mapped_column(ForeignKey("fax_documents.id"), index=True)
    page_index: Mapped[int] = mapped_column(Integer)
    # new → confirmed (booked) | no_slot (none of the preferences free) | rejected (not ours)
    status: Mapped[str] = mapped_column(String(16), index=True)
    read_status: Mapped[str] = mapped_column(String(16))  # the reader's: read | not_ours | unreadable
    reason: Mapped[str | None] = mapped_column(String(200))  # the reader's reason, for staff (no values)
    review: Mapped[str | None] = mapped_column(String(200))  # comma-separated field names
    reading_ct: Mapped[str | None] = mapped_column(Ciphertext())
    applicant_id: Mapped[str | None] = mapped_column(ForeignKey("applicants.id"), index=True)
    booking_id: Mapped[str | None] = mapped_column(ForeignKey("bookings.id"))
    handled_by: Mapped[int | None] = mapped_column(ForeignKey("staff.id"))
    handled_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # How the applicant was told (R5.4): reply_sheet | sms | phone; with when.
    replied_by: Mapped[str | None] = mapped_column(String(16))
    replied_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    document: Mapped[FaxDocument] = relationship()
    applicant: Mapped[Applicant | None] = relationship()
    booking: Mapped[Booking | None] = relationship()

    reading = EncryptedField()
