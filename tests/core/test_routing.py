"""Address → venue routing (R3.2), postal codes, opening days and slot generation (R3.3)."""

from __future__ import annotations

import csv
from datetime import date, time, timedelta

import pytest
from sqlalchemy import func, select

from madoguchi import venues
from madoguchi.dates import tokyo
from madoguchi.extensions import db
from madoguchi.models import Slot, SpecialOpening, Venue
from tests.factories import make_venue

KANJI = "〇一二三四五六七八九"
FULL = str.maketrans("0123456789-", "０１２３４５６７８９－")


def _tsv_rows() -> list[tuple[str, int, str]]:
    with venues.ROUTES_FILE.open(encoding="utf-8") as fh:
        reader = csv.DictReader((line for line in fh if not line.startswith("#")), delimiter="\t")
        return [(r["town"], int(r["chome"]), r["venue"]) for r in reader]


ROWS = _tsv_rows()


def _address_forms(town: str, chome: int) -> list[str]:
    k = KANJI[chome]
    return [
        f"東京都江東区{town}{chome}丁目11番28号",
        f"江東区{town}{chome}丁目11番28号",
        f"{town}{chome}丁目11番28号",
        f"東京都江東区{town}{k}丁目11番28号",
        f"東京都江東区{town}{k}丁目十一番二十八号",
        f"江東区{town}{chome}-11-28",
        f"{town}{chome}-11-28",
        f"東京都江東区{town}{chome}丁目11-28 コーポ江東101",
        f"東京都江東区{town}{chome}丁目".translate(FULL) + "１１番２８号",
        f"{town}{chome}-11-28".translate(FULL),
        f"東京都 江東区 {town} {chome}丁目 11番 28号",
        f"東京都\u3000江東区\u3000{town}\u3000{chome}丁目１１－２８",
        f"東京都江東区{town}{chome}‐11‐28",
        f"東京都江東区{town}{chome}番地",
    ]


def _row_param(town: str, chome: int, venue: str):
    return pytest.param(town, chome, venue, id=f"{town}{chome}-{venue}")


def test_table_covers_the_three_venues():
    """R3.2: the table loaded by the app is the TSV, rows for all three venues."""
    assert len(ROWS) == 153
    table = venues.route_table()
    assert sum(len(chomes) for chomes in table.values()) == 153
    assert {v for _, _, v in ROWS} == {"honchosha", "sogo", "toyosu"}
    for town, chome, venue in ROWS:
        assert table[town][chome] == frozenset({venue})


@pytest.mark.parametrize(("town", "chome", "venue"), [_row_param(*row) for row in ROWS])
def test_every_row_of_the_table_routes_to_its_venue(town, chome, venue):
    """R3.2: for every 町丁目 of the table, the address written any usual way routes to its venue."""
    for address in _address_forms(town, chome):
        route = venues.route_address(address)
        assert route == venues.Route(venue), address


def test_towns_whose_numerals_are_kanji_route():
    """R3.2: 三好 is a Koto town in the table; its address routes to 本庁舎."""
    # The only town of the table with a kanji numeral in its name; every other row routes (above).
    assert {town for town, _, _ in ROWS if any(ch in KANJI for ch in town)} == {"三好"}


def test_miyoshi_routes_to_honchosha():
    """R3.2: 江東区三好1丁目 (in the 004 table: 本庁舎) routes to honchosha."""
    assert venues.route_address("東京都江東区三好1丁目1番1号").venue_code == "honchosha"


def test_split_town_without_chome_is_ambiguous():
    """R3.2: 東砂 is split (1–5 総合区民センター, 6–8 本庁舎): without 丁目 the resident chooses."""
    for address in ("東京都江東区東砂", "江東区東砂", "東砂", "東京都江東区東砂9丁目1番"):
        route = venues.route_address(address)
        assert route.venue_code is None, address
        assert route.reason == "ambiguous"
        assert route.candidates == ("honchosha", "sogo")
    assert venues.route_address("江東区東砂5丁目").venue_code == "sogo"
    assert venues.route_address("江東区東砂6丁目").venue_code == "honchosha"


def test_town_served_by_one_venue_routes_without_chome():
    assert venues.route_address("東京都江東区豊洲").venue_code == "toyosu"
    assert venues.route_address("江東区亀戸").venue_code == "sogo"
    assert venues.route_address("江東区東陽").venue_code == "honchosha"


def test_longest_town_name_wins():
    """新木場 is not 木場; 南砂/新砂/東砂/北砂 are told apart."""
    assert venues.route_address("江東区新木場1丁目").venue_code == "honchosha"
    assert venues.route_address("江東区北砂1丁目").venue_code == "sogo"
    assert venues.route_address("江東区南砂1丁目").venue_code == "honchosha"


@pytest.mark.parametrize(
    "address",
    [
        "東京都中央区銀座1丁目1番1号",
        "中央区銀座1-1-1",
        "東京都江戸川区大島1丁目",
        "東京都墨田区錦糸4丁目",
        "千葉県浦安市舞浜1-1",
        "神奈川県横浜市中区1-1",
    ],
)
def test_address_in_another_city_is_outside(address):
    """R3.2: an address outside 江東区 is not routed; the resident is told, not sent to a venue."""
    route = venues.route_address(address)
    assert route == venues.Route(None, reason="outside_city")


def test_island_town_named_like_a_koto_town_is_outside():
    """R3.2: 東京都大島町 (伊豆大島) is another municipality, not 江東区大島."""
    assert venues.route_address("東京都大島町元町1丁目1番").reason == "outside_city"


@pytest.mark.parametrize(
    "address", ["東京都江東区高橋1番1号", "江東区どこか1丁目", "江東区", "ほげ1-2-3", ""]
)
def test_unknown_koto_town(address):
    """R3.2: a Koto address whose town is not in the table gets no venue (the resident chooses)."""
    route = venues.route_address(address)
    assert route.venue_code is None
    assert route.reason == "unknown_town"


@pytest.mark.parametrize("code", ["135-8383", "1358383", "〒135-8383", "１３５－８３８３", "135 8383"])
def test_postal_code_fills_the_address(code):
    """R3.2: the postal code fills the address from the offline Japan Post data."""
    address = venues.postal_address(code)
    assert address is not None
    assert "江東区" in address
    assert address.startswith("東京都江東区")


def test_postal_code_of_a_routed_town_leads_to_its_venue():
    assert venues.route_address(venues.postal_address("135-0061")).venue_code == "toyosu"  # 豊洲


@pytest.mark.parametrize("code", ["000-0000", "135-838", "1358383x", "12345678", "", "abcdefg", "999-9999"])
def test_invalid_postal_code_returns_none(code):
    assert venues.postal_address(code) is None


# ---- calendar (R3.3) ----------------------------------------------------------------------------
def _venue(**kw) -> Venue:
    values = dict(
        open_weekdays="0123456",
        open_time=time(9, 0),
        close_time=time(17, 0),
        slot_minutes=30,
        slot_capacity=5,
    )
    values.update(kw)
    return Venue(code="x", name="x", **values)


def test_public_holiday_is_closed():
    """R3.3: 2026-11-23 (勤労感謝の日, a Monday) is closed; the next day is open."""
    venue = _venue(open_weekdays="01234")
    assert venues.closed_reason(venue, date(2026, 11, 23)) == "holiday"
    assert venues.closed_reason(venue, date(2026, 11, 24)) is None


@pytest.mark.parametrize(
    "day, expected",
    [
        (date(2026, 12, 28), None),
        (date(2026, 12, 29), "year_end"),
        (date(2026, 12, 30), "year_end"),
        (date(2026, 12, 31), "year_end"),
        (date(2027, 1, 1), "holiday"),
        (date(2027, 1, 2), "year_end"),
        (date(2027, 1, 3), "year_end"),
        (date(2027, 1, 4), None),
    ],
)
def test_year_end_is_closed(day, expected):
    """R3.3: 年末年始 (12/29–1/3) is closed even at a venue open every day of the week."""
    assert venues.closed_reason(_venue(open_weekdays="0123456"), day) == expected


def test_weekday_not_in_open_weekdays_is_closed():
    """R3.3: a venue open Monday–Friday ("01234") is closed on Saturday and Sunday."""
    weekdays = _venue(open_weekdays="01234")
    assert venues.closed_reason(weekdays, date(2026, 11, 22)) == "weekday"  # Sunday
    assert venues.closed_reason(weekdays, date(2026, 11, 21)) == "weekday"  # Saturday
    assert venues.closed_reason(weekdays, date(2026, 11, 25)) is None  # Wednesday
    assert venues.closed_reason(_venue(open_weekdays="0123456"), date(2026, 11, 22)) is None


def test_opening_hours_honour_a_special_opening_on_a_holiday(ctx):
    """R3.3: a 休日開庁 opens a holiday with its own hours; other holidays stay closed."""
    venue = make_venue(open_weekdays="01234")
    holiday = date(2026, 11, 23)
    assert venues.opening_hours(venue, holiday) is None
    db.session.add(
        SpecialOpening(
            venue_id=venue.id, day=holiday, open_time=time(9, 0), close_time=time(12, 0), note="休日開庁"
        )
    )
    db.session.flush()
    assert venues.opening_hours(venue, holiday) == (time(9, 0), time(12, 0))
    assert venues.opening_hours(venue, date(2026, 11, 24)) == (time(9, 0), time(17, 0))
    assert venues.opening_hours(venue, date(2026, 11, 22)) is None  # Sunday, no special opening


def _slot_count(venue: Venue) -> int:
    return db.session.scalar(select(func.count()).select_from(Slot).where(Slot.venue_id == venue.id))


def test_generate_slots_for_a_normal_day(ctx):
    """R3.3: 9:00–17:00 in 30-minute slots makes 16 slots, at Tokyo times, with the venue's capacity."""
    venue = make_venue(open_weekdays="01234", slot_capacity=7)
    day = date(2026, 11, 25)
    assert venues.generate_slots(venue, day, day) == 16
    db.session.commit()
    slots = venues.slots_between(venue.id, day, day)
    assert len(slots) == 16 == _slot_count(venue)
    local = [tokyo(s.starts_at) for s in slots]
    assert [t.time() for t in local] == [time(9 + i // 2, 30 * (i % 2)) for i in range(16)]
    assert {t.date() for t in local} == {day}
    assert all(tokyo(s.ends_at) - tokyo(s.starts_at) == timedelta(minutes=30) for s in slots)
    assert all(s.capacity == 7 and s.taken == 0 for s in slots)


def test_generate_slots_skips_closed_days_and_opens_special_days(ctx):
    """R3.3: no slots on a holiday or weekend, unless a 休日開庁 opens it."""
    venue = make_venue(open_weekdays="01234")
    holiday = date(2026, 11, 23)
    assert venues.generate_slots(venue, holiday, holiday) == 0
    assert venues.generate_slots(venue, date(2026, 11, 21), date(2026, 11, 22)) == 0  # Sat–Sun
    assert venues.generate_slots(venue, date(2026, 12, 29), date(2027, 1, 3)) == 0  # 年末年始
    db.session.add(
        SpecialOpening(venue_id=venue.id, day=holiday, open_time=time(9, 0), close_time=time(12, 0))
    )
    db.session.flush()
    assert venues.generate_slots(venue, holiday, holiday) == 6
    # One week Mon 11-23 .. Sun 11-29: the special holiday (6) + Tue–Fri (4 × 16).
    assert venues.generate_slots(venue, date(2026, 11, 23), date(2026, 11, 29)) == 64
    assert _slot_count(venue) == 70


def test_generate_slots_is_idempotent(ctx):
    """R3.3: generating again creates nothing new, in the same session or after a commit."""
    venue = make_venue(open_weekdays="01234")
    first, last = date(2026, 11, 23), date(2026, 12, 6)
    created = venues.generate_slots(venue, first, last)
    assert created == 9 * 16  # two weeks, minus the holiday and four weekend days
    assert venues.generate_slots(venue, first, last) == 0
    venue_id = venue.id
    db.session.commit()
    db.session.expunge_all()
    venue = db.session.get(Venue, venue_id)
    assert venues.generate_slots(venue, first, last) == 0
    assert venues.generate_slots(venue, first, last + timedelta(days=1)) == 16  # only the new day
    db.session.commit()
    assert _slot_count(venue) == 10 * 16
