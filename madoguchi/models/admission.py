"""The waiting room's shared state (R9.2): one row per opening, and the passes admitted visitors
use to identify. No personal value is stored here: a pass is a random nonce from a signed cookie."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Float, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from ..extensions import db
from .types import UTCDateTime


class AdmissionRoom(db.Model):
    """Arrival order and the admitted frontier of one opening (see ``madoguchi.admission``).

    Times are epoch seconds (floats) so the frontier can be advanced by one portable UPDATE
    expression on SQLite and PostgreSQL alike.
    """

    __tablename__ = "admission_rooms"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    # Visitors given a place so far; places are 1, 2, 3 … in arrival order after the opening.
    arrivals: Mapped[int] = mapped_column(Integer, default=0)
    # Of those, how many came before the opening: places 1 … early, admitted in a random order.
    early: Mapped[int] = mapped_column(Integer, default=0)
    # Places up to ``frontier`` were admitted at ``frontier_at``; it grows at the rate from there.
    frontier: Mapped[float] = mapped_column(Float, default=0.0)
    frontier_at: Mapped[float] = mapped_column(Float)
    # 1.0 = the configured rate; lowered by the latency control when booking slows down.
    rate_factor: Mapped[float] = mapped_column(Float, default=1.0)
    adjusted_at: Mapped[float] = mapped_column(Float, default=0.0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class AdmissionPass(db.Model):
    """How many identifications (number + birth date) one admitted ticket has been used for, so an
    admitted ticket copied to other browsers cannot let a crowd past the queue."""

    __tablename__ = "admission_passes"

    nonce: Mapped[str] = mapped_column(String(32), primary_key=True)
    room: Mapped[str] = mapped_column(String(64))
    uses: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
