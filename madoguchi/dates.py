"""Dates as residents write them: 西暦 and 和暦 (令和/平成/昭和/大正), and the clock.

Time is explicit: the database holds UTC; calendars are computed in Asia/Tokyo. ``Clock`` is injected
(``app.extensions['madoguchi.clock']``) so tests can travel in time.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from . import normalize

TOKYO = ZoneInfo("Asia/Tokyo")

# (name, abbreviations, first day of the era)
ERAS = (
    ("令和", ("令和", "令", "R"), date(2019, 5, 1)),
    ("平成", ("平成", "平", "H"), date(1989, 1, 8)),
    ("昭和", ("昭和", "昭", "S"), date(1926, 12, 25)),
    ("大正", ("大正", "大", "T"), date(1912, 7, 30)),
)
_ERA_BY_ABBR = {abbr: (name, start) for name, abbrs, start in ERAS for abbr in abbrs}
# Separators are required between year, month and day: without them "198012" could be read
# several ways, and a date must never be guessed. Compact forms are accepted at fixed widths only.
_YS = r"(?:年|[/.\-])"
_MS = r"(?:月|[/.\-])"
_WESTERN = re.compile(rf"^(\d{{4}}){_YS}(\d{{1,2}}){_MS}(\d{{1,2}})日?$")
_WESTERN_COMPACT = re.compile(r"^(\d{4})(\d{2})(\d{2})$")
_ERA = r"(令和|平成|昭和|大正|令|平|昭|大|R|H|S|T)"
_WAREKI = re.compile(rf"^{_ERA}(元|\d{{1,2}}){_YS}(\d{{1,2}}){_MS}(\d{{1,2}})日?$")
_WAREKI_COMPACT = re.compile(rf"^{_ERA}(\d{{2}})(\d{{2}})(\d{{2}})$")


class InvalidDate(ValueError):
    """``reason``: 'format' (not a date we can read), 'nonexistent' (e.g. 2月30日), 'era' (年 outside the era)."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


def parse_birth_date(text: str, *, today: date | None = None) -> date:
    value = normalize.strip_spaces(normalize.nfkc(text)).upper()
    if not value:
        raise InvalidDate("format")
    m = _WAREKI.match(value) or _WAREKI_COMPACT.match(value)
    if m:
        era_name, era_start = _ERA_BY_ABBR[m.group(1)]
        era_year = 1 if m.group(2) == "元" else int(m.group(2))
        if era_year < 1:
            raise InvalidDate("era")
        year = era_start.year + era_year - 1
        result = _make(year, int(m.group(3)), int(m.group(4)))
        era_end = _era_end(era_name)
        if result < era_start or (era_end and result >= era_end):
            raise InvalidDate("era")
    else:
        m = _WESTERN.match(value) or _WESTERN_COMPACT.match(value)
        if not m:
            raise InvalidDate("format")
        result = _make(int(m.group(1)), int(m.group(2)), int(m.group(3)))
    today = today or date.today()
    if result > today or result.year < 1900:
        raise InvalidDate("nonexistent")
    return result


def _era_end(era_name: str) -> date | None:
    names = [name for name, _, _ in ERAS]
    index = names.index(era_name)
    return None if index == 0 else ERAS[index - 1][2]


def _make(year: int, month: int, day: int) -> date:
    try:
        return date(year, month, day)
    except ValueError:
        raise InvalidDate("nonexistent") from None


def wareki(value: date) -> str:
    """令和7年4月1日 style, for residents who think in the Japanese calendar."""
    for name, _, start in ERAS:
        if value >= start:
            year = value.year - start.year + 1
            return f"{name}{'元' if year == 1 else year}年{value.month}月{value.day}日"
    return f"{value.year}年{value.month}月{value.day}日"


@dataclass
class Clock:
    """Wall clock in UTC. Tests replace ``offset`` or use FrozenClock."""

    offset: timedelta = timedelta(0)

    def now(self) -> datetime:
        return datetime.now(UTC) + self.offset

    def today_tokyo(self) -> date:
        return self.now().astimezone(TOKYO).date()


@dataclass
class FrozenClock(Clock):
    at: datetime = datetime(2026, 1, 1, tzinfo=UTC)

    def now(self) -> datetime:
        return self.at


def utc(value: datetime) -> datetime:
    """Naive datetimes read back from SQLite are UTC; make them aware."""
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def tokyo(value: datetime) -> datetime:
    return utc(value).astimezone(TOKYO)


def now() -> datetime:
    """The application's clock (injected; see Clock)."""
    from flask import current_app

    return current_app.extensions["madoguchi.clock"].now()


def today() -> date:
    """Today in Tokyo by the application's clock."""
    return now().astimezone(TOKYO).date()


def day_bounds(day: date) -> tuple[datetime, datetime]:
    """A Tokyo day as [start, end) instants."""
    start = datetime.combine(day, datetime.min.time(), tzinfo=TOKYO)
    return start, start + timedelta(days=1)
