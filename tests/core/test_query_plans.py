"""R9.2 cost growth: the statements of a burst's hot paths find their rows through an index.

A statement that scans ``bookings`` or ``applicants`` costs in proportion to everything stored, so it
would slow down as the year goes on. SQLite's planner says what it will do (EXPLAIN QUERY PLAN);
every statement the resident's booking, the staff searches and the venue look-up send is checked.
"""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from sqlalchemy import text

from madoguchi import availability, booking, checkin, dates, search
from madoguchi.extensions import db
from madoguchi.models import LIVE_SQL
from tests.conftest import ON_POSTGRES
from tests.factories import make_applicant, make_slot, make_venue

pytestmark = pytest.mark.skipif(ON_POSTGRES, reason="EXPLAIN QUERY PLAN is SQLite's")

# Tables that grow with every resident, booking and message.
GROWING = ("bookings", "applicants", "booking_events", "outbound_messages", "holds", "audit_entries")


def _plans(statements) -> list[tuple[str, str]]:
    """The scans of growing tables SQLite's planner reports for ``statements`` (values inlined)."""
    scans = []
    conn = db.session.connection()
    for statement in statements:
        if not re.match(r"\s*(SELECT|UPDATE|DELETE)\b", statement, re.IGNORECASE):
            continue
        rows = conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {statement}").all()
        for row in rows:
            detail = row[-1]
            if re.match(rf"SCAN ({'|'.join(GROWING)})\b", detail):
                scans.append((detail, statement))
    return scans


def test_hot_paths_never_scan_a_growing_table(ctx, sqlite_trace):
    """R9.2: the resident's hold and confirmation, the operator's searches by number and by phone,
    and the venue's look-up each reach their rows through an index, whatever is stored."""
    venue = make_venue()
    slot = make_slot(venue, starts_in=timedelta(days=3))
    person = make_applicant(venue, phone="090-1111-2222", email="hanako@example.jp")
    others = [make_applicant(venue) for _ in range(3)]
    for other in others:
        booking.book(other, make_slot(venue).id, actor=booking.Actor(booking.Channel.PHONE))
    db.session.commit()

    sqlite_trace.clear()
    availability.week(venue, dates.today())
    held = booking.hold(person, slot.id)
    booking.confirm_hold(person.id, held.id, actor=booking.Actor.resident())
    booking.live_booking_for(person)
    search.find(search.interpret(person.reservation_number))
    search.find(search.interpret("090-1111-2222"))
    checkin.find(venue.id, person.reservation_number, dates.today())
    statements = list(sqlite_trace)
    assert len(statements) > 10
    assert _plans(statements) == []


def test_the_check_itself_sees_a_scan(ctx):
    """The test above could not fail if EXPLAIN never said SCAN: a query without an index does."""
    scans = _plans(["SELECT id FROM bookings WHERE status = 'booked'"])
    assert scans and scans[0][0].startswith("SCAN bookings")
    db.session.execute(text("SELECT 1"))


def test_a_hold_lives_in_three_b_trees(ctx):
    """R9.2: a confirmation deletes its hold from every B-tree of ``holds``, and each is a page its
    commit writes: the rows are stored in their key's tree (WITHOUT ROWID), and one (slot, expiry)
    index serves both the per-slot release of lapsed holds and the `madoguchi holds sweep`."""
    conn = db.session.connection()
    trees = conn.exec_driver_sql(
        "SELECT name FROM sqlite_master WHERE tbl_name = 'holds' AND type IN ('table', 'index')"
    )
    assert len(trees.all()) == 3  # the table (its key), the applicant's unique key, (slot, expiry)
    assert (
        "WITHOUT ROWID" in conn.exec_driver_sql("SELECT sql FROM sqlite_master WHERE name = 'holds'").scalar()
    )
    per_slot = conn.exec_driver_sql(
        "EXPLAIN QUERY PLAN SELECT id FROM holds WHERE slot_id = 1 AND expires_at <= '2026-12-07'"
    ).all()
    assert "ix_holds_slot_id_expires_at (slot_id=? AND expires_at<?)" in per_slot[0][-1]
    sweep = conn.exec_driver_sql(
        "EXPLAIN QUERY PLAN SELECT DISTINCT slot_id FROM holds WHERE expires_at <= '2026-12-07'"
    )
    assert "COVERING INDEX ix_holds_slot_id_expires_at" in sweep.all()[0][-1]


def _trees(conn, table: str) -> list[str]:
    return (
        conn.exec_driver_sql(
            f"SELECT name FROM sqlite_master WHERE tbl_name = '{table}' AND type IN ('table', 'index')"  # noqa: S608
        )
        .scalars()
        .all()
    )


def test_one_index_keeps_one_live_booking_per_applicant_and_finds_all_of_theirs(ctx):
    """R1.3, R9.2: each B-tree a booking is written into is a page its commit writes. One unique index
    on (applicant, live) both refuses a second live booking and finds all of an applicant's bookings,
    live or not (where a partial unique index and a plain index were two trees)."""
    conn = db.session.connection()
    # the table, its key, the request key, the slot, (applicant, live)
    assert len(_trees(conn, "bookings")) == 5
    for query in (
        "SELECT id FROM bookings WHERE applicant_id = 'x'",
        f"SELECT id FROM bookings WHERE applicant_id = 'x' AND {LIVE_SQL}",  # noqa: S608 - constants
    ):
        plan = conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {query}").all()
        assert "uq_bookings_applicant_id_live (applicant_id=?)" in plan[0][-1], query


def test_a_bookings_messages_have_neighbouring_keys(ctx):
    """R9.2: the messages a booking queues get ids next to each other (one random 120-bit prefix), so
    their rows share a page of each of the message table's B-trees."""
    from madoguchi import notify

    rows = notify.message_rows(("email", "sms"), "b" * 32, 1, "booking_confirmed")
    first, second = (row["id"] for row in rows)
    assert len(first) == len(second) == 32 and first[:30] == second[:30] and first < second
    others = notify.message_rows(("email", "sms"), "c" * 32, 1, "booking_confirmed")
    assert others[0]["id"][:30] != first[:30]  # every booking's own random prefix
