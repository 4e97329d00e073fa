"""Finding and registering applicants (R3.1, R3.5). Identification never decrypts the table:
the 予約管理番号's blind index finds the row, then its own birth date is compared."""

from __future__ import annotations

import hmac
from datetime import date, datetime, timedelta

from flask import current_app
from sqlalchemy import delete, select

from . import dates, numbers, venues
from .crypto import new_row_id
from .errors import IdentityMismatch, LookupLocked
from .extensions import begin_write_now, db
from .models import Applicant, LookupFailure


def find_by_number(number: str) -> Applicant | None:
    """``number`` must already be parsed (check digit verified) by ``numbers.parse``."""
    return db.session.scalars(
        select(Applicant).where(Applicant.reservation_number_bidx == Applicant.number_key(number))
    ).one_or_none()


def _failure_row(number: str) -> LookupFailure | None:
    return db.session.scalars(
        select(LookupFailure).where(LookupFailure.number_bidx == Applicant.number_key(number))
    ).one_or_none()


def ensure_not_locked(number: str, now: datetime | None = None) -> None:
    now = now or dates.now()
    row = _failure_row(number)
    if row is not None and row.locked_until is not None and row.locked_until > now:
        raise LookupLocked("too many failed look-ups for this number")


def identify(number: str, birth_date: date, now: datetime | None = None) -> Applicant:
    """The applicant whose number and birth date these are, or IdentityMismatch (read-only).

    An unknown number and a wrong birth date give the same error, so the form does not tell a
    guesser which numbers exist.
    """
    ensure_not_locked(number, now)
    applicant = find_by_number(number)
    stored = applicant.birth_date if applicant is not None else None
    if stored is None or not hmac.compare_digest(stored.isoformat(), birth_date.isoformat()):
        raise IdentityMismatch("number and birth date do not match")
    return applicant


def record_failed_lookup(number: str, now: datetime | None = None) -> bool:
    """Count a failure; lock the number after LOOKUP_MAX_FAILURES in the window. Returns locked?"""
    begin_write_now()  # the count is read and changed under the write lock
    now = now or dates.now()
    config = current_app.config
    window = timedelta(minutes=config["LOOKUP_LOCK_MINUTES"])
    row = _failure_row(number)
    if row is None:
        row = LookupFailure(number_bidx=Applicant.number_key(number), failures=0, window_started_at=now)
        db.session.add(row)
    elif row.window_started_at + window <= now:
        row.failures = 0
        row.window_started_at = now
        row.locked_until = None
    row.failures += 1
    if row.failures >= config["LOOKUP_MAX_FAILURES"]:
        row.locked_until = now + window
    db.session.flush()
    return row.locked_until is not None


def clear_failed_lookups(number: str) -> None:
    """A successful look-up forgets the number's failures (a write only when there were any)."""
    if _failure_row(number) is None:
        return
    begin_write_now()
    db.session.execute(
        delete(LookupFailure)
        .where(LookupFailure.number_bidx == Applicant.number_key(number))
        .execution_options(synchronize_session="fetch")
    )


def register(
    *,
    number: str,
    name: str,
    name_kana: str,
    birth_date: date,
    sex: str,
    postal_code: str | None,
    address: str,
    email: str | None,
    phone: str | None,
    source: str,
    venue_code: str | None = None,
    now: datetime | None = None,
) -> Applicant:
    """Create an applicant from the minimal fields (R2.1) — nothing else is accepted."""
    now = now or dates.now()
    applicant = Applicant(id=new_row_id(), source=source, created_at=now, updated_at=now)
    applicant.reservation_number = numbers.parse(number)
    applicant.name = name
    applicant.name_kana = name_kana
    applicant.birth_date = birth_date
    applicant.sex = sex
    applicant.postal_code = postal_code
    applicant.address = address
    applicant.email = email
    applicant.phone = phone
    assign_venue(applicant, venue_code)
    db.session.add(applicant)
    db.session.flush()
    return applicant


def assign_venue(applicant: Applicant, chosen_code: str | None = None) -> venues.Route:
    """Set the venue from the address; a chosen venue is accepted only where the table allows a choice."""
    route = venues.route_address(applicant.address or "")
    code = route.venue_code
    if code is None and chosen_code:
        allowed = route.candidates or tuple(v.code for v in venues.all_venues())
        if chosen_code in allowed:
            code = chosen_code
    venue = venues.by_code(code) if code else None
    applicant.venue_id = venue.id if venue else None
    return route


def update_contact(applicant: Applicant, *, email: str | None, phone: str | None, now=None) -> None:
    begin_write_now()  # a residents' request that has only read takes the write lock from here
    applicant.email = email
    applicant.phone = phone
    applicant.updated_at = now or dates.now()
    db.session.flush()
