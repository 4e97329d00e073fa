"""Fixtures for the back office (R7, R9.3): the admin app on the shared per-test database, seeded
staff as plain values, and a ``signed_in`` helper that passes both sign-in steps.

Seeding opens its own app context and commits, so what the test client sees is what a second
browser would see. Nothing returned here is an ORM object.
"""

from __future__ import annotations

import pytest

from madoguchi.extensions import db
from tests.staffsupport import (  # noqa: F401 - re-exported for the back-office tests
    COOKIE,
    TOTP_STEP,
    Person,
    World,
    advance,
    audit_entries,
    clock,
    error_text,
    fresh_code,
    location,
    seed_staff,
    seed_world,
    set_now,
    sign_in_password,
    signed_in,
)


def _dispose(app) -> None:
    with app.app_context():
        db.session.remove()
        db.engine.dispose()


@pytest.fixture
def make_admin_app(overrides):
    """Build back-office apps on this test's database; change ``overrides`` before the first call."""
    from admin import create_app

    built = []

    def build(**extra):
        app = create_app({**overrides, **extra})
        built.append(app)
        return app

    yield build
    for app in built:
        _dispose(app)


@pytest.fixture
def admin_app(make_admin_app):
    return make_admin_app()


@pytest.fixture
def client(admin_app):
    return admin_app.test_client()
