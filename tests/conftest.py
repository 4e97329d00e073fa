"""Fixtures: a real database per test (SQLite file, or PostgreSQL when TEST_DATABASE_URL is set),
real keys in a temporary key file, and an outbox folder per test.

SQLite: the schema is built once by the Alembic migrations into a template file and copied for
each test. PostgreSQL: built once per run by the migrations, emptied (TRUNCATE) after each test.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
from contextlib import contextmanager
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient
from flask_migrate import upgrade
from sqlalchemy import create_engine, event, text

from madoguchi.crypto import KeyRing
from madoguchi.extensions import db


class ClosingClient(FlaskClient):
    """A test client that closes each response as a WSGI server does, so work the app schedules
    for after the response (sending the request's messages) has run when the call returns."""

    def open(self, *args, **kwargs):
        kwargs.setdefault("buffered", True)
        return super().open(*args, **kwargs)


Flask.test_client_class = ClosingClient

ROOT = Path(__file__).resolve().parent.parent
MIGRATIONS = str(ROOT / "migrations")
POSTGRES_URL = os.environ.get("TEST_DATABASE_URL", "")
ON_POSTGRES = POSTGRES_URL.startswith("postgresql")


def base_overrides(tmp: Path, database_url: str) -> dict:
    key_file = tmp / "keys" / "keys.json"
    if not key_file.exists():
        KeyRing.generate().save(key_file)
    return {
        "TESTING": True,
        "SECRET_KEY": "test-secret-key",
        "SQLALCHEMY_DATABASE_URI": database_url,
        "MADOGUCHI_KEY_FILE": str(key_file),
        "MADOGUCHI_KEYS": "",
        "MAIL_BACKEND": "outbox",
        "MAIL_OUTBOX_DIR": str(tmp / "outbox"),
        # SMS go to a per-test folder; Twilio settings from the environment never reach a test.
        "SMS_OUTBOX_DIR": str(tmp / "sms_outbox"),
        "FAX_INBOX_DIR": str(tmp / "fax_inbox"),
        "FAX_STORE_DIR": str(tmp / "fax_store"),
        "RECORDINGS_LOCAL_DIR": "",
        "EXPORT_SPOOL_DIR": str(tmp / "exports"),
        "TWILIO_ACCOUNT_SID": "",
        "TWILIO_AUTH_TOKEN": "",
        "TWILIO_FROM_NUMBER": "",
        "WTF_CSRF_ENABLED": False,
        "RATELIMIT_ENABLED": False,
    }


@pytest.fixture(scope="session")
def schema_url(tmp_path_factory) -> str:
    """A database at the migrations' head, built once for the run."""
    from reservation import create_app

    if ON_POSTGRES:
        engine = create_engine(POSTGRES_URL)
        with engine.begin() as conn:
            conn.execute(text("DROP SCHEMA public CASCADE"))
            conn.execute(text("CREATE SCHEMA public"))
        engine.dispose()
        url = POSTGRES_URL
    else:
        url = f"sqlite:///{tmp_path_factory.mktemp('schema') / 'template.sqlite3'}"
    app = create_app(base_overrides(tmp_path_factory.mktemp("schema-keys"), url))
    with app.app_context():
        upgrade(directory=MIGRATIONS)
        db.engine.dispose()
    return url


@pytest.fixture
def database_url(schema_url, tmp_path) -> str:
    if ON_POSTGRES:
        yield schema_url
        engine = create_engine(schema_url)
        with engine.begin() as conn:
            tables = [t.name for t in reversed(db.metadata.sorted_tables)]
            conn.execute(text(f"TRUNCATE {', '.join(tables)} RESTART IDENTITY CASCADE"))
        engine.dispose()
    else:
        path = tmp_path / "madoguchi.sqlite3"
        shutil.copy(schema_url.removeprefix("sqlite:///"), path)
        yield f"sqlite:///{path}"


@pytest.fixture
def overrides(tmp_path, database_url) -> dict:
    """Tests may change these before the ``app`` fixture is first used."""
    return base_overrides(tmp_path, database_url)


@contextmanager
def built(create_app, overrides: dict):
    """An app built with these settings; its connections are closed when the test is done."""
    app = create_app(overrides)
    try:
        yield app
    finally:
        with app.app_context():
            db.session.remove()
            db.engine.dispose()


@pytest.fixture
def app(overrides):
    from reservation import create_app

    with built(create_app, overrides) as app:
        yield app


@pytest.fixture
def ctx(app):
    """An app context for service-level tests; commits are explicit."""
    with app.app_context():
        yield app
        db.session.rollback()


@pytest.fixture
def sqlite_trace(app):
    """Every statement SQLite runs, BEGIN and COMMIT included, with its values inlined (the driver's
    own trace: it also sees statements run on the driver, ``madoguchi.prepared``)."""
    lines: list[str] = []
    with app.app_context():
        engine = db.engine

    def on_connect(dbapi_connection, _record):
        if isinstance(dbapi_connection, sqlite3.Connection):
            dbapi_connection.set_trace_callback(lines.append)

    event.listen(engine, "connect", on_connect)
    engine.dispose()  # new connections get the trace
    yield lines
    event.remove(engine, "connect", on_connect)
    engine.dispose()


def data_statements(trace: list[str]) -> list[str]:
    """The statements of a ``sqlite_trace`` on data: the pool's liveness check and the pragmas set
    around BEGIN (busy timeout, query_only) left out."""
    return [line for line in trace if line != "SELECT 1" and not line.startswith("PRAGMA")]


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def outbox(tmp_path) -> Path:
    return tmp_path / "outbox"


@pytest.fixture
def fake_twilio():
    """A local fake of Twilio's REST API on 127.0.0.1 (tests/fakes/twilio_api.py). Point the app at
    it before ``app`` is created: ``overrides.update(fake_twilio.overrides())``."""
    from tests.fakes.twilio_api import FakeTwilio

    with FakeTwilio() as fake:
        yield fake
