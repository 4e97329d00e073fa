"""A lost database connection (R9.1, R1.2): PostgreSQL restarts, a failover or an idle timeout kill
the server side of pooled connections. The next request must get a fresh connection (the pool's
checkout check, ``extensions._server_still_there``), and a booking whose connection dies before
COMMIT must leave nothing behind."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
from sqlalchemy import create_engine, func, select, text
from sqlalchemy.exc import DBAPIError

from madoguchi import booking, dates
from madoguchi.extensions import begin_write, db, driver_transaction
from madoguchi.models import Applicant, Booking, Channel, Slot
from tests.conftest import ON_POSTGRES, POSTGRES_URL
from tests.factories import make_applicant, make_slot, make_venue

pytestmark = pytest.mark.skipif(not ON_POSTGRES, reason="kills server connections: PostgreSQL only")


def _kill_backends(pids: list[int]) -> None:
    """Terminate server processes from another connection, as a DBA or a failover would, and wait
    until they have gone (the signal is only a request: a backend ends a moment later)."""
    killer = create_engine(POSTGRES_URL)
    with killer.connect() as conn:
        for pid in pids:
            assert conn.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid}).scalar() is True
        conn.commit()
        for _ in range(500):
            alive = conn.execute(
                text("SELECT count(*) FROM pg_stat_activity WHERE pid = ANY(:pids)"), {"pids": pids}
            ).scalar()
            conn.commit()
            if not alive:
                break
            time.sleep(0.01)
        else:
            raise AssertionError(f"backends {pids} still running")
    killer.dispose()


def _slot_and_applicant(app) -> tuple[int, str]:
    """A free slot in two days and an applicant of its venue, committed."""
    with app.app_context():
        venue = make_venue()
        slot_id = make_slot(venue, starts_in=timedelta(days=2)).id
        applicant_id = make_applicant(venue).id
        db.session.commit()
    return slot_id, applicant_id


def test_the_next_request_survives_killed_pooled_connections(app):
    """R9.1: after the pooled connection is killed server-side, the next unit of work (a request's
    app context) gets a live connection instead of an error (the checkout check)."""
    with app.app_context():
        pid = db.session.execute(text("SELECT pg_backend_pid()")).scalar()
        db.session.commit()
    _kill_backends([pid])
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(Booking)) == 0
        assert db.session.execute(text("SELECT pg_backend_pid()")).scalar() != pid


def test_a_live_pooled_connection_is_handed_out_without_a_round_trip(app):
    """R9.1, R9.2: the checkout check asks the socket, not the server. A live pooled connection is
    kept (the same server process serves the next unit of work), and checking it out sends the
    server nothing: the last statement it saw is still the previous unit of work's COMMIT
    (SQLAlchemy's pre-ping would have sent a SELECT 1)."""
    with app.app_context():
        pid = db.session.execute(text("SELECT pg_backend_pid()")).scalar()
        db.session.commit()
    observer = create_engine(POSTGRES_URL)
    with app.app_context(), observer.connect() as watch:
        db.session.connection()  # checked out of the pool, nothing executed yet
        last = watch.execute(text("SELECT query FROM pg_stat_activity WHERE pid = :pid"), {"pid": pid})
        assert last.scalar() == "COMMIT"
        assert db.session.execute(text("SELECT pg_backend_pid()")).scalar() == pid
    observer.dispose()


def test_every_killed_connection_in_the_pool_is_replaced(app):
    """R9.1: a restart drops all the pooled connections at once; units of work that check out
    several of them at the same time each get a live one, none an error."""
    with app.app_context():
        engine = db.engine
        held = [engine.connect() for _ in range(3)]
        pids = [conn.execute(text("SELECT pg_backend_pid()")).scalar() for conn in held]
        for conn in held:
            conn.commit()
            conn.close()
    _kill_backends(pids)
    with app.app_context():
        again = [db.engine.connect() for _ in range(3)]
        fresh = [conn.execute(text("SELECT pg_backend_pid()")).scalar() for conn in again]
        for conn in again:
            conn.close()
    assert not set(fresh) & set(pids)


def test_the_checkout_check_holds_over_tls(app):
    """R9.1, R9.2: a city's database server speaks TLS (scripts/postgres-test-db switches the test
    cluster's on). TLS records on an idle connection must not look like the server hanging up: a
    live TLS connection serves unit after unit of work (large answers included) without being
    replaced, and a killed one is still replaced."""
    import os

    tls_url = POSTGRES_URL + ("&" if "?" in POSTGRES_URL else "?") + "sslmode=require"
    probe = create_engine(POSTGRES_URL)
    with probe.connect() as conn:
        tls_served = conn.execute(text("SHOW ssl")).scalar() == "on"
    probe.dispose()
    if not tls_served:
        assert not os.environ.get("CI"), "CI's PostgreSQL must serve TLS (scripts/postgres-test-db)"
        pytest.skip("this PostgreSQL does not serve TLS")
    engine = create_engine(tls_url)  # no pre-ping: the checkout listener alone, as in the app
    assert engine.pool._pre_ping is False
    pids = set()
    for _ in range(50):
        with engine.connect() as conn:
            encrypted = conn.execute(
                text("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
            ).scalar()
            pids.add(conn.execute(text("SELECT pg_backend_pid()")).scalar())
            assert len(conn.execute(text("SELECT repeat('x', 100000)")).scalar()) == 100_000
            conn.commit()
    assert encrypted is True
    assert len(pids) == 1, "a live TLS connection was replaced"
    _kill_backends(list(pids))
    with engine.connect() as conn:
        assert conn.execute(text("SELECT pg_backend_pid()")).scalar() not in pids
    engine.dispose()


def test_a_booking_cut_off_before_commit_is_not_half_written(app):
    """R1.2, standard 3: the connection dies between the booking's writes and COMMIT; the place is
    not taken and no booking exists; booking again afterwards works."""
    slot_id, applicant_id = _slot_and_applicant(app)

    with app.app_context():
        begin_write()
        applicant = db.session.get(Applicant, applicant_id)
        booking.book(applicant, slot_id, actor=booking.Actor(Channel.PHONE))
        pid = db.session.execute(text("SELECT pg_backend_pid()")).scalar()
        _kill_backends([pid])
        with pytest.raises(Exception):  # noqa: B017 - the driver's error for a dead connection
            db.session.commit()
        db.session.rollback()

    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(Booking)) == 0
        assert db.session.get(Slot, slot_id).taken == 0
        applicant = db.session.get(Applicant, applicant_id)
        made = booking.book(applicant, slot_id, actor=booking.Actor(Channel.PHONE))
        db.session.commit()
        assert made.status == "booked" and db.session.get(Slot, slot_id).taken == 1


def test_a_driver_transaction_cut_off_before_commit_leaves_nothing(app):
    """R1.2, R9.2: the residents' confirmation writes on a pooled driver connection of its own
    (``driver_transaction``). When its connection dies before COMMIT, the error is SQLAlchemy's
    (the request's error page), no row is stored, and the pool hands out a live connection next."""
    slot_id, applicant_id = _slot_and_applicant(app)

    with app.app_context():
        with pytest.raises(DBAPIError), driver_transaction() as conn:
            booking._insert_booking(
                conn, applicant_id, slot_id, actor=booking.Actor.resident(), request_key=None, now=dates.now()
            )
            pid = conn.connection.driver_connection.execute("SELECT pg_backend_pid()").fetchone()[0]
            _kill_backends([pid])
        assert db.session.scalar(select(func.count()).select_from(Booking)) == 0
        with driver_transaction() as conn:
            alive = conn.connection.driver_connection.execute("SELECT pg_backend_pid()").fetchone()[0]
        assert alive != pid
