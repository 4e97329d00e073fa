"""Deny by default (DESIGN rule 6): every staff endpoint must declare its Permission with
``@requires``; the sign-in pages are marked ``@public``. Anything else is refused with 403 — so a
new route that forgets to declare is closed, and the route × role test names it."""

from __future__ import annotations

from urllib.parse import urlsplit

from flask import Flask, abort, g, redirect, request, url_for

from madoguchi import auth
from madoguchi.audit import AuditTag, record
from madoguchi.permissions import Permission, permissions_of

COOKIE = "madoguchi_staff"


def requires(permission: Permission):
    def decorate(view):
        view.required_permission = permission
        return view

    return decorate


def public(view):
    view.public = True
    return view


def background(view):
    """A request the page makes by itself (polling, event streams): it does not count as activity,
    so an unattended screen still times out (R7.1)."""
    view.background = True
    return view


def remote_addr() -> str:
    return request.remote_addr or ""


def safe_next(target: str | None) -> str | None:
    """Only same-site relative paths may be a redirect target after sign-in."""
    if not target:
        return None
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//"):
        return None
    return target


def can(permission: Permission) -> bool:
    staff = g.get("staff")
    return staff is not None and permission in permissions_of(staff.role_set)


def install_guard(app: Flask) -> None:
    @app.before_request
    def _guard():
        view = app.view_functions.get(request.endpoint) if request.endpoint else None
        g.staff_session = auth.load_session(
            request.cookies.get(COOKIE),
            remote_addr=remote_addr(),
            touch=not getattr(view, "background", False),
        )
        g.staff = g.staff_session.staff if g.staff_session and g.staff_session.mfa_passed else None
        if view is None or request.endpoint == "static":
            return None
        if getattr(view, "public", False):
            return None
        signed_in = g.staff_session is not None and g.staff_session.mfa_passed
        if not signed_in and getattr(view, "background", False):
            abort(401)  # a script asked: it shows "signed out" rather than following a redirect
        if g.staff_session is None:
            return redirect(url_for("auth.signin", next=request.full_path.rstrip("?")))
        if not g.staff_session.mfa_passed:
            return redirect(url_for("auth.second_factor"))
        permission = getattr(view, "required_permission", None)
        if permission is None or permission not in permissions_of(g.staff.role_set):
            record(
                AuditTag.ACCESS_DENIED,
                staff=g.staff,
                subject_type="endpoint",
                subject_id=request.endpoint,
                result="denied",
                remote_addr=remote_addr(),
            )
            abort(403)
        return None

    @app.context_processor
    def _staff_context():
        return {"current_staff": g.get("staff"), "can": can, "Permission": Permission}
