"""The ceiling of this machine for this stack (R9.2 benchmark): a minimal Flask endpoint that books
with one raw conditional UPDATE + one INSERT in one transaction, through the DB-API driver the app
uses (sqlite3 / psycopg), with the same durability settings (SQLite WAL + synchronous=NORMAL) and
the same checkpoints (a background thread per worker).

Served by gunicorn with the same worker settings as the residents' app; ``burst.py`` divides our
booking throughput by this one's. It uses its own two tables (``ceiling_slots``,
``ceiling_bookings``) in the benchmark database, created by ``prepare``.
"""

from __future__ import annotations

import os
import secrets
import sqlite3
from contextlib import contextmanager
from datetime import UTC, datetime

from flask import Flask, request

_connection = None


def _url() -> str:
    return os.environ["DATABASE_URL"]


def _connect():
    url = _url()
    if url.startswith("sqlite:///"):
        conn = sqlite3.connect(url.removeprefix("sqlite:///"), isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute("PRAGMA busy_timeout=10000")
        _checkpoint_like_the_app(conn, url.removeprefix("sqlite:///"))
        return conn
    import psycopg

    return psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://"))


def _checkpoint_like_the_app(conn, path: str) -> None:
    """The app's WAL checkpoints run in a background thread of each worker (madoguchi/checkpoints.py):
    the ceiling does the same, so the ratio compares request paths, not checkpoint placement."""
    every = float(os.environ.get("MADOGUCHI_SQLITE_CHECKPOINT_SECONDS", "1"))
    if every <= 0:
        return
    from madoguchi.checkpoints import FALLBACK_PAGES, Checkpointer

    conn.execute(f"PRAGMA wal_autocheckpoint={FALLBACK_PAGES}")
    Checkpointer(path, every).start()


def _conn():
    global _connection
    if _connection is None:
        _connection = _connect()
    return _connection


def _statements(mark: str) -> tuple[str, str]:
    # Only the driver's placeholder is formatted in; the values are bound parameters.
    return (
        f"UPDATE ceiling_slots SET taken = taken + 1 WHERE id = {mark} AND taken < capacity",  # noqa: S608
        f"INSERT INTO ceiling_bookings (id, slot_id, created_at) VALUES ({mark}, {mark}, {mark})",  # noqa: S608
    )


# The same two statements in each driver's parameter style, built once.
_SQLITE, _PSYCOPG = _statements("?"), _statements("%s")


@contextmanager
def _write_transaction(conn):
    """SQLite: BEGIN IMMEDIATE, as the app's write transactions; psycopg: its own transaction."""
    if not isinstance(conn, sqlite3.Connection):
        with conn.transaction():
            yield
        return
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


def book(slot_id: int) -> bool:
    conn = _conn()
    take, insert = _SQLITE if isinstance(conn, sqlite3.Connection) else _PSYCOPG
    with _write_transaction(conn):
        taken = conn.execute(take, (slot_id,)).rowcount
        if taken:
            conn.execute(insert, (secrets.token_hex(16), slot_id, datetime.now(UTC).isoformat()))
    return bool(taken)


def prepare(slots: int = 1000, capacity: int = 1_000_000) -> None:
    """Create (or reset) the ceiling's tables."""
    conn = _connect()
    statements = [
        "DROP TABLE IF EXISTS ceiling_bookings",
        "DROP TABLE IF EXISTS ceiling_slots",
        "CREATE TABLE ceiling_slots (id INTEGER PRIMARY KEY, capacity INTEGER NOT NULL, taken INTEGER NOT NULL,"
        " CHECK (taken <= capacity))",
        "CREATE TABLE ceiling_bookings (id VARCHAR(32) PRIMARY KEY, slot_id INTEGER NOT NULL"
        " REFERENCES ceiling_slots (id), created_at VARCHAR(40) NOT NULL)",
    ]
    if isinstance(conn, sqlite3.Connection):
        for statement in statements:
            conn.execute(statement)
        conn.executemany(
            "INSERT INTO ceiling_slots VALUES (?, ?, 0)", [(i, capacity) for i in range(1, slots + 1)]
        )
    else:
        with conn.transaction():
            for statement in statements:
                conn.execute(statement)
            with conn.cursor() as cur:
                cur.executemany(
                    "INSERT INTO ceiling_slots VALUES (%s, %s, 0)",
                    [(i, capacity) for i in range(1, slots + 1)],
                )
    conn.close()


def create_app() -> Flask:
    app = Flask(__name__)

    @app.post("/book")
    def _book():
        slot = request.form.get("slot_id", "")
        if not slot.isdigit():
            return "bad slot", 400
        return ("booked", 200) if book(int(slot)) else ("full", 409)

    @app.get("/static/css/site.css")
    def _ready():
        return "ok"

    return app
