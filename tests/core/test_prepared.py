"""R9.2: statements of the booking hot path run straight on the driver (``madoguchi.prepared``) and
behave as SQLAlchemy's own: the same types on both stores, the same exceptions, no values in them."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import bindparam, func, insert, select, text
from sqlalchemy.exc import IntegrityError

from madoguchi import dates
from madoguchi.booking import _INSERT_BOOKING, _INSERT_EVENT  # the confirmation's own statements
from madoguchi.crypto import new_row_id
from madoguchi.extensions import db
from madoguchi.models import Booking, BookingEvent, Hold
from madoguchi.prepared import DriverStatement, insert_rows
from tests.factories import make_applicant, make_slot, make_venue

_HOLDS = Hold.__table__
_INSERT = DriverStatement(
    insert(_HOLDS).values(
        {name: bindparam(name) for name in ("id", "slot_id", "applicant_id", "expires_at", "created_at")}
    )
)
_EXPIRING = DriverStatement(
    select(_HOLDS.c.id, _HOLDS.c.expires_at)
    .where(_HOLDS.c.expires_at > bindparam("after"))
    .order_by(_HOLDS.c.id)
)


def _row(slot_id: int, applicant_id: str, hold_id: str | None = None) -> dict:
    now = dates.now()
    return {
        "id": hold_id or new_row_id(),
        "slot_id": slot_id,
        "applicant_id": applicant_id,
        "expires_at": now + timedelta(minutes=10),
        "created_at": now,
    }


def test_values_are_bound_with_the_column_types_of_each_store(ctx):
    """R9.2: an aware datetime written on the driver reads back through the ORM as the same aware
    UTC instant (SQLite keeps text, PostgreSQL a timestamptz), and compares in a WHERE clause."""
    venue = make_venue()
    slot, person = make_slot(venue), make_applicant(venue)
    row = _row(slot.id, person.id)
    _INSERT.execute(db.session.connection(), row)

    stored = db.session.get(Hold, row["id"])
    assert stored.expires_at == row["expires_at"] and stored.expires_at.tzinfo is not None
    conn = db.session.connection()
    assert _EXPIRING.scalar(conn, {"after": row["expires_at"] - timedelta(seconds=1)}) == row["id"]
    assert _EXPIRING.first(conn, {"after": row["expires_at"]}) is None


def test_a_time_is_stored_exactly_as_sqlalchemy_stores_it(ctx):
    """R9.2, R7.4: a whole-second time written on the driver is the same stored value as the ORM's
    (on SQLite the same text, ".000000" included), so a half-open period ``at >= since`` compares
    alike whichever path wrote the row (found as the audit report lost the entry at ``since``)."""
    venue = make_venue()
    slot, person = make_slot(venue), make_applicant(venue)
    whole = dates.now().replace(microsecond=0) + timedelta(minutes=10)
    ours, theirs = _row(slot.id, person.id), _row(slot.id, make_applicant(venue).id)
    ours["expires_at"] = theirs["expires_at"] = whole
    conn = db.session.connection()
    _INSERT.execute(conn, ours)
    conn.execute(insert(_HOLDS), theirs)
    # text(): the values as the driver returns them, no result processing.
    raw = conn.execute(
        text("SELECT expires_at FROM holds WHERE id IN (:a, :b)"), {"a": ours["id"], "b": theirs["id"]}
    ).all()
    assert raw[0][0] == raw[1][0]
    since = select(func.count()).select_from(_HOLDS).where(_HOLDS.c.expires_at >= whole)
    assert conn.execute(since).scalar() == 2


def test_many_rows_in_one_call(ctx):
    """R9.2: ``execute_many`` writes every row it is given (the booking's e-mail and SMS rows)."""
    venue = make_venue()
    slot = make_slot(venue)
    people = [make_applicant(venue) for _ in range(3)]
    _INSERT.execute_many(db.session.connection(), [_row(slot.id, p.id) for p in people])
    assert db.session.query(Hold).count() == 3


def test_a_refused_row_raises_sqlalchemys_integrity_error_without_its_values(ctx):
    """Standard 3 and 4: a constraint violation is SQLAlchemy's IntegrityError (callers catch it as
    for any statement), and the values sent are not in it (PostgreSQL's own detail names only the
    conflicting key, here a random row id)."""
    venue = make_venue()
    slot, person = make_slot(venue), make_applicant(venue)
    same_id = new_row_id()
    _INSERT.execute(db.session.connection(), _row(slot.id, person.id, same_id))
    with pytest.raises(IntegrityError) as raised:
        _INSERT.execute(db.session.connection(), _row(slot.id, person.id, same_id))
    assert person.id not in str(raised.value)
    assert raised.value.params is None


def test_rows_inserted_together_refer_to_each_other_and_fail_together(ctx):
    """R9.2, R1.2, standard 3: ``insert_rows`` writes a booking and its event (which refers to it)
    as one statement on PostgreSQL and one after another on SQLite; when one of its rows is refused
    (a second live booking for the person), none of them is written, and the error is
    SQLAlchemy's IntegrityError without the values sent (PostgreSQL's detail names only the
    conflicting key, the applicant's random row id)."""
    venue = make_venue()
    slot, person = make_slot(venue), make_applicant(venue)
    now = dates.now()

    def rows(booking_id: str) -> list:
        booked = dict(
            id=booking_id,
            applicant_id=person.id,
            slot_id=slot.id,
            status="booked",
            channel="phone",
            staff_id=None,
            request_key=None,
            created_at=now,
            updated_at=now,
        )
        event = dict(
            booking_id=booking_id, at=now, action="booked", channel="phone", staff_id=None, to_slot_id=slot.id
        )
        return [(_INSERT_BOOKING, booked), (_INSERT_EVENT, {**event, "undone": False})]

    first = new_row_id()
    insert_rows(db.session.connection(), rows(first))
    assert [e.action for e in db.session.get(Booking, first).events] == ["booked"]

    second = new_row_id()
    with pytest.raises(IntegrityError) as refused, db.session.begin_nested():
        insert_rows(db.session.connection(), rows(second))
    assert refused.value.params is None and second not in str(refused.value)
    assert db.session.get(Booking, second) is None
    events = db.session.scalar(
        select(func.count()).select_from(BookingEvent.__table__).where(BookingEvent.booking_id == second)
    )
    assert events == 0
