"""The staff web layer shared by the internal apps (call center, back office): sign-in with two
factors, server-side sessions, and the deny-by-default permission guard (R7.1, R7.2).

The residents' app never imports this package (import-linter checks it).
"""

from __future__ import annotations

from madoguchi.appbase import create_base_app

from .guard import install_guard


def create_staff_app(import_name: str, *, overrides: dict | None = None, blueprints=()):
    from .auth_views import bp as auth_bp

    settings = {"SESSION_COOKIE_SAMESITE": "Strict", "STAFF_APP": True}
    settings.update(overrides or {})
    app = create_base_app(
        import_name, overrides=settings, blueprints=[auth_bp, *blueprints], write_every_request=True
    )
    install_guard(app)
    return app
