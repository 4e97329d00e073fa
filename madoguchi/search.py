"""Staff search for an applicant (R4.1): by 予約管理番号, phone, name in kana, or kana with birth
date — always through the blind indexes, never by decrypting the table (R2.3).

One search box serves the console: ``interpret`` decides what the operator typed, so the operator
never chooses a mode. A birth date alone is not searchable (it has too few values to index safely);
it narrows a kana search instead.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import date

from sqlalchemy import func, select

from . import normalize, numbers
from .extensions import db
from .models import LIVE, Applicant, Booking

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
class Hit:
    applicant: Applicant
    booking: Booking | None  # the live booking, if any


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


def _key_condition(query: Query):
    if query.kind is SearchKind.NUMBER:
        return Applicant.reservation_number_bidx == Applicant.number_key(query.text)
    if query.kind is SearchKind.PHONE:
        return Applicant.phone_bidx == Applicant.phone_key(query.text)
    if query.kind is SearchKind.KANA_BIRTH:
        return Applicant.kana_birth_bidx == Applicant.kana_birth_key(query.text, query.birth_date)
    return Applicant.name_kana_bidx == Applicant.kana_key(query.text)


def find(query: Query, limit: int = MAX_RESULTS) -> list[Hit]:
    """Applicants matching the query with their live booking, at most ``limit``."""
    return applicants_matching(_key_condition(query), limit)


def by_phone_key(phone_key: str | None, limit: int = MAX_RESULTS) -> list[Hit]:
    """Applicants whose phone has this blind index (a caller's number, already indexed)."""
    if not phone_key:
        return []
    return applicants_matching(Applicant.phone_bidx == phone_key, limit)


def count_by_phone_key(phone_key: str | None) -> int:
    """How many applicants have this phone: the incoming-call feed needs the number, not the rows."""
    if not phone_key:
        return 0
    return db.session.scalar(
        select(func.count()).select_from(Applicant).where(Applicant.phone_bidx == phone_key)
    )


def applicants_matching(condition, limit: int) -> list[Hit]:
    live = Booking.status.in_([s.value for s in LIVE])
    rows = db.session.execute(
        select(Applicant, Booking)
        .outerjoin(Booking, (Booking.applicant_id == Applicant.id) & live)
        .where(condition)
        .order_by(Applicant.created_at)
        .limit(limit)
    ).all()
    return [Hit(applicant, found) for applicant, found in rows]
