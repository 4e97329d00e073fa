"""A lost database connection (R9.1, R1.2): PostgreSQL restarts, a failover or an idle timeout kill
the server side of pooled connections. The next request must get a fresh connection (the pool's
checkout check, ``extensions._server_still_there``), and a booking whose connection dies before
COMMIT must leave nothing behind."""

from __future__ import annotations

import os
import socket
import struct
import threading
import time
from datetime import timedelta
from urllib.parse import urlsplit, urlunsplit

import pytest
from sqlalchemy import create_engine, func, select, text
from sqlalchemy.exc import DBAPIError

from madoguchi import booking, dates, extensions
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


class _Relay:
    """A TCP relay in front of PostgreSQL that can lose the server without a word, as a failover
    that moves the server's address to a new primary does: after ``lose_the_server()`` the
    connections open through it hear nothing more, and the next thing their client sends is
    answered with a reset. Connections opened afterwards reach the server (the new primary)."""

    def __init__(self, upstream_host: str, upstream_port: int):
        self.upstream = (upstream_host, upstream_port)
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.lost: set[int] = set()  # ids of the client sockets whose server is gone
        self.open: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def lose_the_server(self) -> None:
        self.lost.update(id(client) for client in self.open)

    def close(self) -> None:
        self.listener.close()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            server = socket.create_connection(self.upstream)
            self.open.append(client)
            threading.Thread(target=self._pump, args=(client, server, client), daemon=True).start()
            threading.Thread(target=self._pump, args=(server, client, client), daemon=True).start()

    def _pump(self, source: socket.socket, target: socket.socket, client: socket.socket) -> None:
        while True:
            try:
                data = source.recv(65536)
            except OSError:
                return
            if id(client) in self.lost:
                if source is client:  # the client spoke to a host that knows no such connection
                    client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    client.close()
                    target.close()
                return  # nothing from the lost server reaches the client any more
            if not data:
                target.close()
                return
            target.sendall(data)


def _through(relay: _Relay) -> str:
    parts = urlsplit(POSTGRES_URL)
    netloc = f"{parts.username}:{parts.password}@127.0.0.1:{relay.port}"
    return urlunsplit(parts._replace(netloc=netloc))


@pytest.fixture
def relay():
    parts = urlsplit(POSTGRES_URL)
    one = _Relay(parts.hostname, parts.port or 5432)
    yield one
    one.close()


def _pid(engine) -> int:
    with engine.connect() as conn:
        pid = conn.execute(text("SELECT pg_backend_pid()")).scalar()
        conn.commit()
    return pid


def test_a_server_lost_without_a_word_is_noticed_by_the_idle_ping(app, relay, monkeypatch):
    """R9.1: a failover that moves the server's address leaves the pooled connection's socket quiet
    (no goodbye to see); the next packet is answered with a reset. A connection idle for longer
    than ``PING_AFTER_IDLE_SECONDS`` is asked ``SELECT 1`` at checkout, gets the reset there, and the
    unit of work runs on a fresh connection instead of failing."""
    monkeypatch.setattr(extensions, "PING_AFTER_IDLE_SECONDS", 0.05)
    engine = create_engine(_through(relay))
    before = _pid(engine)
    relay.lose_the_server()
    time.sleep(0.1)  # idle past the threshold, as every connection is through a failover
    assert _pid(engine) != before
    engine.dispose()


def test_a_connection_in_steady_use_is_not_pinged(app, relay, monkeypatch):
    """R9.2, and the limit of R9.1's check: within ``PING_AFTER_IDLE_SECONDS`` of its last use a
    pooled connection is handed out on the socket check alone, without a round trip. A server lost
    silently in that moment is found by the first statement, which fails (the pool then replaces
    the connection); with SQLAlchemy's pre-ping the window was between the ping and the statement."""
    monkeypatch.setattr(extensions, "PING_AFTER_IDLE_SECONDS", 60.0)
    engine = create_engine(_through(relay))
    before = _pid(engine)
    relay.lose_the_server()
    with pytest.raises(DBAPIError), engine.connect() as conn:
        conn.execute(text("SELECT 1"))
    assert _pid(engine) != before  # the failed connection was not pooled again
    engine.dispose()


def test_a_connection_idle_past_the_threshold_is_pinged(app, monkeypatch):
    """R9.1: the idle ping is a real statement to the server (seen in ``pg_stat_activity``), and a
    live connection that answers it is kept."""
    monkeypatch.setattr(extensions, "PING_AFTER_IDLE_SECONDS", 0.05)
    with app.app_context():
        pid = db.session.execute(text("SELECT pg_backend_pid()")).scalar()
        db.session.commit()
    time.sleep(0.1)
    observer = create_engine(POSTGRES_URL)
    with app.app_context(), observer.connect() as watch:
        db.session.connection()
        last = watch.execute(text("SELECT query FROM pg_stat_activity WHERE pid = :pid"), {"pid": pid})
        assert last.scalar() == "SELECT 1"
        assert db.session.execute(text("SELECT pg_backend_pid()")).scalar() == pid
    observer.dispose()


def test_the_connection_just_returned_is_handed_out_next(app):
    """R9.2: the pool is last in, first out, so the connections in steady use stay within the idle
    threshold (no ping) and only spare ones idle. First in, first out, connections would take
    turns and each would idle past the threshold at a call center's few searches a second."""
    with app.app_context():
        engine = db.engine
        first, second = engine.connect(), engine.connect()
        pids = [conn.execute(text("SELECT pg_backend_pid()")).scalar() for conn in (first, second)]
        for conn in (first, second):  # the second goes back last
            conn.commit()
            conn.close()
        assert _pid(engine) == pids[1]


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
