"""The Alembic migrations build exactly the schema the models describe (the SecureDrop test)."""

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from madoguchi.extensions import db


def test_migrations_at_head_match_the_models(ctx):
    """R9.1: the database is created by migrations (not create_all), on SQLite and PostgreSQL."""
    with db.engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        differences = compare_metadata(context, db.metadata)
    assert differences == []


def test_partial_unique_index_and_checks_exist_in_the_migrated_database(ctx):
    """R1.2, R1.3: the constraints that protect capacity and one-live-booking live in the database."""
    from sqlalchemy import inspect

    inspector = inspect(db.engine)
    indexes = {ix["name"]: ix for ix in inspector.get_indexes("bookings")}
    assert indexes["uq_bookings_one_live_per_applicant"]["unique"]
    checks = {c["name"] for c in inspector.get_check_constraints("slots")}
    assert {"ck_slots_taken_within_capacity", "ck_slots_taken_not_negative"} <= checks
