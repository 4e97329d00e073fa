"""Venue settings screens (R3.3, R6, R7.2): details edited and audited, a capacity lowered below the
bookings only after a decision on each booking, all applied at once or not at all."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import timedelta

import pytest
from sqlalchemy import select

from madoguchi import booking, dates
from madoguchi.extensions import db
from madoguchi.models import Booking, Channel, Slot, SpecialOpening, Venue
from madoguchi.permissions import Role
from tests.factories import make_applicant, make_slot, make_venue

from .conftest import audit_entries, location, seed_staff, signed_in


@dataclass(frozen=True)
class Seeded:
    venue: int
    full: int
    free: int
    bookings: tuple[str, ...]
    names: tuple[str, ...]


@pytest.fixture
def seeded(admin_app) -> Seeded:
    with admin_app.app_context():
        venue = make_venue()
        full = make_slot(venue, starts_in=timedelta(days=3), capacity=5)
        free = make_slot(venue, starts_in=timedelta(days=4), capacity=5)
        people = [make_applicant(venue, name=f"設定　花子{i}") for i in range(3)]
        made = [booking.book(p, full.id, actor=booking.Actor(Channel.WEB)) for p in people]
        db.session.commit()
        return Seeded(venue.id, full.id, free.id, tuple(b.id for b in made), tuple(p.name for p in people))


@pytest.fixture
def admin_client(admin_app):
    person = seed_staff(admin_app, (Role.ADMINISTRATOR.value,))
    client = admin_app.test_client()
    signed_in(client, person)
    return client


def _slots(app, *ids):
    with app.app_context():
        return {s.id: (s.capacity, s.taken) for s in db.session.scalars(select(Slot).where(Slot.id.in_(ids)))}


def _placed(app):
    with app.app_context():
        return {b.id: (b.slot_id, b.status) for b in db.session.scalars(select(Booking))}


def test_lowering_a_capacity_shows_the_affected_bookings_and_changes_nothing(admin_app, admin_client, seeded):
    """R3.3: capacity 1 for a slot with 3 bookings answers with the decision screen (200), lists the
    3 bookings without any personal value, and leaves the slot as it was."""
    before = (_slots(admin_app, seeded.full), _placed(admin_app))
    response = admin_client.post(f"/settings/slots/{seeded.full}/capacity", data={"capacity": "1"})
    assert response.status_code == 200
    body = response.get_data(as_text=True)
    assert "影響を受ける予約の対応" in body
    for booking_id in seeded.bookings:
        assert f'name="decision-{booking_id}"' in body
    assert not any(name in body for name in seeded.names)
    assert (_slots(admin_app, seeded.full), _placed(admin_app)) == before


def test_submitting_without_a_decision_for_each_is_refused(admin_app, admin_client, seeded):
    """R3.3: deciding for one booking of three is not enough: the screen comes back with the error,
    nothing changed."""
    before = (_slots(admin_app, seeded.full), _placed(admin_app))
    response = admin_client.post(
        f"/settings/slots/{seeded.full}/capacity",
        data={"capacity": "1", "decided": "1", f"decision-{seeded.bookings[0]}": "cancel"},
    )
    assert response.status_code == 200
    assert "すべての予約について対応を選んでください" in response.get_data(as_text=True)
    assert (_slots(admin_app, seeded.full), _placed(admin_app)) == before


def test_decisions_apply_then_the_capacity(admin_app, admin_client, seeded):
    """R3.3: move, cancel, keep → capacity 1; audited per booking and for the change (no values)."""
    first, second, third = seeded.bookings
    response = admin_client.post(
        f"/settings/slots/{seeded.full}/capacity",
        data={
            "capacity": "1",
            "decided": "1",
            f"decision-{first}": f"move:{seeded.free}",
            f"decision-{second}": "cancel",
            f"decision-{third}": "keep",
        },
    )
    assert response.status_code == 302
    assert _slots(admin_app, seeded.full, seeded.free) == {seeded.full: (1, 1), seeded.free: (5, 1)}
    placed = _placed(admin_app)
    assert placed[first] == (seeded.free, "booked")
    assert placed[second] == (seeded.full, "cancelled")
    changed = audit_entries(admin_app, "venue:calendar_changed")
    assert len(changed) == 1 and json.loads(changed[0]["details"])["moved"] == 1
    by_staff = audit_entries(admin_app, "booking:booked_by_staff")
    assert sorted(e["subject_id"] for e in by_staff) == sorted([first, second])
    assert not any(n in e["details"] for e in changed + by_staff for n in seeded.names)


def test_a_move_into_a_full_slot_rolls_everything_back(admin_app, admin_client, seeded):
    """R1.2, standard 3: two moves into a slot with one place: the page says nothing changed, and
    nothing did."""
    with admin_app.app_context():
        tight = make_slot(db.session.get(Venue, seeded.venue), starts_in=timedelta(days=5), capacity=1).id
        db.session.commit()
    before = (_slots(admin_app, seeded.full, tight), _placed(admin_app))
    first, second, third = seeded.bookings
    response = admin_client.post(
        f"/settings/slots/{seeded.full}/capacity",
        data={
            "capacity": "1",
            "decided": "1",
            f"decision-{first}": f"move:{tight}",
            f"decision-{second}": f"move:{tight}",
            f"decision-{third}": "keep",
        },
    )
    assert response.status_code == 200
    assert "何も変更していません" in response.get_data(as_text=True)
    assert (_slots(admin_app, seeded.full, tight), _placed(admin_app)) == before


def test_bad_capacities_get_a_message_not_an_error(admin_app, admin_client, seeded):
    for value in ("", "-1", "abc", "1000"):
        response = admin_client.post(f"/settings/slots/{seeded.full}/capacity", data={"capacity": value})
        assert response.status_code == 302, value
    assert _slots(admin_app, seeded.full) == {seeded.full: (5, 3)}


def test_venue_details_are_edited_and_audited_by_field_name(admin_app, admin_client, seeded):
    """R6: name and directions change; the audit entry names the fields."""
    response = admin_client.post(
        f"/settings/venues/{seeded.venue}",
        data={
            "name": "新しい会場",
            "floor": "3階",
            "address": "江東区",
            "map_url": "https://example.jp/map",
            "directions": "徒歩",
        },
    )
    assert response.status_code == 302
    with admin_app.app_context():
        venue = db.session.get(Venue, seeded.venue)
        assert (venue.name, venue.floor, venue.map_url) == ("新しい会場", "3階", "https://example.jp/map")
    entry = audit_entries(admin_app, "venue:updated")[-1]
    assert set(json.loads(entry["details"])["fields"]) >= {"name", "floor", "map_url", "directions"}
    bad = admin_client.post(
        f"/settings/venues/{seeded.venue}", data={"name": "x", "map_url": "javascript:alert(1)"}
    )
    assert bad.status_code == 200 and "http:// または https://" in bad.get_data(as_text=True)


def test_closing_a_day_and_adding_a_special_opening_through_the_screens(admin_app, admin_client, seeded):
    """R3.3: closing the day of the booked slot asks for decisions; a special opening is added."""
    with admin_app.app_context():
        day = dates.tokyo(db.session.get(Slot, seeded.full).starts_at).date()
    page = admin_client.get(f"/settings/venues/{seeded.venue}/calendar")
    assert page.status_code == 200 and "予約枠と休日開庁" in page.get_data(as_text=True)
    assert admin_client.get(f"/settings/venues/{seeded.venue}/days/{day.isoformat()}").status_code == 200
    response = admin_client.post(f"/settings/venues/{seeded.venue}/close", data={"day": day.isoformat()})
    assert response.status_code == 200 and "影響を受ける予約の対応" in response.get_data(as_text=True)
    decisions = {f"decision-{b}": "cancel" for b in seeded.bookings}
    done = admin_client.post(
        f"/settings/venues/{seeded.venue}/close", data={"day": day.isoformat(), "decided": "1", **decisions}
    )
    assert done.status_code == 302
    assert _slots(admin_app, seeded.full)[seeded.full][0] == 0

    later = day + timedelta(days=20)
    added = admin_client.post(
        f"/settings/venues/{seeded.venue}/specials",
        data={"day": later.isoformat(), "open_time": "09:00", "close_time": "12:00", "note": "休日開庁"},
    )
    assert added.status_code == 302 and location(added).startswith(
        f"/settings/venues/{seeded.venue}/calendar"
    )
    with admin_app.app_context():
        assert db.session.scalars(select(SpecialOpening.day)).all() == [later]
    again = admin_client.post(
        f"/settings/venues/{seeded.venue}/specials",
        data={"day": later.isoformat(), "open_time": "09:00", "close_time": "12:00"},
    )
    assert again.status_code == 302
    assert "すでに休日開庁" in admin_client.get(location(again)).get_data(as_text=True)


def test_the_template_form_regenerates_slots(admin_app, admin_client, seeded):
    """R3.3: a new template from tomorrow: the seeded slots start off the new grid, so the booked
    one needs decisions first; then the template is saved, the empty off-grid slot is gone and the
    grid's slots exist with the new capacity."""
    with admin_app.app_context():
        first_day = dates.today() + timedelta(days=1)
        day = dates.tokyo(db.session.get(Slot, seeded.full).starts_at).date()
    data = {
        "open_time": "09:00",
        "close_time": "17:00",
        "slot_minutes": "60",
        "slot_capacity": "8",
        "open_weekdays": ["0", "1", "2", "3", "4", "5", "6"],
        "first_day": first_day.isoformat(),
    }
    asked = admin_client.post(f"/settings/venues/{seeded.venue}/template", data=data)
    assert asked.status_code == 200 and "影響を受ける予約の対応" in asked.get_data(as_text=True)
    decisions = {f"decision-{b}": "cancel" for b in seeded.bookings}
    done = admin_client.post(
        f"/settings/venues/{seeded.venue}/template", data={**data, "decided": "1", **decisions}
    )
    assert done.status_code == 302
    with admin_app.app_context():
        venue = db.session.get(Venue, seeded.venue)
        assert (venue.slot_capacity, venue.slot_minutes) == (8, 60)
        assert db.session.get(Slot, seeded.free) is None  # empty and off the grid: removed
        assert db.session.get(Slot, seeded.full).capacity == 0  # cancelled bookings still point at it
        from madoguchi import calendar_admin

        regenerated = [s for s in calendar_admin.slots_of_day(venue, day) if s.capacity]
        assert len(regenerated) == 8 and {s.capacity for s in regenerated} == {8}


def test_operators_and_auditors_cannot_change_venues(admin_app, seeded):
    """R7.2: only VENUE_MANAGE holders reach the settings."""
    for role in (Role.OPERATOR, Role.AUDITOR, Role.VENUE_STAFF):
        person = seed_staff(
            admin_app, (role.value,), venue_id=seeded.venue if role == Role.VENUE_STAFF else None
        )
        client = admin_app.test_client()
        signed_in(client, person)
        assert (
            client.post(f"/settings/slots/{seeded.full}/capacity", data={"capacity": "0"}).status_code == 403
        )
        assert client.get("/settings/venues").status_code == 403
