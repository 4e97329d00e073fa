"""The back office (internal network): staff registry, access log and analysis, venue lists."""

from __future__ import annotations

from staffweb import create_staff_app


def create_app(overrides: dict | None = None):
    from .views import bp

    settings = {"STAFF_HOME_ENDPOINT": "admin.home"}
    settings.update(overrides or {})
    return create_staff_app(__name__, overrides=settings, blueprints=[bp])
