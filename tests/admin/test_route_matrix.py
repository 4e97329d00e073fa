"""Route × role matrix for the back office (R7.2): every rule of the URL map, every method it
allows, anonymous and each role alone — deny by default, venue scopes, no personal data for auditors."""

from __future__ import annotations

import pytest
from flask import url_for
from werkzeug.routing import IntegerConverter

from madoguchi.permissions import Permission, Role, permissions_of

from .conftest import audit_entries, location, seed_staff, seed_world, signed_in

METHODS = ("GET", "POST")


def _rules(app):
    return sorted(
        (r for r in app.url_map.iter_rules() if r.endpoint != "static"),
        key=lambda r: (r.rule, r.endpoint),
    )


def _view(app, rule):
    return app.view_functions[rule.endpoint]


def _is_public(app, rule) -> bool:
    return bool(getattr(_view(app, rule), "public", False))


def _url(app, rule, world) -> str:
    """The rule filled with real ids: staff_id → an existing staff member (not the one signed in),
    venue_id → venue A, booking_id → the booking at venue A."""
    values = {}
    for name in rule.arguments:
        if name == "venue_id":
            values[name] = world.venue_a
        elif name == "booking_id":
            values[name] = world.booking_a
        elif name == "staff_id" or isinstance(rule._converters[name], IntegerConverter):
            values[name] = world.target.id
        else:
            values[name] = world.booking_a
    with app.test_request_context():
        return url_for(rule.endpoint, **values)


def _cases(app, world):
    for rule in _rules(app):
        for method in METHODS:
            if method in rule.methods:
                yield rule, method, _url(app, rule, world)


@pytest.fixture
def world(admin_app):
    return seed_world(admin_app)


def test_the_matrix_covers_the_back_office(admin_app):
    """R7.2: the enumeration really sees the routes (a broken enumeration would prove nothing)."""
    endpoints = {r.endpoint for r in _rules(admin_app)}
    assert {
        "auth.signin",
        "auth.second_factor",
        "auth.enrol",
        "auth.signout",
        "auth.change_password",
        "admin.home",
        "admin.staff_list",
        "admin.staff_print",
        "admin.staff_new",
        "admin.staff_edit",
        "admin.staff_reset_mfa",
        "admin.audit_log",
        "admin.audit_analysis",
        "admin.audit_verify",
        "admin.venue_bookings",
        "admin.booking_detail",
    } <= endpoints


def test_anonymous_is_sent_to_signin_everywhere(admin_app, client, world):
    """R7.2: without a session, every non-public rule and method redirects to /signin."""
    wrong = []
    checked = 0
    for rule, method, url in _cases(admin_app, world):
        if _is_public(admin_app, rule):
            continue
        response = client.open(url, method=method)
        checked += 1
        if response.status_code != 302 or not location(response).startswith("/signin"):
            wrong.append(f"{method} {url} ({rule.endpoint}) → {response.status_code} {location(response)}")
    assert checked >= 14
    assert not wrong, "anonymous requests not sent to sign-in:\n" + "\n".join(wrong)


@pytest.mark.parametrize("role", list(Role), ids=[r.value for r in Role])
def test_each_role_alone_gets_exactly_its_permissions(admin_app, world, role):
    """R7.2: a staff member with only ``role`` gets 403 exactly where permissions_of({role}) lacks
    the view's required_permission, and is let through (200/302/404) everywhere else."""
    venue_id = world.venue_a if role == Role.VENUE_STAFF else None
    person = seed_staff(admin_app, (role.value,), venue_id=venue_id)
    granted = permissions_of({role})
    client = admin_app.test_client()
    signed_in(client, person)
    wrong = []
    cases = list(_cases(admin_app, world))
    # Sign-out last: it ends the session the other requests use.
    cases.sort(key=lambda c: c[0].endpoint == "auth.signout")
    for rule, method, url in cases:
        response = client.open(url, method=method)
        view = _view(admin_app, rule)
        public = getattr(view, "public", False)
        expected_denied = not public and view.required_permission not in granted
        status = response.status_code
        if expected_denied and status != 403:
            wrong.append(f"{method} {url} ({rule.endpoint}) should be 403, got {status}")
        if not expected_denied and status not in (200, 302, 404):
            wrong.append(f"{method} {url} ({rule.endpoint}) should be allowed, got {status}")
        lost = status == 302 and location(response).split("?")[0] == "/signin"
        if lost and rule.endpoint not in ("auth.signout", "auth.second_factor", "auth.enrol"):
            wrong.append(f"{method} {url} ({rule.endpoint}) lost the session: {location(response)}")
    assert not wrong, f"role {role.value}:\n" + "\n".join(wrong)
    denied = audit_entries(admin_app, "access:denied")
    assert all(e["staff_id"] == person.id and e["result"] == "denied" for e in denied)


def test_every_non_public_view_declares_a_permission(admin_app):
    """R7.2: deny by default starts with a declaration on every view — a new route without one fails here."""
    missing = [
        endpoint
        for endpoint, view in admin_app.view_functions.items()
        if endpoint != "static"
        and not getattr(view, "public", False)
        and not isinstance(getattr(view, "required_permission", None), Permission)
    ]
    assert not missing, f"views without @requires(...): {missing}"


def test_the_guard_refuses_a_view_that_declares_nothing(make_admin_app):
    """R7.2: a route added without a declaration is refused (403) even to an administrator, and the
    refusal is audited."""
    app = make_admin_app()
    app.add_url_rule("/undeclared", "undeclared", lambda: "x")
    admin = seed_staff(app, (Role.ADMINISTRATOR.value,))
    client = app.test_client()
    signed_in(client, admin)
    assert client.get("/").status_code == 200
    response = client.get("/undeclared")
    assert response.status_code == 403
    assert response.get_data(as_text=True) != "x"
    denied = audit_entries(app, "access:denied")
    assert [(e["staff_id"], e["subject_id"]) for e in denied] == [(admin.id, "undeclared")]
    # Every role at once does not help either.
    everyone = seed_staff(app, tuple(r.value for r in Role), venue_id=None)
    other = app.test_client()
    signed_in(other, everyone)
    assert other.get("/undeclared").status_code == 403


def test_venue_staff_see_only_their_venue(admin_app, world):
    """R7.2: venue staff of venue A get 404 for venue B's list and booking, 200 for their own."""
    person = seed_staff(admin_app, (Role.VENUE_STAFF.value,), venue_id=world.venue_a)
    client = admin_app.test_client()
    signed_in(client, person)
    assert client.get(f"/venues/{world.venue_a}/bookings").status_code == 200
    assert client.get(f"/bookings/{world.booking_a}").status_code == 200
    other_list = client.get(f"/venues/{world.venue_b}/bookings")
    other_booking = client.get(f"/bookings/{world.booking_b}")
    assert other_list.status_code == 404
    assert other_booking.status_code == 404
    body = other_booking.get_data(as_text=True) + other_list.get_data(as_text=True)
    assert world.applicant_b["number"] not in body
    viewed = audit_entries(admin_app, "booking:viewed")
    assert [(e["subject_id"], e["result"]) for e in viewed] == [
        (world.booking_a, "ok"),
        (world.booking_b, "denied"),
    ]


def test_venue_staff_without_a_venue_see_no_venue(admin_app, world):
    """R7.2: a venue-scoped account that has lost its venue sees nothing rather than everything."""
    person = seed_staff(admin_app, (Role.VENUE_STAFF.value,), venue_id=None)
    client = admin_app.test_client()
    signed_in(client, person)
    assert client.get(f"/venues/{world.venue_a}/bookings").status_code == 404
    assert client.get(f"/bookings/{world.booking_a}").status_code == 404


def test_auditor_sees_no_personal_data(admin_app, world):
    """R7.2: an auditor is refused the bookings (403), so sees no applicant's values."""
    person = seed_staff(admin_app, (Role.AUDITOR.value,))
    client = admin_app.test_client()
    signed_in(client, person)
    for url in (f"/bookings/{world.booking_a}", f"/venues/{world.venue_a}/bookings"):
        response = client.get(url)
        assert response.status_code == 403, url
        body = response.get_data(as_text=True)
        assert world.applicant_a["name"] not in body
        assert world.applicant_a["number"] not in body
    assert client.get("/audit").status_code == 200
