"""Holds (仮押さえ), bookings (予約) and their history."""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import Boolean, Computed, ForeignKey, Index, Integer, String, false
from sqlalchemy.orm import Mapped, mapped_column, relationship

from ..extensions import db
from .applicants import Applicant
from .types import RowId, UTCDateTime
from .venues import Slot


class Channel(enum.StrEnum):
    WEB = "web"
    PHONE = "phone"
    FAX = "fax"
    COUNTER = "counter"


class Status(enum.StrEnum):
    BOOKED = "booked"
    ARRIVED = "arrived"
    HANDED_OVER = "handed_over"
    CANCELLED = "cancelled"
    NO_SHOW = "no_show"
    # Came (or called the venue) but will collect another day, e.g. a missing identity document:
    # the booking ends and the resident books again.
    POSTPONED = "postponed"


# A live booking holds a place; one live booking per 予約管理番号 (R1.3).
LIVE = (Status.BOOKED, Status.ARRIVED, Status.HANDED_OVER)
# The same condition as SQL text: the computed ``Booking.live`` below, and statements on live bookings.
LIVE_SQL = "status IN ('booked', 'arrived', 'handed_over')"
# Booking.live: 1 for a live booking, NULL otherwise (the one-live-booking rule's unique index).
LIVE_MARK_SQL = f"CASE WHEN {LIVE_SQL} THEN 1 END"


class Hold(db.Model):
    """A place kept for ten minutes while the resident confirms. It counts in ``Slot.taken``.

    At most one per applicant: choosing another slot gives the first place back.
    """

    __tablename__ = "holds"
    # Every confirmation deletes its hold from each of the table's B-trees, and on SQLite each one
    # is a page the commit writes to the WAL (~7 µs each, R9.2). So, on SQLite, the rows are stored
    # in their primary key's B-tree (WITHOUT ROWID: one tree, not a table plus a key index), and one
    # index on (slot, expiry) serves the per-slot release of lapsed holds and the sweep of all of them.
    __table_args__ = (
        Index("ix_holds_slot_id_expires_at", "slot_id", "expires_at"),
        {"sqlite_with_rowid": False},
    )

    id: Mapped[str] = mapped_column(RowId(), primary_key=True)
    slot_id: Mapped[int] = mapped_column(ForeignKey("slots.id"))
    applicant_id: Mapped[str] = mapped_column(ForeignKey("applicants.id"), unique=True)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)

    slot: Mapped[Slot] = relationship()
    applicant: Mapped[Applicant] = relationship()


class Booking(db.Model):
    __tablename__ = "bookings"

    id: Mapped[str] = mapped_column(RowId(), primary_key=True)
    applicant_id: Mapped[str] = mapped_column(ForeignKey("applicants.id"))
    slot_id: Mapped[int] = mapped_column(ForeignKey("slots.id"), index=True)
    status: Mapped[str] = mapped_column(String(16))
    channel: Mapped[str] = mapped_column(String(16))
    # The staff member who entered it (R1.1); None for the resident's own web booking.
    staff_id: Mapped[int | None] = mapped_column(ForeignKey("staff.id"))
    # Idempotency: the key of the request that last created or moved this booking, so a form
    # submitted twice (or retried after a lost reply) acts once (R1.2).
    request_key: Mapped[str | None] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
    # 1 while the booking is live, NULL once it ended: computed by the database from ``status``
    # (SQLite: when read; PostgreSQL: stored). With ``applicant_id`` it makes the unique index below,
    # which refuses a second live booking (NULLs are all distinct, so ended bookings never collide)
    # and finds all of an applicant's bookings: one B-tree to write where a partial unique index and
    # a plain index were two (R9.2).
    live: Mapped[int | None] = mapped_column(Computed(LIVE_MARK_SQL))

    applicant: Mapped[Applicant] = relationship()
    slot: Mapped[Slot] = relationship()
    events: Mapped[list[BookingEvent]] = relationship(
        back_populates="booking", order_by="BookingEvent.id", cascade="all, delete-orphan"
    )

    __table_args__ = (Index("uq_bookings_applicant_id_live", "applicant_id", "live", unique=True),)

    @property
    def is_live(self) -> bool:
        return self.status in LIVE


class BookingEvent(db.Model):
    """What happened to a booking, through which channel and by whom (R1.1). Holds no personal value."""

    __tablename__ = "booking_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    booking_id: Mapped[str] = mapped_column(ForeignKey("bookings.id"), index=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime)
    action: Mapped[str] = mapped_column(String(32))
    channel: Mapped[str] = mapped_column(String(16))
    staff_id: Mapped[int | None] = mapped_column(ForeignKey("staff.id"))
    from_slot_id: Mapped[int | None] = mapped_column(Integer)
    to_slot_id: Mapped[int | None] = mapped_column(Integer)
    # Venue outcomes (R6.1) record the status they left and the one they set, so an undo knows
    # what to restore; an undo names its reason by code (never free text: no personal value).
    from_status: Mapped[str | None] = mapped_column(String(16))
    to_status: Mapped[str | None] = mapped_column(String(16))
    reason: Mapped[str | None] = mapped_column(String(32))
    undone: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())

    booking: Mapped[Booking] = relationship(back_populates="events")
