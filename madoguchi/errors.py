"""Domain errors. Views turn each into a message for the person in front of the screen.

Messages here are for logs and developers and never contain a personal value; the user-facing
Japanese text lives with the views (through gettext).
"""

from __future__ import annotations


class DomainError(Exception):
    code = "domain_error"


class SlotFull(DomainError):
    code = "slot_full"


class SlotNotBookable(DomainError):
    """Past, closed, unknown, or at a venue that does not serve this applicant."""

    code = "slot_not_bookable"


class HoldExpired(DomainError):
    code = "hold_expired"


class AlreadyBooked(DomainError):
    """The applicant already has a live booking; change it instead of booking again (R1.3)."""

    code = "already_booked"


class NotChangeable(DomainError):
    """The booking is cancelled, handed over, or otherwise not movable."""

    code = "not_changeable"


class SameSlot(DomainError):
    code = "same_slot"


class IdentityMismatch(DomainError):
    """予約管理番号 and 生年月日 do not belong together (or the number is unknown)."""

    code = "identity_mismatch"


class LookupLocked(DomainError):
    """Too many failed look-ups for this number; try again later or call the call center."""

    code = "lookup_locked"


class NotOnRoster(DomainError):
    code = "not_on_roster"
