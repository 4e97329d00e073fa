"""Venues (会場), their special openings (休日開庁) and slots (予約枠)."""

from __future__ import annotations

from datetime import date, datetime, time

from sqlalchemy import CheckConstraint, Date, ForeignKey, Integer, String, Text, Time, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from ..extensions import db
from .types import UTCDateTime


class Venue(db.Model):
    __tablename__ = "venues"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    code: Mapped[str] = mapped_column(String(32), unique=True)
    name: Mapped[str] = mapped_column(String(100))
    floor: Mapped[str] = mapped_column(String(100), default="")
    address: Mapped[str] = mapped_column(String(200), default="")
    map_url: Mapped[str] = mapped_column(String(500), default="")
    directions: Mapped[str] = mapped_column(Text, default="")
    open_time: Mapped[time] = mapped_column(Time)
    close_time: Mapped[time] = mapped_column(Time)
    slot_minutes: Mapped[int] = mapped_column(Integer, default=30)
    slot_capacity: Mapped[int] = mapped_column(Integer, default=10)
    # Weekdays the venue opens on, Monday = 0 (e.g. "01234"); public holidays close unless a
    # SpecialOpening says otherwise.
    open_weekdays: Mapped[str] = mapped_column(String(7), default="01234")

    special_openings: Mapped[list[SpecialOpening]] = relationship(back_populates="venue")

    __table_args__ = (
        CheckConstraint("slot_minutes > 0", name="slot_minutes_positive"),
        CheckConstraint("slot_capacity >= 0", name="slot_capacity_not_negative"),
    )

    @property
    def display_name(self) -> str:
        return f"{self.name} {self.floor}".strip()


class SpecialOpening(db.Model):
    """休日開庁: the venue opens on a day it would otherwise be closed (a holiday or weekend)."""

    __tablename__ = "special_openings"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    venue_id: Mapped[int] = mapped_column(ForeignKey("venues.id"))
    day: Mapped[date] = mapped_column(Date)
    open_time: Mapped[time] = mapped_column(Time)
    close_time: Mapped[time] = mapped_column(Time)
    note: Mapped[str] = mapped_column(String(200), default="")

    venue: Mapped[Venue] = relationship(back_populates="special_openings")

    __table_args__ = (UniqueConstraint("venue_id", "day", name="uq_special_openings_venue_day"),)


class Slot(db.Model):
    """A pick-up time at a venue. ``taken`` counts bookings and live holds; it never exceeds capacity.

    The booking service changes ``taken`` only with a conditional UPDATE (see booking.py), and the
    CHECK constraints make the database itself refuse an overbooked slot (R1.2).
    """

    __tablename__ = "slots"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    venue_id: Mapped[int] = mapped_column(ForeignKey("venues.id"), index=True)
    starts_at: Mapped[datetime] = mapped_column(UTCDateTime)
    ends_at: Mapped[datetime] = mapped_column(UTCDateTime)
    capacity: Mapped[int] = mapped_column(Integer)
    taken: Mapped[int] = mapped_column(Integer, default=0)

    venue: Mapped[Venue] = relationship()

    __table_args__ = (
        UniqueConstraint("venue_id", "starts_at", name="uq_slots_venue_start"),
        CheckConstraint("taken >= 0", name="taken_not_negative"),
        CheckConstraint("taken <= capacity", name="taken_within_capacity"),
        CheckConstraint("capacity >= 0", name="capacity_not_negative"),
    )

    @property
    def remaining(self) -> int:
        return max(self.capacity - self.taken, 0)
