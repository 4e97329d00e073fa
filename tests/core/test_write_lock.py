"""R9.2: a writer waits for SQLite's write lock in short steps, and gives up after the set time."""

from __future__ import annotations

import sqlite3
import threading
import time

import pytest
from sqlalchemy import text
from sqlalchemy.exc import OperationalError

from madoguchi import extensions
from madoguchi.extensions import begin_write, db
from tests.conftest import ON_POSTGRES

pytestmark = pytest.mark.skipif(ON_POSTGRES, reason="SQLite's write lock")


def _hold_write_lock(path: str, seconds: float, taken: threading.Event) -> threading.Thread:
    def hold():
        other = sqlite3.connect(path, isolation_level=None)
        other.execute("BEGIN IMMEDIATE")
        taken.set()
        time.sleep(seconds)
        other.execute("COMMIT")
        other.close()

    thread = threading.Thread(target=hold)
    thread.start()
    return thread


def test_a_writer_gets_the_lock_soon_after_it_is_released(ctx):
    """The lock held elsewhere for 0.3 s: BEGIN IMMEDIATE waits for it, then gets it (well before the
    10 s limit) and the session writes. How soon after the release is a benchmark's question."""
    taken = threading.Event()
    holder = _hold_write_lock(db.engine.url.database, 0.3, taken)
    taken.wait(5)
    started = time.monotonic()
    begin_write()
    waited = time.monotonic() - started
    holder.join()
    assert 0.25 <= waited < extensions.WRITE_LOCK_WAIT_SECONDS / 2
    db.session.execute(text("CREATE TABLE IF NOT EXISTS lock_probe (x INTEGER)"))
    db.session.rollback()
    timeout = db.session.connection().exec_driver_sql("PRAGMA busy_timeout").scalar()
    assert timeout == int(extensions.WRITE_LOCK_WAIT_SECONDS * 1000)


def test_a_writer_gives_up_after_the_set_wait(ctx, monkeypatch):
    """Past WRITE_LOCK_WAIT_SECONDS the error is SQLite's own ("database is locked"), as with its
    busy handler, and the connection's busy timeout is restored."""
    monkeypatch.setattr(extensions, "WRITE_LOCK_WAIT_SECONDS", 0.2)
    taken = threading.Event()
    holder = _hold_write_lock(db.engine.url.database, 3.0, taken)
    taken.wait(5)
    started = time.monotonic()
    with pytest.raises(OperationalError, match="locked"):
        begin_write()
    assert time.monotonic() - started < 2.0  # gave up at its limit, not at the holder's release
    db.session.rollback()
    holder.join()
    timeout = db.session.connection().exec_driver_sql("PRAGMA busy_timeout").scalar()
    assert timeout == 200
    db.session.rollback()


def test_the_busy_handler_is_switched_only_when_the_kind_of_transaction_changes(ctx, sqlite_trace):
    """R9.2: write transactions in a row switch SQLite's busy handler off once (each switch was a
    statement, one of them under the write lock); the next transaction that only reads gets it back
    before its BEGIN, as a reader needs it."""
    for _ in range(3):
        begin_write()
        db.session.execute(text("CREATE TABLE IF NOT EXISTS lock_probe (x INTEGER)"))
        db.session.commit()
    assert sqlite_trace.count("PRAGMA busy_timeout=0") == 1
    assert sqlite_trace.count("BEGIN IMMEDIATE") == 3
    sqlite_trace.clear()
    timeout = db.session.connection().exec_driver_sql("PRAGMA busy_timeout").scalar()
    assert timeout == int(extensions.WRITE_LOCK_WAIT_SECONDS * 1000)
    restore = f"PRAGMA busy_timeout={timeout}"
    assert sqlite_trace.index(restore) < sqlite_trace.index("BEGIN")
    db.session.rollback()
