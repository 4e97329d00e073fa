"""The residents' app (public). It registers no staff route."""

from __future__ import annotations

from madoguchi.appbase import create_base_app


def create_app(overrides: dict | None = None):
    from .views import bp

    return create_base_app(__name__, overrides=overrides, blueprints=[bp])
