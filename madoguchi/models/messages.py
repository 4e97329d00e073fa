"""The transactional outbox: messages are written with the booking and sent after the commit."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from ..crypto import EncryptedField
from ..extensions import db
from .types import Ciphertext, RowId, UTCDateTime


class OutboundMessage(db.Model):
    """An e-mail or SMS to a resident. Recipient and body are personal, so both are encrypted.

    A booking queues the message as a small row (kind, template, booking, slot) in its own
    transaction; recipient, subject and body are drafted — rendered and encrypted — when the
    message is first delivered, outside the booking's write lock (R9.2). ``slot_id`` is the slot the
    message speaks of at queueing time, so a booking moved before delivery is told in order.
    """

    __tablename__ = "outbound_messages"
    # A booking's messages get ids next to each other (``crypto.new_row_ids``): queueing them writes
    # one page of the key's B-tree, not one per message (R9.2).

    id: Mapped[str] = mapped_column(RowId(), primary_key=True)
    kind: Mapped[str] = mapped_column(String(8))  # email | sms
    template: Mapped[str] = mapped_column(String(64))
    booking_id: Mapped[str | None] = mapped_column(ForeignKey("bookings.id"), index=True)
    slot_id: Mapped[int | None] = mapped_column(Integer)
    # None until drafted (at the first delivery attempt).
    recipient_ct: Mapped[str | None] = mapped_column(Ciphertext())
    subject_ct: Mapped[str | None] = mapped_column(Ciphertext())
    body_ct: Mapped[str | None] = mapped_column(Ciphertext())
    status: Mapped[str] = mapped_column(String(16), default="pending", index=True)  # pending|sent|failed
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # The provider's id for the sent message (Twilio's Message SID), kept as proof of sending.
    provider_id: Mapped[str | None] = mapped_column(String(64))
    # A failed message waits until this time before the next attempt (backoff).
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    recipient = EncryptedField()
    subject = EncryptedField()
    body = EncryptedField()
