"""Messages to residents, by e-mail and SMS: written to the outbox table with the booking, delivered
after commit (R3.4).

Writing the message in the same transaction as the booking means a crash between the two loses
neither; ``deliver`` sends what is due, counts attempts, waits longer after each failure
(``next_attempt_at``) and keeps failures visible: a message is never dropped, it ends as ``sent`` or
``undeliverable`` (shown to staff by ``undelivered``; ``retry_now`` tries again).

Senders are chosen by configuration, each with a real and an outbox implementation: e-mail as .eml
files or SMTP; SMS as text files or Twilio (when its account SID, token and sender are all set).
This module and ``callcenter/telephony/`` are the only importers of ``twilio``.

Personal values stay inside the encrypted columns and the outbox folders: errors are stored and logged
as the exception's type and codes only, because Twilio's and SMTP servers' messages echo the recipient.
"""

from __future__ import annotations

import logging
import re
import smtplib
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from flask import current_app, g, has_request_context, render_template
from sqlalchemy import func, or_, select, update
from twilio.base.exceptions import TwilioRestException, TwilioServiceException
from twilio.http.http_client import TwilioHttpClient
from twilio.rest import Client

from . import dates, guidance, normalize, numbers
from .crypto import new_row_ids
from .extensions import begin_write, db
from .models import Applicant, Booking, BookingEvent, OutboundMessage, Slot, Status
from .prepared import insert_of

SUBJECTS = {
    "booking_confirmed": "【{city}】個人番号カード受け取りのご予約を受け付けました",
    "booking_changed": "【{city}】個人番号カード受け取りのご予約を変更しました",
    "booking_cancelled": "【{city}】個人番号カード受け取りのご予約を取り消しました",
    "booking_reminder": "【{city}】個人番号カード受け取りのご予約日のお知らせ",
}
REMINDER = "booking_reminder"

# Ten UCS-2 segments of 67 characters: Twilio's limit for one Japanese message.
SMS_MAX_CHARS = 670
# 070/080/090 and 11 digits: the numbers that can receive SMS (landlines and 050 IP phones cannot).
_MOBILE = re.compile(r"^0[789]0\d{8}$")

MAX_ATTEMPTS = 10
DUE = ("pending", "failed")
UNDELIVERED = ("failed", "undeliverable")
# 1, 2, 4 … minutes between attempts, never more than this: ten attempts span about eight hours.
_MAX_BACKOFF = timedelta(hours=4)
# While a message is being sent no other worker takes it; longer than any send's timeouts.
_LEASE = timedelta(minutes=5)
# HTTP statuses that say "later", not "never": overload, rate limit, and credentials being fixed.
_TRANSIENT_HTTP = frozenset({401, 408, 429})

log = logging.getLogger(__name__)


# ---- queueing ---------------------------------------------------------------------------------
def mobile_e164(phone: str | None) -> str | None:
    """The number in E.164 (+8190…) when it is a Japanese mobile number, else None."""
    digits = normalize.phone(phone or "")
    if not _MOBILE.match(digits):
        return None
    return "+81" + digits[1:]


def queue_booking_message(booking: Booking, template: str) -> list[str]:
    """``queue_message`` for a booking the caller has loaded."""
    return queue_message(channels_for(booking.applicant), booking.id, booking.slot_id, template)


def channels_for(applicant: Applicant) -> tuple[str, ...]:
    """The e-mail when the applicant gave an address, the SMS when the phone is a mobile number (R3.4)."""
    return _channels(applicant.email, applicant.phone)


def _channels(email: str | bool | None, phone: str | None) -> tuple[str, ...]:
    return tuple(
        kind for kind, wanted in (("email", bool(email)), ("sms", bool(mobile_e164(phone)))) if wanted
    )


def channels_of(applicant_id: str, email_ct: str | None, phone_ct: str | None) -> tuple[str, ...]:
    """``channels_for`` from the applicant's two contact ciphertexts, selected by the caller with
    its other reads (the booking hot path loads no applicant object, R9.2). An address is stored only
    when there is one (``EncryptedField`` writes NULL for none or ""), so only the phone is decrypted:
    whether it takes SMS is in its value."""
    return _channels(email_ct is not None, Applicant.phone.plain(Applicant, phone_ct, applicant_id))


QUEUE_MESSAGE = insert_of(
    OutboundMessage.__table__, "id kind template booking_id slot_id status attempts created_at"
)


def queue_message(channels: tuple[str, ...], booking_id: str, slot_id: int, template: str) -> list[str]:
    """Queue a booking's message on ``channels`` (``channels_for``); phone, FAX and counter bookings
    send the same as the web (R4.1). Returns the queued ids.

    Only a small row is written here, in the booking's transaction (so a crash loses neither): the
    text is drafted at delivery, so a booking never holds the write lock while a template renders
    and its text is encrypted (profiled: half of a booking request, R9.2).
    """
    rows = message_rows(channels, booking_id, slot_id, template)
    if not rows:
        return []
    QUEUE_MESSAGE.execute_many(db.session.connection(), rows)
    return queued(rows)


def message_rows(channels: tuple[str, ...], booking_id: str, slot_id: int, template: str) -> list[dict]:
    """The rows of ``QUEUE_MESSAGE`` for a booking's message on ``channels``, for a caller that
    writes them with its own statements (the confirmation, ``booking._insert_booking``); it then
    hands them to ``queued``."""
    now = dates.now()
    return [
        dict(
            id=message_id,
            kind=kind,
            template=template,
            booking_id=booking_id,
            slot_id=slot_id,
            status="pending",
            attempts=0,
            created_at=now,
        )
        for kind, message_id in zip(channels, new_row_ids(len(channels)), strict=True)
    ]


def queued(rows: list[dict]) -> list[str]:
    """The ids of message rows just written; in a request, they are sent once the response has
    gone out (appbase): the resident never waits for Twilio."""
    ids = [row["id"] for row in rows]
    if has_request_context():
        g.setdefault("queued_messages", []).extend(ids)
    return ids


@dataclass(frozen=True)
class Draft:
    """A message's text as first composed at delivery; stored (encrypted) with the attempt."""

    recipient: str
    subject: str | None
    body: str


class Undeliverable(Exception):
    """The message cannot be composed: its booking is gone or the resident has no such contact."""


def draft(message: OutboundMessage) -> Draft:
    """Compose the message from its booking, the slot it speaks of and the resident's contact now."""
    booking = db.session.get(Booking, message.booking_id) if message.booking_id else None
    if booking is None:
        raise Undeliverable("the booking is gone")
    applicant = booking.applicant
    recipient = applicant.email if message.kind == "email" else mobile_e164(applicant.phone)
    if not recipient:
        raise Undeliverable("no contact of this kind")
    slot = (db.session.get(Slot, message.slot_id) if message.slot_id else None) or booking.slot
    context = _context(booking, slot)
    if message.kind == "email":
        body = render_template(f"emails/{message.template}.txt", **context)
        subject = SUBJECTS[message.template].format(city=current_app.config["CITY_NAME"])
        return Draft(recipient, subject, body)
    return Draft(recipient, None, render_template(f"sms/{message.template}.txt", **context).strip())


def _context(booking: Booking, slot: Slot) -> dict:
    return dict(
        booking=booking,
        applicant=booking.applicant,
        slot=slot,
        venue=slot.venue,
        number=numbers.display(booking.applicant.reservation_number),
        starts=dates.tokyo(slot.starts_at),
        ends=dates.tokyo(slot.ends_at),
        guidance=guidance,
        config=current_app.config,
    )


# ---- reminders --------------------------------------------------------------------------------
def queue_reminders(day: date) -> tuple[int, int]:
    """Queue the reminder for every booked booking whose slot starts on ``day`` (Tokyo).

    Idempotent: a booking already reminded since it was put into its current slot is skipped, so a
    second run sends nothing twice, while a booking moved after its reminder (to this day or to
    another time) is reminded again. Returns (bookings reminded, messages queued). The caller commits.
    """
    start, end = dates.day_bounds(day)
    placed_at = (
        select(func.max(BookingEvent.at))
        .where(BookingEvent.booking_id == Booking.id, BookingEvent.to_slot_id == Booking.slot_id)
        .scalar_subquery()
    )
    reminded = (
        select(OutboundMessage.id)
        .where(
            OutboundMessage.booking_id == Booking.id,
            OutboundMessage.template == REMINDER,
            OutboundMessage.created_at >= func.coalesce(placed_at, Booking.created_at),
        )
        .exists()
    )
    due = db.session.scalars(
        select(Booking)
        .join(Slot, Booking.slot_id == Slot.id)
        .where(
            Booking.status == Status.BOOKED.value, Slot.starts_at >= start, Slot.starts_at < end, ~reminded
        )
        .order_by(Slot.starts_at, Booking.id)
    ).all()
    bookings = messages = 0
    for booking in due:
        queued = queue_booking_message(booking, REMINDER)
        bookings += bool(queued)
        messages += len(queued)
    return bookings, messages


# ---- senders ----------------------------------------------------------------------------------
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
        _write_private(self.folder / f"{name}.eml", bytes(message))


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


@dataclass(frozen=True)
class Sms:
    """One SMS as the senders see it: plain values, no database object."""

    id: str
    template: str
    to: str  # E.164
    body: str


class Texter:
    def send(self, sms: Sms) -> str | None:  # pragma: no cover - interface
        """Send the SMS; returns the provider's id for it, if there is one."""
        raise NotImplementedError


class OutboxTexter(Texter):
    """Writes each SMS as a small text file a person can read: where, when, what."""

    def __init__(self, folder: str):
        self.folder = Path(folder)

    def send(self, sms: Sms) -> str | None:
        self.folder.mkdir(parents=True, exist_ok=True)
        text = f"To: {sms.to}\nDate: {formatdate(localtime=False)}\nTemplate: {sms.template}\n\n{sms.body}\n"
        _write_private(self.folder / f"{sms.id}.txt", text.encode("utf-8"))
        return None


class TwilioTexter(Texter):
    """Twilio's Messages API (``messages.create``); the returned Message SID is kept as proof."""

    def __init__(self, config):
        self.client = twilio_client(config)
        self.sender = config["TWILIO_FROM_NUMBER"]

    def send(self, sms: Sms) -> str:
        return self.client.messages.create(to=sms.to, from_=self.sender, body=sms.body).sid


def twilio_configured(config) -> bool:
    return all(config.get(k) for k in ("TWILIO_ACCOUNT_SID", "TWILIO_AUTH_TOKEN", "TWILIO_FROM_NUMBER"))


def texter() -> Texter:
    config = current_app.config
    if twilio_configured(config):
        return TwilioTexter(config)
    return OutboxTexter(config["SMS_OUTBOX_DIR"])


class GatewayHttpClient(TwilioHttpClient):
    """Twilio's own HTTP client, sent to TWILIO_API_BASE_URL instead of Twilio's hosts when the city
    routes the API through a gateway (tests point it at a local fake). Logs method, path and status
    only: the library's own logging prints query strings and headers."""

    DEFAULT_BASE = "https://api.twilio.com"

    def __init__(self, base_url: str = DEFAULT_BASE, timeout: float = 10):
        super().__init__(timeout=timeout, logger=log)
        self.base = urlsplit(base_url.rstrip("/"))

    def request(self, method, url, *args, **kwargs):
        return super().request(method, self.rewrite(url), *args, **kwargs)

    def rewrite(self, url: str) -> str:
        parts = urlsplit(url)
        # Any Twilio host (edge and region settings change the name) goes to the configured base.
        host = parts.hostname or ""
        on_twilio = host == "twilio.com" or host.endswith(".twilio.com")
        if urlunsplit(self.base) == self.DEFAULT_BASE or not on_twilio:
            return url
        return urlunsplit(
            (self.base.scheme, self.base.netloc, self.base.path + parts.path, parts.query, parts.fragment)
        )

    def log_request(self, kwargs) -> None:
        self.logger.debug("twilio %s %s", kwargs["method"], urlsplit(kwargs["url"]).path)

    def log_response(self, status_code, response) -> None:
        self.logger.debug("twilio answered %s", status_code)


def twilio_client(config=None) -> Client:
    """A Twilio REST client for the configured account, through the configured API base URL."""
    config = config or current_app.config
    return Client(
        config["TWILIO_ACCOUNT_SID"],
        config["TWILIO_AUTH_TOKEN"],
        http_client=GatewayHttpClient(config["TWILIO_API_BASE_URL"]),
    )


def _write_private(path: Path, data: bytes) -> None:
    """Create the file readable by its owner only before any personal value is written into it."""
    path.touch(mode=0o600, exist_ok=True)
    path.chmod(0o600)
    path.write_bytes(data)


def _email(message_id: str, text: Draft) -> EmailMessage:
    email = EmailMessage()
    email["From"] = current_app.config["MAIL_FROM"]
    email["To"] = text.recipient
    email["Subject"] = text.subject
    email["Date"] = formatdate(localtime=False)
    email["Message-ID"] = make_msgid(idstring=message_id, domain="madoguchi.local")
    email.set_content(text.body, charset="utf-8")
    return email


# ---- delivery ---------------------------------------------------------------------------------
@dataclass
class Delivery:
    """What one delivery run did. ``failed`` will be retried; ``undeliverable`` will not."""

    sent: int = 0
    failed: int = 0
    undeliverable: int = 0


def deliver(limit: int = 100) -> Delivery:
    """Send the messages that are due: pending, or failed and past their wait.

    It commits, so call it after your own commit (the request hook and the CLI do). Each message is
    claimed, sent and recorded on its own: the network call happens outside any transaction, so a
    slow or unreachable Twilio or SMTP server never holds SQLite's write lock while residents book
    (PITFALLS: capacity and concurrency).
    """
    result = Delivery()
    senders = {"email": mailer(), "sms": texter()}
    now = dates.now()
    due = db.session.scalars(
        select(OutboundMessage.id)
        .where(OutboundMessage.status.in_(DUE), _is_due(now))
        .order_by(OutboundMessage.created_at)
        .limit(limit)
    ).all()
    db.session.commit()
    for message_id in due:
        _deliver_one(message_id, senders, result)
    return result


def deliver_these(message_ids: list[str]) -> Delivery:
    """Send the given messages now (those one request queued); each is claimed as in ``deliver``,
    so a scheduler run at the same moment never sends one twice."""
    result = Delivery()
    senders = {"email": mailer(), "sms": texter()}
    for message_id in message_ids:
        _deliver_one(message_id, senders, result)
    return result


def deliver_pending(limit: int = 100) -> tuple[int, int]:
    """``deliver`` as (sent, not sent), for the after-request hook."""
    result = deliver(limit)
    return result.sent, result.failed + result.undeliverable


def _is_due(now: datetime):
    return or_(OutboundMessage.next_attempt_at.is_(None), OutboundMessage.next_attempt_at <= now)


def _deliver_one(message_id: str, senders: dict, result: Delivery) -> None:
    now = dates.now()
    begin_write()
    # Claim by a conditional UPDATE whose row count decides: the attempt is counted and the message
    # leased, so a second worker skips it (on PostgreSQL it waits for this commit, then finds the
    # lease), and a worker that dies while sending leaves it to be retried when the lease ends.
    claimed = db.session.execute(
        update(OutboundMessage)
        .where(OutboundMessage.id == message_id, OutboundMessage.status.in_(DUE), _is_due(now))
        .values(attempts=OutboundMessage.attempts + 1, next_attempt_at=now + _LEASE)
        .execution_options(synchronize_session=False)
    ).rowcount
    db.session.commit()
    if not claimed:
        return

    # Composed in a read transaction: rendering never holds SQLite's write lock (R9.2).
    message = db.session.get(OutboundMessage, message_id, populate_existing=True)
    drafted = None
    try:
        if message.body_ct is None:
            text = drafted = draft(message)
        else:
            text = Draft(message.recipient, message.subject, message.body)
        if message.kind == "email":
            payload, sender = _email(message.id, text), senders["email"]
        else:
            payload, sender = Sms(message.id, message.template, text.recipient, text.body), senders["sms"]
    except Exception as exc:  # noqa: BLE001 - a message that cannot be built must not block the queue
        db.session.rollback()
        _record_attempt(message_id, None, None, exc, now, result)
        return
    db.session.commit()

    error = provider_id = None
    try:
        provider_id = sender.send(payload)
    except Exception as exc:  # noqa: BLE001 - any failure is recorded and retried, never lost
        error = exc
    _record_attempt(message_id, drafted, provider_id, error, now, result)


def _record_attempt(
    message_id: str, drafted: Draft | None, provider_id, error, now, result: Delivery
) -> None:
    """The attempt's outcome in one short write transaction, with the text when it was drafted now
    (so a retry sends the same words and the sent text can be shown)."""
    begin_write()
    message = db.session.get(OutboundMessage, message_id, populate_existing=True)
    if drafted is not None:
        message.recipient = drafted.recipient
        message.subject = drafted.subject
        message.body = drafted.body
    if error is None:
        message.status = "sent"
        message.sent_at = dates.now()
        message.provider_id = provider_id
        message.last_error = None
        message.next_attempt_at = None
        result.sent += 1
    else:
        _failed(message, error, now, result)
    db.session.commit()


def _failed(message: OutboundMessage, exc: Exception, now: datetime, result: Delivery) -> None:
    permanent, description = describe_error(exc)
    message.last_error = description
    if permanent or message.attempts >= MAX_ATTEMPTS:
        message.status = "undeliverable"
        message.next_attempt_at = None
        result.undeliverable += 1
    else:
        message.status = "failed"
        message.next_attempt_at = now + backoff(message.attempts)
        result.failed += 1
    known = isinstance(exc, (OSError, Undeliverable, TwilioRestException, TwilioServiceException))
    current_app.logger.log(
        logging.WARNING if known else logging.ERROR,
        "%s message %s (%s) not delivered, attempt %d: %s → %s",
        message.kind,
        message.id,
        message.template,
        message.attempts,
        description,
        message.status,
    )


def backoff(attempts: int) -> timedelta:
    """The wait after the n-th failed attempt: 1, 2, 4 … minutes, at most four hours."""
    return min(timedelta(minutes=2 ** (attempts - 1)), _MAX_BACKOFF)


def describe_error(exc: Exception) -> tuple[bool, str]:
    """(permanent?, what to store and log). Built from the type and codes, never the message text,
    which for Twilio and SMTP names the recipient."""
    name = type(exc).__name__
    if isinstance(exc, Undeliverable):
        return True, name
    if isinstance(exc, (TwilioRestException, TwilioServiceException)):
        # 4xx such as 21211 (not a valid number) and 21610 (the resident replied STOP) will never
        # succeed; 5xx, 429 and credentials being fixed may.
        permanent = 400 <= exc.status < 500 and exc.status not in _TRANSIENT_HTTP
        return permanent, f"{name} {exc.status}/{exc.code}"
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        codes = sorted({code for code, _ in exc.recipients.values()})
        return bool(codes) and codes[0] >= 500, f"{name} {'/'.join(map(str, codes))}"
    if isinstance(exc, smtplib.SMTPResponseException):
        return False, f"{name} {exc.smtp_code}"
    errno = getattr(exc, "errno", None)
    return False, f"{name} errno {errno}" if errno else name


# ---- for staff: what did not go out -------------------------------------------------------------
def undelivered(limit: int = 100) -> list[OutboundMessage]:
    """Messages that failed (and wait for a retry) or were given up, newest first."""
    return list(
        db.session.scalars(
            select(OutboundMessage)
            .where(OutboundMessage.status.in_(UNDELIVERED))
            .order_by(OutboundMessage.created_at.desc(), OutboundMessage.id)
            .limit(limit)
        )
    )


def retry_now(message_id: str) -> OutboundMessage | None:
    """Put a failed or undeliverable message back in the queue for the next delivery run.

    Attempts are kept: a message past MAX_ATTEMPTS gets one more try and is given up again if that
    fails. Other statuses are left as they are (a second click changes nothing). The caller commits."""
    message = db.session.get(OutboundMessage, message_id)
    if message is not None and message.status in UNDELIVERED:
        message.status = "pending"
        message.next_attempt_at = None
        db.session.flush()
    return message


def status_counts() -> dict[str, int]:
    """How many messages are in each status (for the delivery command's report)."""
    return dict(
        db.session.execute(
            select(OutboundMessage.status, func.count()).group_by(OutboundMessage.status)
        ).all()
    )
