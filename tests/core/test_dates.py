"""Birth dates as residents write them (西暦 and 和暦), 和暦 display, and the injectable clock."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from madoguchi import dates
from madoguchi.dates import Clock, FrozenClock, InvalidDate, parse_birth_date, wareki

TODAY = date(2026, 1, 15)


def parse(text: str) -> date:
    return parse_birth_date(text, today=TODAY)


def reason(text: str, today: date = TODAY) -> str:
    with pytest.raises(InvalidDate) as info:
        parse_birth_date(text, today=today)
    return info.value.reason


@pytest.mark.parametrize(
    "text",
    [
        "1980-04-01",
        "1980-4-1",
        "1980/4/1",
        "1980/04/01",
        "1980.4.1",
        "1980年4月1日",
        "1980年04月01日",
        "19800401",
        "１９８０年４月１日",
        "１９８０－０４－０１",
        " 1980 年 4 月 1 日 ",
    ],
)
def test_western_forms(text):
    assert parse(text) == date(1980, 4, 1)


@pytest.mark.parametrize(
    "text, expected",
    [
        ("令和元年5月1日", date(2019, 5, 1)),
        ("令和1年5月1日", date(2019, 5, 1)),
        ("令和7年4月1日", date(2025, 4, 1)),
        ("R1.5.1", date(2019, 5, 1)),
        ("r7.4.1", date(2025, 4, 1)),
        ("平成31年4月30日", date(2019, 4, 30)),
        ("平成元年1月8日", date(1989, 1, 8)),
        ("H1.1.8", date(1989, 1, 8)),
        ("H元.1.8", date(1989, 1, 8)),
        ("平2年3月4日", date(1990, 3, 4)),
        ("昭和64年1月7日", date(1989, 1, 7)),
        ("昭和55年4月1日", date(1980, 4, 1)),
        ("S55.4.1", date(1980, 4, 1)),
        ("S55/4/1", date(1980, 4, 1)),
        ("s55-04-01", date(1980, 4, 1)),
        ("昭和元年12月25日", date(1926, 12, 25)),
        ("大正15年12月24日", date(1926, 12, 24)),
        ("大正元年7月30日", date(1912, 7, 30)),
        ("T15.12.24", date(1926, 12, 24)),
        ("昭和５５年４月１日", date(1980, 4, 1)),
        ("Ｓ５５．４．１", date(1980, 4, 1)),
        ("ｓ５５．４．１", date(1980, 4, 1)),
        ("平成　元年　1月　8日", date(1989, 1, 8)),
    ],
)
def test_wareki_forms(text, expected):
    assert parse(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "平成31年5月1日",  # 令和元年
        "昭和64年1月8日",  # 平成元年
        "令和1年4月30日",  # 平成31年
        "令和元年4月30日",
        "平成元年1月7日",  # 昭和64年
        "昭和元年12月24日",  # 大正15年
        "大正15年12月25日",  # 昭和元年
        "大正元年7月29日",  # 明治45年
        "H31.5.1",
        "S64.1.8",
        "平成32年1月1日",
        "昭和65年1月1日",
        "令和0年5月1日",
    ],
)
def test_dates_outside_their_era_are_rejected(text):
    assert reason(text) == "era"


@pytest.mark.parametrize(
    "text",
    [
        "1980年2月30日",
        "2021-02-29",
        "1980/4/31",
        "1980-13-01",
        "1980-00-10",
        "令和5年2月30日",
        "平成3年2月29日",
        "S55.4.31",
    ],
)
def test_nonexistent_dates_are_rejected(text):
    assert reason(text) == "nonexistent"


def test_leap_days_exist_only_in_leap_years():
    assert parse("2020-02-29") == date(2020, 2, 29)
    assert parse("平成12年2月29日") == date(2000, 2, 29)
    assert reason("1900-02-29") == "nonexistent"


def test_future_dates_are_rejected():
    assert parse_birth_date("2026-01-15", today=TODAY) == TODAY
    with pytest.raises(InvalidDate):
        parse_birth_date("2026-01-16", today=TODAY)
    with pytest.raises(InvalidDate):
        parse_birth_date("令和8年1月16日", today=TODAY)
    with pytest.raises(InvalidDate):
        parse_birth_date("2099-12-31", today=TODAY)


def test_future_date_uses_the_real_today_by_default():
    tomorrow = date.today() + timedelta(days=1)
    with pytest.raises(InvalidDate):
        parse_birth_date(tomorrow.isoformat())
    assert parse_birth_date(date.today().isoformat()) == date.today()


@pytest.mark.parametrize(
    "text",
    [
        "",
        "   ",
        "昭和",
        "1980",
        "1980年4月",
        "abc",
        "明治45年7月29日",
        "M45.7.29",
        "1980-04-01-02",
        "80/4/1",
        "令和元年五月一日",
    ],
)
def test_unreadable_text_is_rejected_as_format(text):
    assert reason(text) == "format"


@pytest.mark.parametrize(
    "text", ["1980-12", "198012", "1980112", "1980-41", "S55.12", "S551", "H3112", "1980-04"]
)
def test_incomplete_or_ambiguous_dates_are_not_guessed(text):
    """A year and month only, or digits that split more than one way, must be refused, not completed
    into some other birth date (identification compares it with the stored one, R3.5)."""
    assert reason(text) == "format"


@pytest.mark.parametrize(
    "value, expected",
    [
        (date(2025, 4, 1), "令和7年4月1日"),
        (date(2019, 5, 1), "令和元年5月1日"),
        (date(2019, 4, 30), "平成31年4月30日"),
        (date(1989, 1, 8), "平成元年1月8日"),
        (date(1989, 1, 7), "昭和64年1月7日"),
        (date(1980, 4, 1), "昭和55年4月1日"),
        (date(1926, 12, 25), "昭和元年12月25日"),
        (date(1926, 12, 24), "大正15年12月24日"),
        (date(1912, 7, 30), "大正元年7月30日"),
        (date(1912, 7, 29), "1912年7月29日"),
    ],
)
def test_wareki_format(value, expected):
    assert wareki(value) == expected


def test_wareki_output_parses_back_for_every_day():
    """Every day from 1912-07-30 to today: what we print in 和暦 reads back as the same date."""
    day = date(1912, 7, 30)
    while day <= TODAY:
        assert parse(wareki(day)) == day, day
        day += timedelta(days=1)


def test_clock_is_utc_and_honours_its_offset():
    clock = Clock()
    before = datetime.now(UTC)
    now = clock.now()
    assert now.tzinfo is not None and now.utcoffset() == timedelta(0)
    assert before <= now <= datetime.now(UTC)

    clock.offset = timedelta(days=3, minutes=31)
    moved = clock.now()
    assert timedelta(days=3, minutes=30) < moved - datetime.now(UTC) <= timedelta(days=3, minutes=31)


def test_today_tokyo_crosses_midnight_nine_hours_early():
    assert FrozenClock(at=datetime(2026, 1, 1, 14, 59, tzinfo=UTC)).today_tokyo() == date(2026, 1, 1)
    assert FrozenClock(at=datetime(2026, 1, 1, 15, 0, tzinfo=UTC)).today_tokyo() == date(2026, 1, 2)
    assert FrozenClock(at=datetime(2025, 12, 31, 15, 30, tzinfo=UTC)).today_tokyo() == date(2026, 1, 1)


def test_frozen_clock_stands_still():
    at = datetime(2026, 3, 4, 5, 6, tzinfo=UTC)
    clock = FrozenClock(at=at)
    assert clock.now() == at
    assert clock.now() == at
    assert FrozenClock().now() == datetime(2026, 1, 1, tzinfo=UTC)


def test_app_clock_is_injected(app):
    at = datetime(2026, 11, 23, 0, 30, tzinfo=UTC)
    app.extensions["madoguchi.clock"] = FrozenClock(at=at)
    with app.app_context():
        assert dates.now() == at


def test_utc_and_tokyo_conversions():
    naive = datetime(2026, 1, 1, 15, 0)
    assert dates.utc(naive) == datetime(2026, 1, 1, 15, 0, tzinfo=UTC)
    local = dates.tokyo(naive)
    assert (local.year, local.month, local.day, local.hour) == (2026, 1, 2, 0)
    assert local.utcoffset() == timedelta(hours=9)
    aware = datetime(2026, 1, 1, 15, 0, tzinfo=UTC)
    assert dates.utc(aware) is aware
