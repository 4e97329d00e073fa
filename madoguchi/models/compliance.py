"""What a city's privacy clauses ask the contractor to keep (R7.5, R8): the export ledger, the
deletion records, the incident register, and the roster imports' counts.

Free text a person types here may name someone, so it is encrypted like any personal field.
"""

from __future__ import annotations

import enum
from datetime import date, datetime

from sqlalchemy import Date, ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from ..crypto import EncryptedField
from ..extensions import db
from .types import Ciphertext, RowId, UTCDateTime


class ExportStatus(enum.StrEnum):
    REQUESTED = "requested"
    APPROVED = "approved"
    REJECTED = "rejected"
    PRODUCED = "produced"  # the encrypted file was written and handed over
    CLOSED = "closed"  # returned or destroyed: the entry is complete


class ExportRequest(db.Model):
    """One line of the export ledger (R7.5): personal data leaves only through here — a request, an
    approval by another person, an encrypted file, then the return or destruction that closes it."""

    __tablename__ = "export_requests"

    id: Mapped[str] = mapped_column(RowId(), primary_key=True)
    dataset: Mapped[str] = mapped_column(String(32))  # what: e.g. bookings, applicants, call_log
    criteria: Mapped[str | None] = mapped_column(Text)  # JSON, no personal value (venue, dates…)
    purpose_ct: Mapped[str] = mapped_column(Ciphertext())
    destination_ct: Mapped[str] = mapped_column(Ciphertext())
    record_count: Mapped[int | None] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(16), default=ExportStatus.REQUESTED.value, index=True)
    requested_by: Mapped[int] = mapped_column(ForeignKey("staff.id"))
    requested_at: Mapped[datetime] = mapped_column(UTCDateTime)
    decided_by: Mapped[int | None] = mapped_column(ForeignKey("staff.id"))
    decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    decision_note_ct: Mapped[str | None] = mapped_column(Ciphertext())
    produced_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    produced_by: Mapped[int | None] = mapped_column(ForeignKey("staff.id"))
    file_sha256: Mapped[str | None] = mapped_column(String(64))
    closure: Mapped[str | None] = mapped_column(String(16))  # returned | destroyed
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    closed_by: Mapped[int | None] = mapped_column(ForeignKey("staff.id"))
    closure_note_ct: Mapped[str | None] = mapped_column(Ciphertext())

    purpose = EncryptedField()
    destination = EncryptedField()
    decision_note = EncryptedField()
    closure_note = EncryptedField()


class DeletionRecord(db.Model):
    """A deletion made so that the data cannot be read again (R8.1, R8.2, R4.4): what, where (the
    medium), how many, how, when, who was responsible and who witnessed it. ``details`` holds
    non-personal evidence (ids, Twilio's answers) as JSON."""

    __tablename__ = "deletion_records"

    id: Mapped[str] = mapped_column(RowId(), primary_key=True)
    kind: Mapped[str] = mapped_column(String(32), index=True)  # recordings, fax_images, bookings…
    medium: Mapped[str] = mapped_column(String(64))  # e.g. database, local files, Twilio
    count: Mapped[int] = mapped_column(Integer)
    method: Mapped[str] = mapped_column(String(200))
    executed_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    responsible_id: Mapped[int | None] = mapped_column(ForeignKey("staff.id"))
    responsible_name: Mapped[str] = mapped_column(String(100))
    witness_name: Mapped[str | None] = mapped_column(String(100))
    outcome: Mapped[str] = mapped_column(String(16), default="done")  # done | partial (some left queued)
    details: Mapped[str | None] = mapped_column(Text)


class Incident(db.Model):
    """The register of 漏えい等 incidents (R8.3)."""

    __tablename__ = "incidents"

    id: Mapped[str] = mapped_column(RowId(), primary_key=True)
    occurred_on: Mapped[date | None] = mapped_column(Date)
    discovered_at: Mapped[datetime] = mapped_column(UTCDateTime)
    affected_count: Mapped[int | None] = mapped_column(Integer)
    content_ct: Mapped[str] = mapped_column(Ciphertext())
    place_ct: Mapped[str | None] = mapped_column(Ciphertext())
    circumstances_ct: Mapped[str | None] = mapped_column(Ciphertext())
    actions_ct: Mapped[str | None] = mapped_column(Ciphertext())
    reported_to_city_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    reported_to_commission_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    status: Mapped[str] = mapped_column(String(16), default="open")  # open | closed
    created_by: Mapped[int] = mapped_column(ForeignKey("staff.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)

    content = EncryptedField()
    place = EncryptedField()
    circumstances = EncryptedField()
    actions = EncryptedField()


class RosterImport(db.Model):
    """One import of the city's applicant list (CSV): the counts, for reconciliation (R8)."""

    __tablename__ = "roster_imports"

    id: Mapped[str] = mapped_column(RowId(), primary_key=True)
    imported_at: Mapped[datetime] = mapped_column(UTCDateTime)
    staff_id: Mapped[int | None] = mapped_column(ForeignKey("staff.id"))
    file_sha256: Mapped[str] = mapped_column(String(64))
    rows_total: Mapped[int] = mapped_column(Integer)
    rows_imported: Mapped[int] = mapped_column(Integer)
    rows_rejected: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(16))  # imported | rejected (nothing imported)
