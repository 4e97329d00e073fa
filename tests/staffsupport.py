"""Helpers for tests of the staff apps (back office, call center): seeded staff as plain values,
sign-in through both steps, the app's clock, and reading the audit log.

Seeding opens its own app context and commits, so what the test client sees is what a second
browser would see. Nothing returned here is an ORM object.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import timedelta

import pyotp
from sqlalchemy import select

from madoguchi import booking, dates
from madoguchi.extensions import db
from madoguchi.models import AuditEntry, Channel, Staff
from tests.factories import STAFF_PASSWORD, make_applicant, make_slot, make_staff, make_venue

COOKIE = "madoguchi_staff"
TOTP_STEP = timedelta(seconds=30)


# ---- seeding ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Person:
    id: int
    login_id: str
    name: str
    roles: tuple[str, ...]
    venue_id: int | None
    totp_secret: str | None
    password: str = STAFF_PASSWORD


def seed_staff(app, roles=("operator",), *, venue_id=None, enrolled=True, **overrides) -> Person:
    with app.app_context():
        staff = make_staff(roles=tuple(roles), venue_id=venue_id, **overrides)
        if not enrolled:
            staff.totp_secret = None
            staff.totp_enrolled_at = None
        db.session.commit()
        return Person(
            staff.id,
            staff.login_id,
            staff.name,
            tuple(roles),
            venue_id,
            staff.totp_secret if enrolled else None,
            overrides.get("password", STAFF_PASSWORD),
        )


@dataclass(frozen=True)
class World:
    """Two venues with one booking each, and a staff member to act on (plain values)."""

    venue_a: int
    venue_b: int
    booking_a: str
    booking_b: str
    applicant_a: dict
    applicant_b: dict
    target: Person


def seed_world(app, *, applicant_b: dict | None = None) -> World:
    with app.app_context():
        venue_a = make_venue()
        venue_b = make_venue()
        bookings, people = [], []
        for venue, values in ((venue_a, {}), (venue_b, applicant_b or {})):
            slot = make_slot(venue, starts_in=timedelta(days=2))
            applicant = make_applicant(venue, **values)
            made = booking.book(applicant, slot.id, actor=booking.Actor(Channel.PHONE))
            bookings.append(made.id)
            people.append(
                {
                    "name": applicant.name,
                    "name_kana": applicant.name_kana,
                    "number": applicant.reservation_number,
                    "phone": applicant.phone,
                    "email": applicant.email,
                    "address": applicant.address,
                }
            )
        db.session.commit()
        ids = (venue_a.id, venue_b.id)
    target = seed_staff(app, ("operator",), name="対象職員")
    return World(ids[0], ids[1], bookings[0], bookings[1], people[0], people[1], target)


# ---- the clock and sign-in -----------------------------------------------------------------------
def clock(app) -> dates.Clock:
    return app.extensions["madoguchi.clock"]


def advance(app, delta: timedelta) -> None:
    clock(app).offset += delta


def set_now(app, at) -> None:
    """Make the app's clock read ``at`` (an aware datetime) from now on."""
    c = clock(app)
    c.offset = timedelta(0)
    c.offset = at - c.now()


def fresh_code(app, person: Person) -> str:
    """A TOTP code for a step the person has not used yet (moving the clock 30 s when needed)."""
    with app.app_context():
        last = db.session.get(Staff, person.id).totp_last_step
    while True:
        step = int(clock(app).now().timestamp()) // 30
        if last is None or step > last:
            return pyotp.TOTP(person.totp_secret).at(step * 30)
        advance(app, TOTP_STEP)


def sign_in_password(client, person: Person, password: str | None = None):
    return client.post("/signin", data={"login_id": person.login_id, "password": password or person.password})


def signed_in(client, person: Person, app=None):
    """Pass both steps (ID + password, then TOTP) on ``client``; return the final response."""
    app = app or client.application
    first = sign_in_password(client, person)
    assert first.status_code == 302, first.get_data(as_text=True)
    assert first.headers["Location"].startswith("/signin/code"), first.headers["Location"]
    second = client.post("/signin/code", data={"code": fresh_code(app, person)})
    assert second.status_code == 302, second.get_data(as_text=True)
    return second


def location(response) -> str:
    return response.headers.get("Location", "")


def error_text(response) -> str:
    match = re.search(r'<div class="error-summary"[^>]*><p>(.*?)</p>', response.get_data(as_text=True), re.S)
    return match.group(1) if match else ""


def audit_entries(app, action: str | None = None) -> list[dict]:
    """Audit entries as plain dicts (details parsed from JSON kept as text too)."""
    with app.app_context():
        query = select(AuditEntry).order_by(AuditEntry.id)
        if action:
            query = query.where(AuditEntry.action == action)
        return [
            {c.name: getattr(entry, c.name) for c in AuditEntry.__table__.columns}
            for entry in db.session.scalars(query)
        ]
