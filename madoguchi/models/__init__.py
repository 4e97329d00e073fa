"""One module per aggregate; importing this package registers every table."""

from .applicants import SEXES, SOURCES, Applicant, LookupFailure
from .bookings import LIVE, Booking, BookingEvent, Channel, Hold, Status
from .messages import OutboundMessage
from .venues import Slot, SpecialOpening, Venue

__all__ = [
    "LIVE",
    "SEXES",
    "SOURCES",
    "Applicant",
    "Booking",
    "BookingEvent",
    "Channel",
    "Hold",
    "LookupFailure",
    "OutboundMessage",
    "Slot",
    "SpecialOpening",
    "Status",
    "Venue",
]
