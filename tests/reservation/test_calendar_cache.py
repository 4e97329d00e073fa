"""R9.2: the residents' calendar is cached in each worker process — a venue's week of slots for
CALENDAR_SLOTS_SECONDS, its rendered grid with the places left for CALENDAR_PLACES_SECONDS — never
longer, and nothing personal goes into the cache (docs/capacity.md).

The caches measure their lifetimes by the application's clock, so these tests travel in time
instead of sleeping. The lifetimes are set long here, so that a slow machine cannot make a test
see fresh data by accident."""

from __future__ import annotations

import sys
import threading
from datetime import date, timedelta

import pytest

from madoguchi import availability, booking, calendar_admin, dates, numbers
from madoguchi.cache import TimedCache
from madoguchi.extensions import db
from madoguchi.models import Applicant, Booking, Channel, Hold, Slot, Venue
from tests.factories import make_applicant, make_staff

from . import pages
from .flow import add_applicant, add_slot, book, count, path_of, sign_in, taken

PLACES_SECONDS = 60
SLOTS_SECONDS = 600
SLOT_FULL = "選んだ時間帯はちょうど満員になりました。別の時間帯をお選びください。"
PHONE = booking.Actor(Channel.PHONE)


@pytest.fixture
def overrides(overrides):
    overrides.update(CALENDAR_PLACES_SECONDS=PLACES_SECONDS, CALENDAR_SLOTS_SECONDS=SLOTS_SECONDS)
    return overrides


def _travel(app, seconds: float) -> None:
    app.extensions["madoguchi.clock"].offset += timedelta(seconds=seconds)


def _offered(html: str) -> dict[int, str]:
    """slot id → its 残り label, for every slot the calendar offers (a button of the hold form)."""
    form = pages.parse(html).find("form", action="/hold")
    assert form is not None
    return {
        int(button["value"]): button.find("span", cls="slot-left").text
        for button in form.find_all("button", name="slot_id")
    }


def _day_text(html: str, day: date) -> str:
    section = pages.parse(html).find("section", **{"aria-labelledby": f"day-{day.isoformat()}"})
    assert section is not None
    return section.text


def _book_elsewhere(app, venue_id: int, slot_id: int) -> None:
    """Someone else books ``slot_id`` through the call center (committed, as another worker would)."""
    with app.app_context():
        person = make_applicant(db.session.get(Venue, venue_id), birth_date=date(1970, 1, 1))
        booking.book(person, slot_id, actor=PHONE)
        db.session.commit()


def _apply(app, make_plan) -> None:
    """An administrator's calendar change (the back office is another process)."""
    with app.app_context():
        admin = make_staff(roles=("administrator",))
        calendar_admin.apply(make_plan(), {}, staff=admin)
        db.session.commit()


def _cached(app) -> list[tuple]:
    """(key, value) of everything the app's caches hold."""
    return [item for found in app.extensions.get("madoguchi.caches", {}).values() for item in found.items()]


def _today(app) -> date:
    with app.app_context():
        return dates.today()


def _slot_day(app, slot_id: int) -> date:
    with app.app_context():
        return dates.tokyo(db.session.get(Slot, slot_id).starts_at).date()


# ---- places left --------------------------------------------------------------------------------------
def test_a_booking_made_elsewhere_shows_once_the_places_lifetime_has_passed(app, client, world):
    """R9.2: the calendar's places are served from the cache within CALENDAR_PLACES_SECONDS and read
    again after it: a booking made meanwhile by another channel shows then."""
    first = world.slot_ids[0]
    sign_in(client, world)
    assert _offered(client.get("/slots").text)[first] == "残り5"

    _book_elsewhere(app, world.venue_id, first)
    assert _offered(client.get("/slots").text)[first] == "残り5"  # the shared grid, still young

    _travel(app, PLACES_SECONDS + 1)
    assert _offered(client.get("/slots").text)[first] == "残り4"


def test_lifetime_zero_caches_nothing(app, client, world):
    """R9.2: with both lifetimes 0 every calendar reads the store, and no cache holds anything."""
    app.config.update(CALENDAR_PLACES_SECONDS=0, CALENDAR_SLOTS_SECONDS=0)
    first = world.slot_ids[0]
    sign_in(client, world)
    assert _offered(client.get("/slots").text)[first] == "残り5"
    _book_elsewhere(app, world.venue_id, first)
    assert _offered(client.get("/slots").text)[first] == "残り4"
    assert _cached(app) == []


def test_a_place_shown_from_the_cache_but_gone_is_refused_with_a_message(app, client, world):
    """R9.2, R1.2: a stale count can only show a place the hold then refuses: the resident is told
    the slot just filled up, nothing is written, and the calendar they are sent back to shows the
    places as they are now."""
    slot_id, _ = add_slot(app, world.venue_id, capacity=1)
    sign_in(client, world)
    assert _offered(client.get("/slots").text)[slot_id] == "残り1"
    _book_elsewhere(app, world.venue_id, slot_id)
    assert _offered(client.get("/slots").text)[slot_id] == "残り1"  # stale, within the lifetime

    response = client.post("/hold", data={"slot_id": str(slot_id)})
    assert path_of(response) == "/slots"
    page = client.get("/slots").text
    assert SLOT_FULL in pages.flashes(page)
    assert slot_id not in _offered(page)  # sent back with a message: the places are read now
    assert taken(app, slot_id) == 1
    assert count(app, Hold) == 0


# ---- administrators' changes ----------------------------------------------------------------------------
def test_a_closed_day_stops_being_offered_within_the_places_lifetime(app, client, world):
    """R9.2, R3.3: after an administrator closes a day, the calendar offers none of its slots once
    CALENDAR_PLACES_SECONDS have passed (they show full), and no longer lists them once
    CALENDAR_SLOTS_SECONDS have passed; a hold in between is refused."""
    slot_id, label = add_slot(app, world.venue_id, starts_in=timedelta(days=4))
    day = _slot_day(app, slot_id)
    sign_in(client, world)
    assert slot_id in _offered(client.get("/slots").text)

    _apply(app, lambda: calendar_admin.plan_close_day(db.session.get(Venue, world.venue_id), day))

    _travel(app, PLACES_SECONDS + 1)
    page = client.get("/slots").text
    assert slot_id not in _offered(page)
    assert world.slot_ids[0] in _offered(page)  # other days are untouched
    assert path_of(client.post("/hold", data={"slot_id": str(slot_id)})) == "/slots"
    assert count(app, Hold) == 0

    _travel(app, SLOTS_SECONDS + 1)
    assert label not in _day_text(client.get("/slots").text, day)


def test_a_raised_capacity_shows_within_the_places_lifetime(app, client, world):
    """R9.2, R3.3: capacities are read with the places, so a slot's new capacity shows once
    CALENDAR_PLACES_SECONDS have passed, even while the week's slots are still cached."""
    first = world.slot_ids[0]
    sign_in(client, world)
    assert _offered(client.get("/slots").text)[first] == "残り5"
    _apply(app, lambda: calendar_admin.plan_slot_capacity(first, 8))
    _travel(app, PLACES_SECONDS + 1)
    assert _offered(client.get("/slots").text)[first] == "残り8"


def test_a_new_slot_shows_within_the_slots_lifetime(app, client, world):
    """R9.2, R3.3: a slot created meanwhile (a 休日開庁, a new template) is listed once
    CALENDAR_SLOTS_SECONDS have passed."""
    sign_in(client, world)
    client.get("/slots")
    slot_id, _ = add_slot(app, world.venue_id, starts_in=timedelta(days=3))
    _travel(app, SLOTS_SECONDS + 1)
    assert _offered(client.get("/slots").text)[slot_id] == "残り5"


# ---- what is personal stays out ---------------------------------------------------------------------------
def test_the_cache_holds_no_personal_data_and_each_page_keeps_its_own(overrides, request):
    """R9.2, R2.5: with CSRF on, two residents see the same cached grid, but each page carries its
    own CSRF field (once, outside the grid) and only its resident's booking; the caches hold slots
    and rendered grids only — no name, number, contact, booking, token or row id of an applicant."""
    overrides["WTF_CSRF_ENABLED"] = True
    app = request.getfixturevalue("app")
    world = request.getfixturevalue("world")
    _book_elsewhere(app, world.venue_id, world.slot_ids[2])  # a booking the cache must not carry
    other_id, other_number = add_applicant(app, world.venue_id, birth_date=date(1990, 1, 1), email=None)
    with app.app_context():
        booking.book(db.session.get(Applicant, world.applicant_id), world.slot_ids[1], actor=PHONE)
        db.session.commit()

    pages_seen, tokens = {}, {}
    for who, number, birth in (
        ("booked", world.number, world.birth_typed),
        ("other", other_number, "1990年1月1日"),
    ):
        client = app.test_client()
        token = pages.csrf_token(client.get("/start").text)
        signed = client.post(
            "/start",
            data={"reservation_number": numbers.display(number), "birth_date": birth, "csrf_token": token},
        )
        assert signed.status_code == 302
        page = client.get("/slots").text
        client.get(f"/slots?from={(_today(app) + timedelta(days=7)).isoformat()}")
        root = pages.parse(page)
        assert len(root.find_all("input", name="csrf_token")) == 1
        tokens[who] = pages.csrf_token(page)
        pages_seen[who] = page
        hold = client.post("/hold", data={"slot_id": str(world.slot_ids[0]), "csrf_token": tokens[who]})
        assert path_of(hold) == "/confirm"  # the page's token works with the grid's buttons

    assert tokens["booked"] != tokens["other"]
    assert "現在の予約" in pages_seen["booked"] and "現在の予約" not in pages_seen["other"]

    with app.app_context():
        booking_ids = list(db.session.scalars(db.select(Booking.id)))
    personal = [
        world.name,
        world.name_kana,
        world.number,
        world.display_number,
        world.applicant_id,
        world.email,
        world.phone,
        other_id,
        other_number,
        numbers.display(other_number),
        world.birth_typed,
        "1980-04-01",
        "1990-01-01",
        *tokens.values(),
        *booking_ids,
        "現在の予約",
    ]
    cached = _cached(app)
    assert cached, "the calendar was served from the caches"
    assert {type(value).__name__ for _, value in cached} <= {"_Slots", "Markup"}
    text = "\n".join(repr(item) for item in cached)
    for value in personal:
        assert str(value) not in text, value


# ---- bounded, thread-safe -----------------------------------------------------------------------------------
def test_the_cache_is_bounded_least_recently_used_first_out():
    """R9.2: a cache keeps at most its bound; the value used last stays."""
    found = TimedCache(3, clock=lambda: 0.0)
    for key in "abc":
        found.get(key, 10, lambda key=key: key.upper())
    assert found.get("a", 10, lambda: "remade") == "A"  # used: now the most recent
    for key in "de":
        found.get(key, 10, lambda key=key: key.upper())
    assert len(found) == 3
    assert sorted(found.items()) == [("a", "A"), ("d", "D"), ("e", "E")]


def test_a_value_never_outlives_its_lifetime_even_if_the_clock_goes_back():
    """R9.2: a value is made again once its lifetime is over, or when the clock was set back."""
    now = [100.0]
    found = TimedCache(8, clock=lambda: now[0])
    made = []

    def make():
        made.append(now[0])
        return len(made)

    assert found.get("k", 1, make) == 1
    now[0] = 100.9
    assert found.get("k", 1, make) == 1
    now[0] = 101.0
    assert found.get("k", 1, make) == 2
    now[0] = 50.0
    assert found.get("k", 1, make) == 3
    assert found.get("k", 0, make) == 4  # lifetime 0: made, and not kept
    now[0] = 50.5
    assert found.get("k", 1, make) == 3


def test_the_cache_is_safe_to_share_between_threads():
    """R9.2: call-center gthread workers share an app: many threads reading and filling one small
    cache get the right value for their key, and the bound holds."""
    found = TimedCache(5, clock=lambda: 0.0)
    errors = []

    def work(seed: int):
        try:
            for i in range(2000):
                key = (seed * 7 + i) % 20
                if found.get(key, 10, lambda key=key: key * 10) != key * 10:
                    errors.append(key)
        except Exception as failed:  # noqa: BLE001 — reported below
            errors.append(failed)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads as often as possible, to meet the races
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        sys.setswitchinterval(interval)
    assert errors == []
    assert len(found) <= 5


def test_any_first_day_is_served_and_the_weeks_kept_stay_within_the_bookable_period(app, client, world):
    """R9.2, R9.3: whatever ``from`` says, the calendar answers (never a 500), and the weeks cached
    are only those of the bookable period (one per first day, at most 29 per venue)."""
    sign_in(client, world)
    today = _today(app)
    queries = [
        "",
        "from=",
        "from=x",
        "from=2026-13-01",
        "from=0001-01-01",
        "from=9999-12-31",
        "from=%00",
        "from=" + "9" * 5000,
        "from=2026-01-01T00:00",
        *(f"from={(today + timedelta(days=n)).isoformat()}" for n in range(-3, 40)),
    ]
    for query in queries:
        response = client.get(f"/slots?{query}")
        assert response.status_code == 200, (query[:20], response.status_code)
    grids = app.extensions["madoguchi.caches"]["calendar_grid"]
    slots = app.extensions["madoguchi.caches"][availability.SLOTS_CACHE]
    assert len(grids) == len(slots) == 29


def test_the_next_week_is_cached_on_its_own(app, client, world):
    """R9.2: each week is its own cache entry: the next week's page lists that week's slots, not the
    cached first week's."""
    slot_id, _ = add_slot(app, world.venue_id, starts_in=timedelta(days=9))
    sign_in(client, world)
    assert slot_id not in _offered(client.get("/slots").text)
    following = _today(app) + timedelta(days=7)
    page = client.get(f"/slots?from={following.isoformat()}").text
    assert slot_id in _offered(page)
    assert world.slot_ids[0] not in _offered(page)


def test_the_booking_flow_still_books_through_the_cached_calendar(app, client, world):
    """R3.3, R9.2: the whole flow (calendar from the cache → hold → confirm) books the slot."""
    book(client, world, world.slot_ids[0])
    assert taken(app, world.slot_ids[0]) == 1
