"""Calls to the call center (R4.2, R4.3): what the telephony webhooks record, which operator takes
a call, the call log (category, note, linked booking) and the supervisors' statistics.

Webhook handlers are idempotent on Twilio's CallSid and RecordingSid: Twilio retries, and a signed
request can be replayed (PITFALLS: signatures carry no timestamp), so a second delivery changes
nothing it should not.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

from flask import current_app
from sqlalchemy import bindparam, func, select, update
from sqlalchemy.exc import IntegrityError

from . import cache, dates, normalize, recordings, search
from .crypto import new_row_id
from .extensions import db
from .models import Applicant, Booking, Call, CallCategory, CallRecording

# Twilio's CallStatus values that mean the call is over.
FINISHED = frozenset({"completed", "busy", "no-answer", "failed", "canceled"})
KNOWN_STATUSES = FINISHED | {"queued", "ringing", "in-progress"}
# A call nobody took within this time no longer pops up.
POP_WINDOW = timedelta(minutes=30)
NOTE_MAX_LENGTH = 2000


class CallLogRejected(ValueError):
    """The call log entry cannot be saved; ``reason`` names the field for the message."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


def _caller_number(caller: str | None) -> str | None:
    """A usable caller number, or None for withheld/anonymous callers (Twilio sends words or
    non-dialable placeholders for those)."""
    phone = normalize.phone(caller or "")
    return phone if phone.startswith("0") and 10 <= len(phone) <= 11 else None


def incoming(call_sid: str, caller: str | None, *, now: datetime | None = None) -> Call:
    """Record an incoming call once; a repeated webhook returns the call already stored."""
    now = now or dates.now()
    existing = by_sid(call_sid)
    if existing is not None:
        return existing
    call = Call(id=new_row_id(), call_sid=call_sid, direction="inbound", status="ringing", started_at=now)
    number = _caller_number(caller)
    if number is not None:
        call.caller = number
        call.caller_bidx = Applicant.phone_key(number)
    try:
        with db.session.begin_nested():
            db.session.add(call)
            db.session.flush()
    except IntegrityError:  # the same webhook, delivered twice at once
        return by_sid(call_sid)
    return call


def by_sid(call_sid: str) -> Call | None:
    return db.session.scalars(select(Call).where(Call.call_sid == call_sid)).one_or_none()


def status_changed(
    call_sid: str, status: str, *, duration: int | None = None, now: datetime | None = None
) -> Call | None:
    """Apply Twilio's status callback. Unknown calls and statuses are ignored (returns None)."""
    call = by_sid(call_sid)
    if call is None or status not in KNOWN_STATUSES:
        return None
    if call.status in FINISHED:
        return call  # a late or repeated callback never reopens a finished call
    call.status = status
    if status in FINISHED:
        call.ended_at = now or dates.now()
        call.duration_seconds = duration
    db.session.flush()
    return call


def take(call_id: str, staff_id: int, *, now: datetime | None = None) -> bool:
    """The operator takes the call (the pop-up's 応答). Only one operator can: a conditional update."""
    taken = db.session.execute(
        update(Call)
        .where(Call.id == call_id, Call.operator_id.is_(None))
        .values(operator_id=staff_id, answered_at=now or dates.now())
    ).rowcount
    _count_changed(staff_id)
    return taken == 1


def waiting(now: datetime | None = None) -> list[Call]:
    """Calls that are ringing or connected, recent, and not taken by any operator: the pop-up feed."""
    now = now or dates.now()
    return list(
        db.session.scalars(
            select(Call)
            .where(
                Call.operator_id.is_(None),
                Call.status.notin_(FINISHED),
                Call.started_at >= now - POP_WINDOW,
            )
            .order_by(Call.started_at)
        )
    )


def caller_matches(call: Call) -> int:
    """How many applicants the caller's number belongs to (polled every second per console)."""
    return search.count_by_phone_key(call.caller_bidx)


def callers_hits(call: Call) -> list[search.Hit]:
    """The caller's applicants and their live bookings, by the encrypted number's blind index."""
    return search.by_phone_key(call.caller_bidx)


def recent(operator_id: int | None = None, limit: int = 50) -> list[Call]:
    query = select(Call).order_by(Call.started_at.desc()).limit(limit)
    if operator_id is not None:
        query = query.where(Call.operator_id == operator_id)
    return list(db.session.scalars(query))


def log(
    call: Call,
    *,
    category: str,
    note: str,
    staff_id: int,
    applicant_id: str | None = None,
    booking_id: str | None = None,
    now: datetime | None = None,
) -> Call:
    """Write the call log entry (R4.3): category, note, and the applicant/booking it was about."""
    if category not in {c.value for c in CallCategory}:
        raise CallLogRejected("category")
    note = (note or "").strip()
    if len(note) > NOTE_MAX_LENGTH:
        raise CallLogRejected("note")
    if applicant_id is not None and db.session.get(Applicant, applicant_id) is None:
        raise CallLogRejected("applicant")
    if booking_id is not None:
        booking = db.session.get(Booking, booking_id)
        if booking is None or (applicant_id is not None and booking.applicant_id != applicant_id):
            raise CallLogRejected("booking")
        applicant_id = booking.applicant_id
    call.category = category
    call.note = note or None
    call.applicant_id = applicant_id
    call.booking_id = booking_id
    call.logged_at = now or dates.now()
    call.logged_by = staff_id
    if call.operator_id is None:
        call.operator_id = staff_id
        call.answered_at = call.answered_at or call.logged_at
    db.session.flush()
    _count_changed(call.operator_id, staff_id)
    return call


def start_manual(staff_id: int, *, now: datetime | None = None) -> Call:
    """A call the PBX took without Twilio (or an outbound call): logged the same way."""
    now = now or dates.now()
    call = Call(
        id=new_row_id(),
        call_sid=None,
        direction="inbound",
        status="in-progress",
        started_at=now,
        operator_id=staff_id,
        answered_at=now,
    )
    db.session.add(call)
    db.session.flush()
    _count_changed(staff_id)
    return call


# ---- statistics (R4.3) ---------------------------------------------------------------------------
@dataclass
class DayCounts:
    day: date
    by_category: Counter = field(default_factory=Counter)
    unlogged: int = 0

    @property
    def total(self) -> int:
        return sum(self.by_category.values()) + self.unlogged


def statistics(first: date, last: date) -> list[DayCounts]:
    """Calls per Tokyo day and category, first..last inclusive, every day listed (zeros too)."""
    start, _ = dates.day_bounds(first)
    _, end = dates.day_bounds(last)
    days = {
        first + timedelta(days=i): DayCounts(first + timedelta(days=i))
        for i in range((last - first).days + 1)
    }
    rows = db.session.execute(
        select(Call.started_at, Call.category).where(Call.started_at >= start, Call.started_at < end)
    ).all()
    for started_at, category in rows:
        counts = days.get(dates.tokyo(started_at).date())
        if counts is None:
            continue
        if category:
            counts.by_category[category] += 1
        else:
            counts.unlogged += 1
    return list(days.values())


def count_unlogged(operator_id: int) -> int:
    """The operator's calls without a log entry: the console's reminder, shown on every search, so
    kept per worker for UNLOGGED_CALLS_SECONDS (a count by staff id, nothing personal). Taking or
    logging a call drops the operator's count in this worker (``_count_changed``)."""
    return _unlogged_counts().get(
        operator_id,
        current_app.config["UNLOGGED_CALLS_SECONDS"],
        lambda: db.session.scalar(_COUNT_UNLOGGED, {"operator_id": operator_id}),
    )


_COUNT_UNLOGGED = (
    select(func.count())
    .select_from(Call)
    .where(Call.operator_id == bindparam("operator_id"), Call.category.is_(None))
)


def _unlogged_counts() -> cache.TimedCache:
    return cache.of_app("unlogged_calls", max_entries=1000)


def _count_changed(*operator_ids: int | None) -> None:
    counts = _unlogged_counts()
    for operator_id in operator_ids:
        if operator_id is not None:
            counts.forget(operator_id)


# ---- recordings (R4.4: metadata; retention is the recordings issue) ------------------------------
def recording_status(
    recording_sid: str,
    *,
    call_sid: str | None,
    status: str,
    started_at: datetime | None = None,
    duration: int | None = None,
    channels: int | None = None,
    now: datetime | None = None,
) -> CallRecording:
    """Store or update a recording's metadata from the recording-status callback (idempotent)."""
    now = now or dates.now()
    recording = db.session.scalars(
        select(CallRecording).where(CallRecording.recording_sid == recording_sid)
    ).one_or_none()
    if recording is None:
        call = by_sid(call_sid) if call_sid else None
        recording = CallRecording(
            id=new_row_id(),
            recording_sid=recording_sid,
            call=call,
            created_at=now,
        )
        db.session.add(recording)
    recording.status = status
    recording.started_at = started_at or recording.started_at
    recording.duration_seconds = duration if duration is not None else recording.duration_seconds
    recording.channels = channels if channels is not None else recording.channels
    recording.updated_at = now
    recordings.ensure_retention(recording)
    db.session.flush()
    return recording
