"""The logistics desk's counts (R6.3): notices and cards received, sent and handed over.

Entries are never edited: a correction is a new entry that names the one it replaces and says why
(the reason is staff text, so it is encrypted like any field that might hold a personal value).
"""

from __future__ import annotations

import enum
from datetime import date, datetime

from sqlalchemy import CheckConstraint, Date, ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from ..crypto import EncryptedField
from ..extensions import db
from .types import Ciphertext, RowId, UTCDateTime
from .venues import Venue


class LogisticsKind(enum.StrEnum):
    NOTICES_RECEIVED = "notices_received"  # 交付通知書を区から受領
    NOTICES_SENT = "notices_sent"  # 交付通知書を発送
    CARDS_RECEIVED = "cards_received"  # カードを区から受領
    CARDS_TO_VENUE = "cards_to_venue"  # カードを会場へ送付
    CARDS_HANDED_OVER = "cards_handed_over"  # 会場で交付
    CARDS_RETURNED = "cards_returned"  # 会場から区へ返却


# Kinds counted per venue; the others are counted for the whole desk.
PER_VENUE = frozenset(
    {LogisticsKind.CARDS_TO_VENUE, LogisticsKind.CARDS_HANDED_OVER, LogisticsKind.CARDS_RETURNED}
)


class LogisticsEntry(db.Model):
    __tablename__ = "logistics_entries"

    id: Mapped[str] = mapped_column(RowId(), primary_key=True)
    kind: Mapped[str] = mapped_column(String(32), index=True)
    venue_id: Mapped[int | None] = mapped_column(ForeignKey("venues.id"))
    day: Mapped[date] = mapped_column(Date)
    quantity: Mapped[int] = mapped_column(Integer)
    staff_id: Mapped[int] = mapped_column(ForeignKey("staff.id"))
    recorded_at: Mapped[datetime] = mapped_column(UTCDateTime)
    # The entry this one replaces (a correction); None for a first record.
    corrects_id: Mapped[str | None] = mapped_column(ForeignKey("logistics_entries.id"), unique=True)
    reason_ct: Mapped[str | None] = mapped_column(Ciphertext())

    reason = EncryptedField()
    venue: Mapped[Venue | None] = relationship()

    __table_args__ = (CheckConstraint("quantity >= 0", name="quantity_not_negative"),)
