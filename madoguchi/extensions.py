"""Flask extensions, created once and bound by ``create_base_app``."""

from __future__ import annotations

import functools
import hmac
import random
import select
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from flask import current_app, g, has_request_context, request, session
from flask_babel import Babel
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address
from flask_migrate import Migrate
from flask_sqlalchemy import SQLAlchemy
from flask_wtf.csrf import CSRFProtect, same_origin
from itsdangerous import BadData
from sqlalchemy import MetaData, event
from sqlalchemy.engine import Dialect, Engine
from sqlalchemy.exc import DisconnectionError, OperationalError
from sqlalchemy.orm import Session
from sqlalchemy.pool import Pool, PoolProxiedConnection

from .prepared import raise_driver_error
from .signing import QuickTimedSerializer

# Named constraints so Alembic migrations are the same on SQLite and PostgreSQL.
NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class QuickCSRFProtect(CSRFProtect):
    """Flask-WTF's CSRF protection, answering a valid token without building a serializer per request.

    Every POST is checked before its view (a tenth of the residents' confirmation, R9.2). A request
    whose form token is valid by each of Flask-WTF's rules — a checked method, the token of the
    session, signed and within ``WTF_CSRF_TIME_LIMIT``, the same-origin referrer over HTTPS when
    strict — passes here (``signing.QuickTimedSerializer``); every other request, exempt views
    included, is decided by Flask-WTF itself, with its own errors.
    """

    def protect(self, apply_exemptions=False):
        if self._valid_form_token():
            g.csrf_valid = True  # as Flask-WTF marks a checked request
            return
        super().protect(apply_exemptions)

    @staticmethod
    def _valid_form_token() -> bool:
        # The app and the request looked up once (each use of Flask's proxies is a look-up, ~1 µs).
        app, req = current_app._get_current_object(), request._get_current_object()
        config = app.config
        if req.method not in config["WTF_CSRF_METHODS"]:
            return False
        name = config["WTF_CSRF_FIELD_NAME"]
        token, expected = req.form.get(name), session.get(name)
        if not token or not expected:
            return False
        if req.is_secure and config["WTF_CSRF_SSL_STRICT"]:
            referrer = req.referrer
            if not referrer or not same_origin(referrer, f"https://{req.host}/"):
                return False
        secret = config.get("WTF_CSRF_SECRET_KEY") or app.secret_key
        try:
            signed = _csrf_reader(secret).loads(token, max_age=config["WTF_CSRF_TIME_LIMIT"])
        except BadData:
            return False
        return isinstance(signed, str) and isinstance(expected, str) and hmac.compare_digest(expected, signed)


@functools.lru_cache(maxsize=4)
def _csrf_reader(secret) -> QuickTimedSerializer:
    return QuickTimedSerializer(secret, salt="wtf-csrf-token")  # Flask-WTF's signing of its tokens


db = SQLAlchemy(metadata=MetaData(naming_convention=NAMING))
migrate = Migrate()
csrf = QuickCSRFProtect()
babel = Babel()
limiter = Limiter(key_func=get_remote_address, default_limits=[])


def rate_limited(limit, **options):
    """``limiter.limit`` for one view, marked ``rate_limited``: only such views run the limiter's
    response hook, which adds their X-RateLimit headers (``appbase._limits_where_decorated_only``)."""

    def decorate(view):
        limited = limiter.limit(limit, **options)(view)
        limited.rate_limited = True
        return limited

    return decorate


@event.listens_for(Pool, "checkin")
def _writable_again(dbapi_connection, record):
    """A connection goes back to the pool writable, whatever the request that used it did."""
    if record is not None and record.info.get("query_only"):
        dbapi_connection.execute("PRAGMA query_only=0")
        record.info["query_only"] = False


@event.listens_for(Pool, "checkout")
def _server_still_there(dbapi_connection, record, _proxy):
    """A pooled PostgreSQL connection the server has dropped is replaced before use (R9.1).

    Two checks, so that the hot path pays no round trip (R9.2):

    * A server that ends a connection (a restart, ``pg_terminate_backend``, an idle timeout, a
      failover that shuts the old primary down) sends its FATAL message and closes the socket, so an
      idle pooled connection with anything to read, or a hung-up socket, is one it has dropped.
      Asking the socket costs one ``poll`` system call, every checkout.
    * A server lost without a word (its host dead, its address moved to a new primary) leaves the
      socket quiet until something is sent; the reply is then a reset. Such outages last seconds,
      so a connection idle for more than ``PING_AFTER_IDLE_SECONDS`` is also asked ``SELECT 1``
      (as SQLAlchemy's pre-ping asked at every checkout: one round trip more for every request and
      every booking, measured in docs/capacity.md). Connections in steady use are not.

    Either way the pool then connects afresh (``DisconnectionError``; up to three tries).
    """
    pgconn = getattr(dbapi_connection, "pgconn", None)
    if pgconn is None:  # SQLite: a file cannot drop the connection
        return
    if pgconn.status != _CONNECTION_OK or _has_spoken(pgconn.socket):
        raise DisconnectionError("the database server closed this pooled connection")
    idle_since = record.info.get(_IDLE_SINCE)
    long_idle = idle_since is not None and time.monotonic() - idle_since > PING_AFTER_IDLE_SECONDS
    if long_idle and not _answers(pgconn):
        raise DisconnectionError("the database server did not answer on this pooled connection")


@event.listens_for(Pool, "checkin")
def _idle_from_now(_dbapi_connection, record):
    if record is not None:
        record.info[_IDLE_SINCE] = time.monotonic()


# A pooled connection idle longer than this is pinged at checkout (``_server_still_there``).
PING_AFTER_IDLE_SECONDS = 1.0
_IDLE_SINCE = "madoguchi.idle_since"  # connection info key: when it went back to the pool
_CONNECTION_OK = 0  # libpq's CONNECTION_OK (psycopg.pq.ConnStatus.OK), without importing psycopg here
_TUPLES_OK = 2  # libpq's PGRES_TUPLES_OK (psycopg.pq.ExecStatus.TUPLES_OK)


def _has_spoken(fd: int) -> bool:
    """Anything to read on an idle connection's socket, or the peer gone, without waiting."""
    poller = select.poll()
    poller.register(fd, select.POLLIN)  # POLLHUP and POLLERR are reported whatever is asked
    return bool(poller.poll(0))


def _answers(pgconn) -> bool:
    """``SELECT 1`` through libpq itself (PQexec): answered, on a connection that is idle before and
    after, outside psycopg's transaction bookkeeping. Any failure means the connection is unusable."""
    try:
        return pgconn.exec_(b"SELECT 1").status == _TUPLES_OK
    except Exception:  # noqa: BLE001 - whatever the driver raises, the connection is not usable
        return False


# Execution option that asks for a write transaction (see _sqlite_begin).
WRITE = {"madoguchi_write": True}
# Session.info key: the session reads only (True), or writes (False), whatever its request's
# sessions start as (``begin_read_only``); see ``_reads_only``.
_READ_ONLY = "madoguchi.read_only"
# Session.info key: the writes a read-only request has put off until its end (``defer_write``).
_DEFERRED = "madoguchi.deferred_writes"


@event.listens_for(Engine, "connect")
def _sqlite_pragmas(dbapi_connection, _record):
    """WAL + NORMAL: survives an application crash; a power cut may lose the last commits (README)."""
    if dbapi_connection.__class__.__module__.startswith("sqlite3"):
        # Let SQLAlchemy's "begin" event emit BEGIN itself: pysqlite's own implicit BEGIN comes
        # after the first SELECT and lets a read-then-write transaction fail with "database is locked".
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(_busy_timeout_pragma())
        # Deleted rows are overwritten with zeros, not left in free pages (R8.1: "cannot be read
        # again"); the purge also truncates the WAL. See docs/compliance.md.
        cursor.execute("PRAGMA secure_delete=ON")
        cursor.close()


@event.listens_for(Engine, "begin")
def _sqlite_begin(conn):
    """On SQLite a transaction that will write takes the write lock at BEGIN (BEGIN IMMEDIATE).

    Requests that change data (and CLI jobs) ask for it with ``begin_write``; everything else reads
    under a plain deferred BEGIN, so readers never queue behind writers.
    """
    if conn.dialect.name != "sqlite":
        return
    # Straight to the driver (pysqlite in autocommit mode): this runs at the start of every
    # transaction, and the statement needs nothing of SQLAlchemy's execution machinery (R9.2).
    driver = conn.connection.driver_connection
    info = conn.connection.info
    if info.get("query_only"):
        # Left by a read-only session (``begin_read_only``) within the same checkout.
        driver.execute("PRAGMA query_only=0")
        info["query_only"] = False
    if conn.get_execution_options().get("madoguchi_write"):
        begin_immediate(driver, info)
    else:
        _busy_handler_back(driver, info)
        driver.execute("BEGIN")


@event.listens_for(Session, "after_begin")
def _reads_only(session, _transaction, connection):
    """A read-only session's transaction: SQLite itself refuses any write (see ``begin_read_only``).
    Set when the transaction really begins, so a request that never reads before its write lock
    (the booking's confirmation) pays nothing for it."""
    if connection.dialect.name == "sqlite" and _is_read_only(session):
        connection.connection.driver_connection.execute("PRAGMA query_only=1")
        connection.connection.info["query_only"] = True


def _is_read_only(session) -> bool:
    marked = session.info.get(_READ_ONLY)
    if marked is None and has_request_context():
        return g.get(_READ_ONLY, False)  # the request's sessions start read-only (``begin_read_only``)
    return bool(marked)


# How long a writer waits for SQLite's write lock before "database is locked" (as busy_timeout).
WRITE_LOCK_WAIT_SECONDS = 10.0


def _busy_timeout_pragma() -> str:
    # Read when used: tests shorten the wait.
    return f"PRAGMA busy_timeout={int(WRITE_LOCK_WAIT_SECONDS * 1000)}"


# Connection info key: SQLite's busy handler is off on this connection (``begin_immediate``).
_NO_BUSY_HANDLER = "madoguchi.no_busy_handler"


def begin_immediate(driver, info: dict) -> None:
    """BEGIN IMMEDIATE, waiting for the write lock in short, jittered steps.

    SQLite's own busy handler sleeps 1, 2, 5, 10 … 100 ms between tries, so under a burst a waiter
    sleeps through the moments the lock is free while newcomers take it: measured, a few requests
    waited seconds while the CPU idled. Here the handler is off and the wait is a loop of sleeps
    under a millisecond, first come roughly first served (R9.2).

    The handler stays off on the connection (``info`` is its pool record's) until a transaction
    that only reads begins on it and needs it back (``_busy_handler_back``): switching it off and
    on around every write was two statements per booking, the second one under the write lock.
    A writer holding the lock never waits, so its statements do not miss the handler.
    """
    if not info.get(_NO_BUSY_HANDLER):
        driver.execute("PRAGMA busy_timeout=0")
        info[_NO_BUSY_HANDLER] = True
    deadline = time.monotonic() + WRITE_LOCK_WAIT_SECONDS
    pause = 0.0002
    while True:
        try:
            driver.execute("BEGIN IMMEDIATE")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) and "busy" not in str(exc) or time.monotonic() > deadline:
                # As SQLAlchemy reports any driver error (and as the busy handler's timeout was).
                raise OperationalError("BEGIN IMMEDIATE", None, exc) from exc
        time.sleep(pause * random.uniform(0.5, 1.5))  # noqa: S311 - jitter, not a secret
        pause = min(pause * 1.5, 0.002)


def _busy_handler_back(driver, info: dict) -> None:
    """SQLite's busy handler on again for a transaction that only reads (a reader waits in the rare
    moments SQLite makes it, such as a checkpoint that truncates the log)."""
    if info.get(_NO_BUSY_HANDLER):
        driver.execute(_busy_timeout_pragma())
        info[_NO_BUSY_HANDLER] = False


def begin_write(session=None) -> None:
    """Start the session's transaction as a write transaction, unless one is already open."""
    session = session or db.session()
    session.info[_READ_ONLY] = False
    if not session.in_transaction():
        session.connection(execution_options=WRITE)


def begin_write_now(session=None) -> bool:
    """Start a write transaction for the statements that follow, ending a read-only one first.

    For the residents' hot paths (hold, confirm: R9.2). Taking SQLite's write lock at the start of
    the request would hold it while the request reads, validates and renders; upgrading a read
    transaction at its first write is refused at once by SQLite (SQLITE_BUSY_SNAPSHOT) whenever
    another writer committed in between. So the read part is committed (it wrote nothing) and the
    write part starts with BEGIN IMMEDIATE: whatever was read before must be re-checked by the
    conditional statements that follow, and objects loaded before are expired. A transaction that
    is already a write transaction, or has pending changes, is continued as it is.

    Returns True when it started a fresh transaction (which then holds nothing but what follows).
    """
    session = session or db.session()
    session.info[_READ_ONLY] = False
    if session.in_transaction():
        if session.new or session.dirty or session.deleted:
            return False
        if session.connection().get_execution_options().get("madoguchi_write"):
            return False
        session.commit()
    session.connection(execution_options=WRITE)
    return True


@dataclass(frozen=True)
class DriverLink:
    """A pooled driver connection in a transaction of its own, for ``prepared.DriverStatement``:
    the same ``dialect`` / ``connection`` / ``invalidate`` a SQLAlchemy ``Connection`` offers it."""

    dialect: Dialect
    connection: PoolProxiedConnection

    def invalidate(self, exc: BaseException) -> None:
        self.connection.invalidate(exc)


def nothing_begun(session=None) -> bool:
    """True while the session has no transaction (a ``writes_late`` request that has read nothing),
    or there is no session yet."""
    session = session or existing_session()
    return session is None or not session.in_transaction()


@contextmanager
def driver_transaction() -> Iterator[DriverLink]:
    """One short write transaction on a pooled driver connection, beside the ORM session, committed
    when the block ends and rolled back when it raises.

    For the residents' confirmation only (R9.2): a request that has begun nothing else writes its
    booking in one transaction of prepared statements; the session's transaction around them cost
    ~100 µs of CPU (begin, connection bookkeeping, commit, close) against ~30 µs here (measured
    in-process, ``benchmarks/hotpath.py``). The connection comes from the same pool (checked at checkout on
    PostgreSQL), SQLite's write lock is taken as everywhere else (``begin_immediate``), and a
    failed COMMIT is raised as SQLAlchemy raises it.
    """
    engine = db.engine
    pooled = engine.raw_connection()
    link = DriverLink(engine.dialect, pooled)
    driver = pooled.driver_connection
    try:
        if engine.dialect.name == "sqlite":
            begin_immediate(driver, pooled.info)
        # psycopg begins a transaction at the first statement.
        yield link
        try:
            driver.commit()
        except engine.dialect.loaded_dbapi.Error as exc:
            raise_driver_error(link, "COMMIT", exc)
    except BaseException:
        if pooled.is_valid:
            try:
                driver.rollback()
            except engine.dialect.loaded_dbapi.Error as exc:
                pooled.invalidate(exc)  # not handed out again; the first error is what is raised
        raise
    finally:
        pooled.close()  # back to the pool (which resets it)


# ---- requests that only read, then record that they did ----------------------------------------
def begin_read_only(session=None) -> None:
    """Begin a transaction that only reads until ``begin_write_now`` (SQLite: PRAGMA query_only), so
    a write before it fails at once instead of upgrading the read under a burst, where SQLite
    refuses the upgrade whenever another writer committed in between.

    Called in a request before it made a session (a ``writes_late`` view's request begins with
    none), it makes none: the request's sessions start read-only when made. Making one only to mark
    it, then closing it, cost the booking's confirmation ~10 µs, and it never needs one (R9.2).
    """
    if session is None and has_request_context() and not db.session.registry.has():
        setattr(g, _READ_ONLY, True)
        return
    (session or db.session()).info[_READ_ONLY] = True


def existing_session() -> Session | None:
    """The current session if one was made, else None (without making one)."""
    return db.session() if db.session.registry.has() else None


def read_then_write(session=None) -> None:
    """Run what follows as a read, and put its few writes off until it ends (``write_deferred``).

    For staff requests that show data and only record it (a search, a booking opened: its audit
    entry, the session's last-seen time): they read under a plain BEGIN and take SQLite's write
    lock (PostgreSQL: the audit chain's head row) only for the moment the deferred writes take,
    never while they read, check and render (R9.2, measured: a search held the lock 10 ms and
    waited up to 90 ms for it under a burst). The read part is read-only (``begin_read_only``).
    """
    session = session or db.session()
    session.info[_DEFERRED] = []
    begin_read_only(session)


def defer_write(write, session=None) -> None:
    """Run ``write()`` now inside the current write transaction, or at the end of a read-only
    request (in the order deferred) when the request reads under ``read_then_write``."""
    session = session or db.session()
    pending = session.info.get(_DEFERRED)
    if pending is None:
        write()
    else:
        pending.append(write)


def write_deferred(session=None) -> bool:
    """End a read-only request's reading: run its deferred writes in one short write transaction
    and commit them. Returns True when there was anything to write. Raises what the store raises
    (the caller must then not send what the request read: every staff read is audited first)."""
    session = session or db.session()
    if not session.info.get(_DEFERRED):
        forget_deferred(session)
        return False
    stop_deferring(session)
    session.commit()
    return True


def forget_deferred(session=None) -> None:
    """The request failed: what it put off is not written (its transaction is rolled back)."""
    (session or db.session()).info.pop(_DEFERRED, None)


def stop_deferring(session=None) -> None:
    """The request must write after all (a session that has to be ended, a refusal): the writes
    put off so far run now, and from here on it is an ordinary write transaction."""
    session = session or db.session()
    pending = session.info.pop(_DEFERRED, None)
    if session.in_transaction() and session.get_bind().dialect.name != "sqlite":
        # PostgreSQL: the read took no lock and a write cannot be refused for coming after it, so
        # the writes join the read's transaction. Ending it and beginning another cost a COMMIT, a
        # checkout and a BEGIN: up to a fifth of a search (benchmarks/searchpath.py).
        session.info[_READ_ONLY] = False
    else:
        begin_write_now(session)
    for write in pending or ():
        write()
