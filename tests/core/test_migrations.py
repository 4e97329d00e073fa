"""The Alembic migrations build exactly the schema the models describe (the SecureDrop test)."""

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from flask_migrate import upgrade
from sqlalchemy import create_engine, text
from sqlalchemy.exc import IntegrityError

from madoguchi.extensions import db
from tests.conftest import ON_POSTGRES, POSTGRES_URL


def test_migrations_at_head_match_the_models(ctx):
    """R9.1: the database is created by migrations (not create_all), on SQLite and PostgreSQL."""
    with db.engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        differences = compare_metadata(context, db.metadata)
    assert differences == []


def test_one_live_booking_index_and_checks_exist_in_the_migrated_database(ctx):
    """R1.2, R1.3: the constraints that protect capacity and one-live-booking live in the database."""
    from sqlalchemy import inspect

    inspector = inspect(db.engine)
    indexes = {ix["name"]: ix for ix in inspector.get_indexes("bookings")}
    one_live = indexes["uq_bookings_applicant_id_live"]
    assert one_live["unique"] and one_live["column_names"] == ["applicant_id", "live"]
    live = {c["name"]: c for c in inspector.get_columns("bookings")}["live"]
    computed = " ".join(live["computed"]["sqltext"].split())  # as each database words it
    assert computed.upper().startswith("CASE") and all(
        s in computed for s in ("booked", "arrived", "handed_over")
    )
    checks = {c["name"] for c in inspector.get_check_constraints("slots")}
    assert {"ck_slots_taken_within_capacity", "ck_slots_taken_not_negative"} <= checks


# ---- 0009: bookings and messages in fewer B-trees (R9.2) ---------------------------------------------
@pytest.fixture
def empty_database(tmp_path):
    """An empty database of its own: a SQLite file, or a schema of the PostgreSQL test database."""
    if not ON_POSTGRES:
        yield f"sqlite:///{tmp_path / 'migrating.sqlite3'}"
        return
    engine = create_engine(POSTGRES_URL)
    with engine.begin() as conn:
        conn.execute(text("DROP SCHEMA IF EXISTS migrating CASCADE"))
        conn.execute(text("CREATE SCHEMA migrating"))
    yield POSTGRES_URL + "?options=-csearch_path%3Dmigrating"
    with engine.begin() as conn:
        conn.execute(text("DROP SCHEMA migrating CASCADE"))
    engine.dispose()


def _rows(conn) -> dict:
    return {
        table: sorted(tuple(row) for row in conn.execute(text(f"SELECT {columns} FROM {table}")))  # noqa: S608
        for table, columns in (
            ("bookings", "id, applicant_id, slot_id, status, request_key"),
            ("booking_events", "id, booking_id, action"),
            ("outbound_messages", "id, booking_id, kind, status"),
        )
    }


def test_0009_keeps_every_booking_and_message_and_the_one_live_rule(empty_database, tmp_path):
    """R1.3, R9.2: upgrading a database with bookings (live and ended), their events and messages keeps
    every row and every reference; afterwards a second live booking of an applicant is refused and
    ended ones are not; the downgrade gives the rows back too."""
    from flask_migrate import downgrade

    from reservation import create_app
    from tests.conftest import MIGRATIONS, base_overrides, built
    from tests.factories import make_applicant, make_slot, make_venue

    with built(create_app, base_overrides(tmp_path, empty_database)) as app, app.app_context():
        upgrade(directory=MIGRATIONS, revision="0008")
        venue = make_venue()
        slot = make_slot(venue)
        alice, bob = make_applicant(venue), make_applicant(venue)
        db.session.commit()
        conn = db.session.connection()
        now = "2026-12-07 10:00:00.000000"
        for n, (who, status) in enumerate(
            [(alice, "booked"), (alice, "cancelled"), (alice, "no_show"), (bob, "cancelled")]
        ):
            conn.execute(
                text(
                    "INSERT INTO bookings (id, applicant_id, slot_id, status, channel, request_key,"
                    " created_at, updated_at) VALUES (:id, :a, :s, :st, 'web', :k, :t, :t)"
                ),
                {"id": f"b{n}", "a": who.id, "s": slot.id, "st": status, "k": f"key{n}", "t": now},
            )
            conn.execute(
                text(
                    "INSERT INTO booking_events (booking_id, at, action, channel) VALUES (:b, :t, 'booked', 'web')"
                ),
                {"b": f"b{n}", "t": now},
            )
            conn.execute(
                text(
                    "INSERT INTO outbound_messages (id, kind, template, booking_id, status, attempts, created_at)"
                    " VALUES (:id, 'email', 'booking_confirmed', :b, 'pending', 0, :t)"
                ),
                {"id": f"m{n}", "b": f"b{n}", "t": now},
            )
        db.session.commit()
        before = _rows(db.session.connection())
        db.session.commit()

        upgrade(directory=MIGRATIONS, revision="0009")
        conn = db.session.connection()
        assert _rows(conn) == before
        live = dict(conn.execute(text("SELECT id, live FROM bookings")).all())
        assert live == {"b0": 1, "b1": None, "b2": None, "b3": None}
        if not ON_POSTGRES:
            assert conn.execute(text("PRAGMA foreign_key_check")).all() == []
        db.session.commit()
        for status, refused in (("booked", True), ("arrived", True), ("cancelled", False)):
            try:
                with db.session.begin_nested():
                    db.session.execute(
                        text(
                            "INSERT INTO bookings (id, applicant_id, slot_id, status, channel, created_at,"
                            " updated_at) VALUES (:id, :a, :s, :st, 'web', :t, :t)"
                        ),
                        {"id": f"x-{status}", "a": alice.id, "s": slot.id, "st": status, "t": now},
                    )
                assert not refused, status
            except IntegrityError:
                assert refused, status
        db.session.rollback()

        downgrade(directory=MIGRATIONS, revision="0008")
        assert _rows(db.session.connection()) == before
        db.session.commit()
        db.engine.dispose()
