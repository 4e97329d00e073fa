"""One module per aggregate; importing this package registers every table."""

from .admission import AdmissionPass, AdmissionRoom
from .applicants import SEXES, SOURCES, Applicant, LookupFailure
from .audit import AuditChainHead, AuditEntry
from .bookings import LIVE, LIVE_SQL, Booking, BookingEvent, Channel, Hold, Status
from .calls import CALL_CATEGORY_LABELS, Call, CallCategory, CallRecording, LegalBasis, RecordingProvision
from .compliance import DeletionRecord, ExportRequest, ExportStatus, Incident, RosterImport
from .fax import FaxDocument, FaxItem
from .logistics import PER_VENUE, LogisticsEntry, LogisticsKind
from .messages import OutboundMessage
from .staff import RecoveryCode, Staff, StaffSession
from .venues import Slot, SpecialOpening, Venue


def stored_columns(table) -> list:
    """A table's columns whose values are kept: not those the database computes (``Booking.live``),
    which backups and exports leave out (a restore writes the rest, the database computes them)."""
    return [column for column in table.columns if column.computed is None]


__all__ = [
    "stored_columns",
    "CALL_CATEGORY_LABELS",
    "Call",
    "CallCategory",
    "CallRecording",
    "DeletionRecord",
    "ExportRequest",
    "ExportStatus",
    "FaxDocument",
    "FaxItem",
    "Incident",
    "LegalBasis",
    "RecordingProvision",
    "RosterImport",
    "LIVE",
    "LIVE_SQL",
    "PER_VENUE",
    "SEXES",
    "SOURCES",
    "AdmissionPass",
    "AdmissionRoom",
    "Applicant",
    "AuditChainHead",
    "AuditEntry",
    "Booking",
    "BookingEvent",
    "Channel",
    "Hold",
    "LogisticsEntry",
    "LogisticsKind",
    "LookupFailure",
    "OutboundMessage",
    "RecoveryCode",
    "Slot",
    "SpecialOpening",
    "Staff",
    "StaffSession",
    "Status",
    "Venue",
]
