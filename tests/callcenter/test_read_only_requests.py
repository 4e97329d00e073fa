"""Staff pages that only show data read without SQLite's write lock and write their audit entries
(and the session's last-seen time) in one short transaction once the page is rendered (R9.2); a
page whose entry cannot be written is not sent (R7.4, standard 4); such a request cannot write
anything else (PRAGMA query_only)."""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from datetime import timedelta

import pytest
from sqlalchemy import select, update

from madoguchi import audit, extensions, numbers
from madoguchi.extensions import db
from madoguchi.models import Staff, StaffSession
from madoguchi.permissions import Permission
from staffweb.guard import requires
from tests.conftest import ON_POSTGRES, data_statements
from tests.staffsupport import advance, audit_entries, signed_in

SEARCHED = "booking:searched"


@pytest.fixture
def app(cc_app):
    """The call center is the app whose statements ``sqlite_trace`` records."""
    return cc_app


def _search(client, q):
    return client.post("/search", data={"q": q, "birth": ""})


@pytest.mark.skipif(ON_POSTGRES, reason="SQLite's write lock")
def test_a_search_takes_the_write_lock_only_for_its_audit_entry(
    cc_app, operator_client, caller, sqlite_trace
):
    """R9.2, R7.4: the search request begins with a plain BEGIN and reads the session, the hits and
    the call panel under it; only then BEGIN IMMEDIATE, the audit chain's three statements and
    COMMIT. Under a burst the lock was held for the whole request (10 ms) and searches waited up to
    90 ms for it."""
    sqlite_trace.clear()
    page = _search(operator_client, caller.number)
    assert page.status_code == 200 and numbers.display(caller.number) in page.text
    trace = data_statements(sqlite_trace)
    assert trace[0] == "BEGIN", trace[:3]
    locked = trace.index("BEGIN IMMEDIATE")
    reads = trace[1:locked]
    assert any("applicants" in line for line in reads), reads
    assert all(line.split()[0].upper() in ("SELECT", "COMMIT") for line in reads), reads
    write = trace[locked + 1 : trace.index("COMMIT", locked) + 1]
    assert [line.split()[0].upper() for line in write] == ["SELECT", "INSERT", "UPDATE", "COMMIT"], write
    assert "audit_entries" in write[1]
    assert len(audit_entries(cc_app, SEARCHED)) == 1


@pytest.mark.skipif(not ON_POSTGRES, reason="PostgreSQL's transactions")
def test_on_postgres_a_search_and_its_audit_entry_are_one_transaction(cc_app, operator_client, caller):
    """R9.2, R7.4: on PostgreSQL a read takes no lock, so the search's audit entry joins the read's
    transaction: one BEGIN and one COMMIT per search (ending the read and beginning a write cost
    up to a fifth of a search), and the entry is written."""
    from sqlalchemy import event

    with cc_app.app_context():
        engine = db.engine
    seen = []
    begun, committed = (lambda _conn: seen.append("BEGIN")), (lambda _conn: seen.append("COMMIT"))
    event.listen(engine, "begin", begun)
    event.listen(engine, "commit", committed)
    try:
        page = _search(operator_client, caller.number)
    finally:
        event.remove(engine, "begin", begun)
        event.remove(engine, "commit", committed)
    assert page.status_code == 200 and numbers.display(caller.number) in page.text
    assert seen == ["BEGIN", "COMMIT"], seen
    assert len(audit_entries(cc_app, SEARCHED)) == 1


@pytest.mark.skipif(ON_POSTGRES, reason="SQLite's write lock")
def test_results_whose_audit_entry_cannot_be_written_are_not_sent(
    cc_app, operator_client, caller, monkeypatch, caplog
):
    """R7.4, standard 4: another writer holds the lock past the wait: the operator gets the
    "busy" page, not the hits; nothing is audited because nothing was shown, and the log names
    the page, never what was searched."""
    monkeypatch.setattr(extensions, "WRITE_LOCK_WAIT_SECONDS", 0.2)
    with cc_app.app_context():
        path = db.engine.url.database
    taken, release = threading.Event(), threading.Event()

    def hold():
        other = sqlite3.connect(path, isolation_level=None)
        other.execute("BEGIN IMMEDIATE")
        taken.set()
        release.wait(10)
        other.execute("ROLLBACK")
        other.close()

    holder = threading.Thread(target=hold)
    holder.start()
    taken.wait(5)
    try:
        with caplog.at_level(logging.INFO):
            page = _search(operator_client, caller.number)
    finally:
        release.set()
        holder.join()
    assert page.status_code == 503
    assert "混み合っています" in page.text
    assert caller.number not in page.text and numbers.display(caller.number) not in page.text
    assert "江東　太郎" not in page.text
    assert page.headers["Cache-Control"] == "no-store" and "Content-Security-Policy" in page.headers
    assert audit_entries(cc_app, SEARCHED) == []
    assert "/search" in caplog.text and caller.number not in caplog.text
    # The lock released, the same search is answered and audited.
    assert _search(operator_client, caller.number).status_code == 200
    assert len(audit_entries(cc_app, SEARCHED)) == 1


@pytest.mark.skipif(ON_POSTGRES, reason="SQLite's PRAGMA query_only")
def test_a_read_only_page_that_writes_fails_and_leaves_the_store_as_it_was(cc_app, client, operator):
    """R9.2, standard 3: a GET that changes data is refused by SQLite itself (query_only), so such a
    mistake shows in the tests, not as a silent lock upgrade under a burst; the connection goes
    back to the pool writable."""

    @requires(Permission.BOOKING_SEARCH)
    def renames_on_get():
        db.session.execute(update(Staff).where(Staff.id == operator.id).values(name="書き換え"))
        return "written"

    cc_app.add_url_rule("/probe/renames-on-get", view_func=renames_on_get)
    signed_in(client, operator, cc_app)
    response = client.get("/probe/renames-on-get")
    assert response.status_code == 500 and "written" not in response.text
    with cc_app.app_context():
        assert db.session.scalar(select(Staff.name).where(Staff.id == operator.id)) == "応対 花子"
        db.session.execute(update(Staff).where(Staff.id == operator.id).values(name="応対 花子２"))
        db.session.commit()
        assert db.session.scalar(select(Staff.name).where(Staff.id == operator.id)) == "応対 花子２"


def _last_seen(app, staff_id: int):
    with app.app_context():
        return db.session.scalar(select(StaffSession.last_seen_at).where(StaffSession.staff_id == staff_id))


def test_a_read_only_page_still_keeps_the_session_alive(cc_app, operator_client, operator):
    """R7.1: the last-seen time of a session is written after a page that only reads (at most
    every 30 s), so an operator who only searches is not signed out as idle."""
    before = _last_seen(cc_app, operator.id)
    advance(cc_app, timedelta(seconds=31))
    assert operator_client.get("/").status_code == 200
    after = _last_seen(cc_app, operator.id)
    assert after > before
    advance(cc_app, timedelta(seconds=5))
    operator_client.get("/")
    assert _last_seen(cc_app, operator.id) == after  # not within 30 s


def test_an_idle_session_on_a_read_only_page_is_ended_and_audited(cc_app, operator_client, operator):
    """R7.1, R7.4: a GET after the idle limit ends the session (written at once, not deferred),
    records why, and sends the operator to sign in."""
    advance(cc_app, timedelta(minutes=cc_app.config["STAFF_SESSION_IDLE_MINUTES"] + 1))
    response = operator_client.get("/")
    assert response.status_code == 302 and "/signin" in response.headers["Location"]
    ended = [e for e in audit_entries(cc_app, "auth:session_ended") if e["staff_id"] == operator.id]
    assert len(ended) == 1 and '"reason": "idle"' in ended[0]["details"]
    with cc_app.app_context():
        reason = db.session.scalar(
            select(StaffSession.ended_reason).where(StaffSession.staff_id == operator.id)
        )
    assert reason == "idle"


def test_searches_from_many_threads_each_leave_one_entry_in_an_unbroken_chain(cc_app, caller, operator):
    """R7.4, R9.2: concurrent read-only requests append their entries one at a time: as many
    entries as searches, ids without gaps, and the chain verifies."""
    clients = []
    for _ in range(4):
        client = cc_app.test_client()
        signed_in(client, operator, cc_app)
        clients.append(client)
    statuses: list[int] = []

    def work(client):
        for _ in range(5):
            statuses.append(_search(client, caller.number).status_code)
            time.sleep(0.001)

    threads = [threading.Thread(target=work, args=(client,)) for client in clients]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert statuses == [200] * 20
    entries = audit_entries(cc_app)
    assert len([e for e in entries if e["action"] == SEARCHED]) == 20
    assert [e["id"] for e in entries] == list(range(entries[0]["id"], entries[0]["id"] + len(entries)))
    with cc_app.app_context():
        assert audit.verify().ok
