"""Messages to residents: written to the outbox table with the booking, delivered after commit.

Writing the message in the same transaction as the booking means a crash between the two loses
neither; ``deliver_pending`` sends what is waiting, counts attempts and keeps failures visible for
the next run (`madoguchi outbox deliver`). The Mailer is chosen by configuration: an outbox folder
of real .eml files (the default, for one machine without a mail server) or SMTP.
"""

from __future__ import annotations

import smtplib
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from pathlib import Path

from flask import current_app, render_template
from sqlalchemy import select

from . import dates, guidance, numbers
from .crypto import new_row_id
from .extensions import db
from .models import Booking, OutboundMessage

SUBJECTS = {
    "booking_confirmed": "【{city}】個人番号カード受け取りのご予約を受け付けました",
    "booking_changed": "【{city}】個人番号カード受け取りのご予約を変更しました",
    "booking_cancelled": "【{city}】個人番号カード受け取りのご予約を取り消しました",
}


def queue_booking_message(booking: Booking, template: str) -> OutboundMessage | None:
    """Queue the e-mail for a booking event when the applicant gave an address (R3.4)."""
    applicant = booking.applicant
    if not applicant.email:
        return None
    slot = booking.slot
    city = current_app.config["CITY_NAME"]
    body = render_template(
        f"emails/{template}.txt",
        booking=booking,
        applicant=applicant,
        slot=slot,
        venue=slot.venue,
        number=numbers.display(applicant.reservation_number),
        starts=dates.tokyo(slot.starts_at),
        ends=dates.tokyo(slot.ends_at),
        guidance=guidance,
        config=current_app.config,
    )
    message = OutboundMessage(
        id=new_row_id(),
        kind="email",
        template=template,
        booking_id=booking.id,
        status="pending",
        attempts=0,
        created_at=dates.now(),
    )
    message.recipient = applicant.email
    message.subject = SUBJECTS[template].format(city=city)
    message.body = body
    db.session.add(message)
    db.session.flush()
    return message


# ---- delivery --------------------------------------------------------------------------------
class Mailer:
    def send(self, message: EmailMessage) -> None:  # pragma: no cover - interface
        raise NotImplementedError


class OutboxMailer(Mailer):
    """Writes each message as an .eml file (RFC 5322) into a folder: what a mail client would open."""

    def __init__(self, folder: str):
        self.folder = Path(folder)

    def send(self, message: EmailMessage) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        name = message["Message-ID"].strip("<>").replace("@", "_at_")
        path = self.folder / f"{name}.eml"
        path.write_bytes(bytes(message))
        path.chmod(0o600)


class SmtpMailer(Mailer):
    def __init__(self, config):
        self.config = config

    def send(self, message: EmailMessage) -> None:
        c = self.config
        with smtplib.SMTP(c["SMTP_HOST"], c["SMTP_PORT"], timeout=20) as smtp:
            if c["SMTP_STARTTLS"]:
                smtp.starttls()
            if c["SMTP_USER"]:
                smtp.login(c["SMTP_USER"], c["SMTP_PASSWORD"])
            smtp.send_message(message)


def mailer() -> Mailer:
    config = current_app.config
    if config["MAIL_BACKEND"] == "smtp":
        return SmtpMailer(config)
    return OutboxMailer(config["MAIL_OUTBOX_DIR"])


def _email(message: OutboundMessage) -> EmailMessage:
    email = EmailMessage()
    email["From"] = current_app.config["MAIL_FROM"]
    email["To"] = message.recipient
    email["Subject"] = message.subject
    email["Date"] = formatdate(localtime=False)
    email["Message-ID"] = make_msgid(idstring=message.id, domain="madoguchi.local")
    email.set_content(message.body, charset="utf-8")
    return email


def deliver_pending(limit: int = 100) -> tuple[int, int]:
    """Send waiting messages; returns (sent, failed). The caller commits."""
    sender = mailer()
    sent = failed = 0
    pending = db.session.scalars(
        select(OutboundMessage)
        .where(OutboundMessage.status.in_(("pending", "failed")), OutboundMessage.attempts < 10)
        .order_by(OutboundMessage.created_at)
        .limit(limit)
    ).all()
    for message in pending:
        message.attempts += 1
        try:
            if message.kind == "email":
                sender.send(_email(message))
            message.status = "sent"
            message.sent_at = dates.now()
            message.last_error = None
            sent += 1
        except (OSError, smtplib.SMTPException) as exc:
            # The error class and errno only: an SMTP reply can echo the recipient address.
            message.status = "failed"
            message.last_error = f"{type(exc).__name__}: {getattr(exc, 'errno', '') or ''}".strip(": ")
            failed += 1
            current_app.logger.warning("message %s not delivered (%s)", message.id, message.last_error)
    db.session.flush()
    return sent, failed
