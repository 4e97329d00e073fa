"""The back office (internal network): staff registry, access log and analysis, venue lists."""

from __future__ import annotations

from madoguchi.appbase import ready_to_serve
from staffweb import create_staff_app


def create_app(overrides: dict | None = None):
    from .views import bp

    settings = {"STAFF_HOME_ENDPOINT": "admin.home"}
    settings.update(overrides or {})
    app = create_staff_app(__name__, overrides=settings, blueprints=[bp])
    ready_to_serve(app, *TEMPLATES)
    return app


# What this app renders: its pages, the staff sign-in pages and the messages its changes send.
TEMPLATES = ("admin/", "staff/", "emails/", "sms/")
