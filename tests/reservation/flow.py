"""Seeding and page-walking helpers for the residents' pages.

Seeding opens its own app context and commits, so what the test client's requests see is what a
second browser would see; reads open a fresh context each time (never a stale session)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, timedelta
from email import message_from_bytes, policy
from pathlib import Path
from urllib.parse import urlsplit

from sqlalchemy import func, select

from madoguchi import dates, numbers
from madoguchi.extensions import db
from madoguchi.models import Applicant, Booking, Hold, LookupFailure, Slot
from tests.factories import make_applicant, make_slot, make_venue, new_number

from . import pages

BIRTH_TYPED = "1980年4月1日"
BIRTH = date(1980, 4, 1)
MAP_URL = "https://www.openstreetmap.org/?mlat=35.6727&mlon=139.8171"


@dataclass
class World:
    """What the seed created, as plain values (no ORM objects outlive their context)."""

    venue_id: int
    venue_code: str
    venue_display: str
    other_venue_id: int
    slot_ids: list[int]
    slot_labels: dict[int, str]
    number: str
    applicant_id: str
    name: str = "江東　太郎"
    name_kana: str = "コウトウ　タロウ"
    phone: str = "090-1234-5678"
    email: str = "taro@example.jp"
    birth_typed: str = BIRTH_TYPED
    extra: dict = field(default_factory=dict)

    @property
    def display_number(self) -> str:
        return numbers.display(self.number)


def seed_world(app, *, slots: int = 3, capacity: int = 5, email: str | None = "taro@example.jp") -> World:
    with app.app_context():
        venue = make_venue(
            code="honchosha",
            name="江東区役所",
            floor="2階",
            address="東京都江東区東陽4丁目11番28号",
            map_url=MAP_URL,
            directions="東京メトロ東西線 東陽町駅から徒歩5分",
        )
        other = make_venue(
            code="sogo", name="総合区民センター", floor="2階", map_url="https://example.jp/map"
        )
        made = [
            make_slot(venue, starts_in=timedelta(days=2, hours=i), capacity=capacity) for i in range(slots)
        ]
        applicant = make_applicant(venue, email=email)
        db.session.commit()
        return World(
            venue_id=venue.id,
            venue_code=venue.code,
            venue_display=venue.display_name,
            other_venue_id=other.id,
            slot_ids=[s.id for s in made],
            slot_labels={s.id: f"{dates.tokyo(s.starts_at):%H:%M}" for s in made},
            number=applicant.reservation_number,
            applicant_id=applicant.id,
            email=email,
        )


def add_slot(app, venue_id: int, *, capacity: int = 5, taken: int = 0, starts_in=timedelta(days=2, hours=5)):
    with app.app_context():
        from madoguchi.models import Venue

        slot = make_slot(db.session.get(Venue, venue_id), starts_in=starts_in, capacity=capacity, taken=taken)
        db.session.commit()
        return slot.id, f"{dates.tokyo(slot.starts_at):%H:%M}"


def add_applicant(app, venue_id: int | None = None, **values) -> tuple[str, str]:
    """A second roster applicant; returns (id, number)."""
    with app.app_context():
        from madoguchi.models import Venue

        venue = db.session.get(Venue, venue_id) if venue_id else None
        applicant = make_applicant(venue, **values)
        db.session.commit()
        return applicant.id, applicant.reservation_number


def unknown_number() -> str:
    return new_number()


# ---- reading the store -------------------------------------------------------------------------
def taken(app, slot_id: int) -> int:
    with app.app_context():
        return db.session.get(Slot, slot_id).taken


def count(app, model, *where) -> int:
    with app.app_context():
        return db.session.scalar(select(func.count()).select_from(model).where(*where))


def table_counts(app) -> dict[str, int]:
    with app.app_context():
        return {
            table.name: db.session.scalar(select(func.count()).select_from(table))
            for table in db.metadata.sorted_tables
        }


def snapshot(app) -> dict:
    """Everything a write could change that a test can compare cheaply."""
    with app.app_context():
        return {
            "counts": table_counts(app),
            "taken": dict(db.session.execute(select(Slot.id, Slot.taken)).all()),
            "bookings": sorted(db.session.execute(select(Booking.id, Booking.slot_id, Booking.status)).all()),
            "holds": sorted(db.session.execute(select(Hold.id, Hold.slot_id)).all()),
            "applicants": sorted(
                db.session.execute(
                    select(Applicant.id, Applicant.venue_id, Applicant.email_ct, Applicant.phone_ct)
                ).all()
            ),
            "lookup_failures": sorted(
                db.session.execute(select(LookupFailure.number_bidx, LookupFailure.failures)).all()
            ),
        }


def live_bookings(app, applicant_id: str) -> list[tuple[str, int, str]]:
    with app.app_context():
        return list(
            db.session.execute(
                select(Booking.id, Booking.slot_id, Booking.status).where(
                    Booking.applicant_id == applicant_id,
                    Booking.status.in_(("booked", "arrived", "handed_over")),
                )
            ).all()
        )


def outbox_messages(folder) -> list:
    folder = Path(folder)
    if not folder.exists():
        return []
    return [
        message_from_bytes(path.read_bytes(), policy=policy.default) for path in sorted(folder.glob("*.eml"))
    ]


def body_of(message) -> str:
    return message.get_body(preferencelist=("plain",)).get_content()


# ---- walking the pages (CSRF disabled) ---------------------------------------------------------
def path_of(response) -> str:
    return urlsplit(response.headers.get("Location", "")).path


def sign_in(client, world: World, *, via: str = "/start", birth: str | None = None):
    response = client.post(
        via, data={"reservation_number": world.display_number, "birth_date": birth or world.birth_typed}
    )
    assert response.status_code == 302, response.text
    return response


def hold(client, slot_id: int | str):
    return client.post("/hold", data={"slot_id": str(slot_id)})


def hold_id(client) -> str:
    response = client.get("/confirm")
    assert response.status_code == 200, (response.status_code, response.headers.get("Location"))
    element = pages.parse(response.text).find("input", name="hold_id")
    assert element is not None and element["value"]
    return element["value"]


def book(client, world: World, slot_id: int, *, sign: bool = True) -> str:
    """Sign in, hold, confirm; returns the hold id that became the booking's request key."""
    if sign:
        sign_in(client, world)
    assert path_of(hold(client, slot_id)) == "/confirm"
    key = hold_id(client)
    response = client.post("/confirm", data={"hold_id": key})
    assert path_of(response) == "/done", response.text
    return key
