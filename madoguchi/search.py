"""Staff search for an applicant (R4.1): by 予約管理番号, phone, name in kana, or kana with birth
date — always through the blind indexes, never by decrypting the table (R2.3).

One search box serves the console: ``interpret`` decides what the operator typed, so the operator
never chooses a mode. A birth date alone is not searchable (it has too few values to index safely);
it narrows a kana search instead.
"""

from __future__ import annotations

import enum
import functools
from dataclasses import dataclass
from datetime import date, datetime

from sqlalchemy import bindparam, func, or_, select

from . import normalize, numbers
from .extensions import db
from .models import LIVE, Applicant, Booking, Slot, Venue

MAX_RESULTS = 50


class SearchKind(enum.StrEnum):
    NUMBER = "number"
    PHONE = "phone"
    KANA = "kana"
    KANA_BIRTH = "kana_birth"


class UnclearQuery(ValueError):
    """What was typed is none of the searchable things; ``reason`` says which message to show."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class Query:
    kind: SearchKind
    text: str  # normalised value (never logged)
    birth_date: date | None = None


@dataclass(frozen=True)
class LiveBooking:
    id: str
    status: str
    starts_at: datetime
    venue_name: str


@dataclass(frozen=True)
class Hit:
    """What a list of search results shows (the minimal fields, R2.1), as plain values: read with
    one Core statement, not as ORM rows (R9.2, profiled). Open the applicant's card for the rest."""

    applicant_id: str
    reservation_number: str
    name: str | None
    name_kana: str | None
    birth_date: date | None
    booking: LiveBooking | None  # the live booking, if any


def interpret(text: str, birth_date: date | None = None) -> Query:
    """12 digits → 予約管理番号 (check digit verified); 10–11 digits from 0 → phone; kana → name."""
    digits = normalize.digits(text or "")
    if digits.isascii() and digits.isdigit():
        if len(digits) == numbers.LENGTH:
            try:
                return Query(SearchKind.NUMBER, numbers.parse(digits))
            except numbers.InvalidReservationNumber:
                raise UnclearQuery("check_digit") from None
        phone = normalize.phone(text)
        if phone.startswith("0") and len(phone) in (10, 11):
            return Query(SearchKind.PHONE, phone)
        raise UnclearQuery("digits")
    if (text or "").strip().startswith("+"):
        phone = normalize.phone(text)
        if len(phone) in (10, 11):
            return Query(SearchKind.PHONE, phone)
    if normalize.is_kana(text or ""):
        kana = normalize.kana(text)
        if birth_date is not None:
            return Query(SearchKind.KANA_BIRTH, kana, birth_date)
        return Query(SearchKind.KANA, kana)
    raise UnclearQuery("not_kana" if text and text.strip() else "empty")


def _key(query: Query) -> tuple[str, str | None]:
    """The blind index to look in and the query's value in it."""
    if query.kind is SearchKind.NUMBER:
        return "reservation_number_bidx", Applicant.number_key(query.text)
    if query.kind is SearchKind.PHONE:
        return "phone_bidx", Applicant.phone_key(query.text)
    if query.kind is SearchKind.KANA_BIRTH:
        return "kana_birth_bidx", Applicant.kana_birth_key(query.text, query.birth_date)
    return "name_kana_bidx", Applicant.kana_key(query.text)


def find(query: Query, limit: int = MAX_RESULTS) -> list[Hit]:
    """Applicants matching the query with their live booking, at most ``limit``."""
    return applicants_matching(*_key(query), limit)


def by_phone_key(phone_key: str | None, limit: int = MAX_RESULTS) -> list[Hit]:
    """Applicants whose phone has this blind index (a caller's number, already indexed)."""
    if not phone_key:
        return []
    return applicants_matching("phone_bidx", phone_key, limit)


def count_by_phone_key(phone_key: str | None) -> int:
    """How many applicants have this phone: the incoming-call feed needs the number, not the rows."""
    if not phone_key:
        return 0
    return db.session.scalar(
        select(func.count()).select_from(Applicant).where(Applicant.phone_bidx == phone_key)
    )


def applicants_matching(index: str, key: str | None, limit: int) -> list[Hit]:
    """Applicants whose blind index ``index`` holds ``key``, with their live booking."""
    rows = db.session.execute(_matching(index, limit), {"key": key}).all()
    return [_hit(row) for row in rows]


@functools.cache
def _matching(index: str, limit: int):
    """One statement per index, built once (building it cost as much as running it, R9.2). The
    live statuses are equalities rather than IN: an IN list is expanded again at every execution."""
    live = or_(*(Booking.status == status.value for status in LIVE))
    return (
        select(
            Applicant.id,
            Applicant.reservation_number_ct,
            Applicant.name_ct,
            Applicant.name_kana_ct,
            Applicant.birth_date_ct,
            Booking.id.label("booking_id"),
            Booking.status,
            Slot.starts_at,
            Venue.name.label("venue_name"),
        )
        .outerjoin(Booking, (Booking.applicant_id == Applicant.id) & live)
        .outerjoin(Slot, Slot.id == Booking.slot_id)
        .outerjoin(Venue, Venue.id == Slot.venue_id)
        .where(getattr(Applicant, index) == bindparam("key"))
        .order_by(Applicant.created_at)
        .limit(limit)
    )


def _hit(row) -> Hit:
    def plain(field, stored):
        return field.plain(Applicant, stored, row.id)

    return Hit(
        applicant_id=row.id,
        reservation_number=plain(Applicant.reservation_number, row.reservation_number_ct),
        name=plain(Applicant.name, row.name_ct),
        name_kana=plain(Applicant.name_kana, row.name_kana_ct),
        birth_date=plain(Applicant.birth_date, row.birth_date_ct),
        booking=(
            LiveBooking(row.booking_id, row.status, row.starts_at, row.venue_name)
            if row.booking_id is not None
            else None
        ),
    )
