"""Fixtures for the call center (R4): the app on the per-test database, a signed-in operator, a
caller on the roster with a booking, and Twilio webhooks signed the way Twilio signs them."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

import pytest
from twilio.request_validator import RequestValidator

from madoguchi import booking
from madoguchi.extensions import db
from madoguchi.models import Channel
from tests.conftest import built
from tests.factories import make_applicant, make_slot, make_venue
from tests.staffsupport import seed_staff, signed_in

AUTH_TOKEN = "test-twilio-auth-token-0123456789"
CALLER = "+819011112222"  # how Twilio sends 090-1111-2222


@pytest.fixture
def cc_app(overrides):
    from callcenter import create_app

    overrides.update(TWILIO_AUTH_TOKEN=AUTH_TOKEN, CALL_STREAM_SECONDS=1.5)
    with built(create_app, overrides) as app:
        yield app


@pytest.fixture
def client(cc_app):
    return cc_app.test_client()


@pytest.fixture
def operator(cc_app):
    return seed_staff(cc_app, ("operator",), name="応対 花子")


@pytest.fixture
def operator_client(cc_app, client, operator):
    signed_in(client, operator, cc_app)
    return client


@dataclass(frozen=True)
class Caller:
    applicant_id: str
    booking_id: str | None
    number: str
    venue_id: int
    slots: tuple[int, ...]  # free slots at the caller's venue


def seed_caller(app, *, phone="090-1111-2222", booked=True, capacity=5, **applicant) -> Caller:
    with app.app_context():
        venue = make_venue()
        slots = [make_slot(venue, starts_in=timedelta(days=d), capacity=capacity) for d in (2, 3, 4)]
        person = make_applicant(venue, phone=phone, **applicant)
        made = booking.book(person, slots[0].id, actor=booking.Actor(Channel.WEB)) if booked else None
        db.session.commit()
        return Caller(
            person.id,
            made.id if made else None,
            person.reservation_number,
            venue.id,
            tuple(s.id for s in slots),
        )


@pytest.fixture
def caller(cc_app):
    return seed_caller(cc_app)


def twilio_post(
    client, path: str, params: dict, *, token: str = AUTH_TOKEN, url: str | None = None, signature=None
):
    """POST form parameters the way Twilio does, signed over the full URL with the auth token."""
    url = url or f"http://localhost{path}"
    if signature is None:
        signature = RequestValidator(token).compute_signature(url, params)
    headers = {"X-Twilio-Signature": signature} if signature else {}
    return client.post(path, data=params, headers=headers)


def incoming_call(client, call_sid="CA" + "1" * 32, caller=CALLER):
    return twilio_post(
        client,
        "/twilio/voice",
        {
            "CallSid": call_sid,
            "From": caller,
            "To": "+81312345678",
            "CallStatus": "ringing",
            "Direction": "inbound",
        },
    )
