"""Hardening of the back office (R9.3): production headers and cookies, CSRF, and error pages and
logs that never carry a resident's personal value."""

from __future__ import annotations

import io
import logging
import re

import pytest
from sqlalchemy import func, select

from madoguchi.extensions import db
from madoguchi.models import Applicant, StaffSession
from madoguchi.permissions import Role

from .conftest import COOKIE, location, seed_staff, seed_world, signed_in

MARKED = {
    "name": "漏洩検査太郎",
    "name_kana": "ロウエイケンサタロウ",
    "phone": "09099998888",
    "email": "leak-check@example.jp",
}


def _production(overrides, tmp_path) -> dict:
    overrides.update(
        MADOGUCHI_ENV="production",
        SECRET_KEY="production-secret-key-for-tests-0123456789",
        MADOGUCHI_KEY_FILE=overrides["MADOGUCHI_KEY_FILE"],  # under tmp_path: outside the app
    )
    assert str(tmp_path) in overrides["MADOGUCHI_KEY_FILE"]
    return overrides


def _set_cookie_headers(response, name: str) -> list[str]:
    return [h for h in response.headers.getlist("Set-Cookie") if h.startswith(f"{name}=")]


def _check_production_cookies_and_headers(app):
    person = seed_staff(app, (Role.OPERATOR.value,))
    client = app.test_client()
    first = client.post("/signin", data={"login_id": person.login_id, "password": person.password})
    assert first.status_code == 302
    [cookie] = _set_cookie_headers(first, COOKIE)
    attributes = {part.strip().split("=")[0].lower(): part.strip() for part in cookie.split(";")[1:]}
    assert "secure" in attributes, cookie
    assert "httponly" in attributes, cookie
    assert attributes.get("samesite") == "SameSite=Strict", cookie
    for response in (first, client.get("/signin")):
        assert response.headers["Strict-Transport-Security"].startswith("max-age=")
        assert "includeSubDomains" in response.headers["Strict-Transport-Security"]


def test_production_headers_and_cookie_with_the_environment_variable(
    overrides, tmp_path, make_admin_app, monkeypatch
):
    """R9.3: in production (MADOGUCHI_ENV set in the environment) responses carry HSTS and the staff
    cookie is Secure, HttpOnly and SameSite=Strict."""
    monkeypatch.setenv("MADOGUCHI_ENV", "production")
    app = make_admin_app(**_production(overrides, tmp_path))
    assert app.config["SESSION_COOKIE_SECURE"] is True
    _check_production_cookies_and_headers(app)


def test_production_headers_and_cookie_with_overrides(overrides, tmp_path, make_admin_app, monkeypatch):
    """R9.3: MADOGUCHI_ENV=production given as configuration (overrides) gives the same secure cookie."""
    monkeypatch.delenv("MADOGUCHI_ENV", raising=False)
    app = make_admin_app(**_production(overrides, tmp_path))
    assert app.config["MADOGUCHI_ENV"] == "production"
    _check_production_cookies_and_headers(app)


def test_staff_pages_send_a_strict_content_security_policy(admin_app, client):
    """R9.3: staff pages (signed in or not) forbid inline scripts and styles, framing and caching."""
    person = seed_staff(admin_app, (Role.ADMINISTRATOR.value,))
    pages = [client.get("/signin")]
    signed_in(client, person)
    pages += [client.get(url) for url in ("/", "/staff", "/staff/new", "/account/password", "/staff/999999")]
    for response in pages:
        csp = response.headers["Content-Security-Policy"]
        assert "'unsafe-inline'" not in csp and "'unsafe-eval'" not in csp
        directives = dict(d.strip().split(" ", 1) for d in csp.split(";"))
        assert directives["script-src"] == "'self'" and directives["style-src"] == "'self'"
        assert directives["frame-ancestors"] == "'none'"
        assert response.headers["X-Frame-Options"] == "DENY"
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        assert response.headers["Cache-Control"] == "no-store"
        assert "Strict-Transport-Security" not in response.headers  # development: no HSTS
    assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", pages[1].get_data(as_text=True))
    assert " style=" not in pages[1].get_data(as_text=True)


def test_an_upload_over_the_staff_apps_limit_is_refused_before_it_is_read(overrides, make_admin_app):
    """R9.3, standard 3: a request body over MAX_CONTENT_LENGTH (40 MB by default, above the largest
    roster upload) is refused with 413 and a Japanese page before anything is parsed or spooled to
    disk, even before sign-in; within the limit the same form is answered as usual."""
    assert make_admin_app().config["MAX_CONTENT_LENGTH"] == 40 * 1024 * 1024
    overrides["MAX_CONTENT_LENGTH"] = 8 * 1024
    app = make_admin_app()
    client = app.test_client()
    big = client.post("/signin", data={"login_id": "x", "file": (io.BytesIO(b"\0" * 9000), "big.bin")})
    assert big.status_code == 413
    assert "送信された内容が大きすぎます。" in big.get_data(as_text=True)
    small = client.post("/signin", data={"login_id": "x", "password": "y"})
    assert small.status_code == 401  # the sign-in form again: wrong ID or password


def test_signin_without_a_csrf_token_is_refused(overrides, make_admin_app):
    """R9.3: with CSRF protection on, a POST to /signin without a token is refused (400) and no
    session is created; the same POST with the form's token passes."""
    overrides["WTF_CSRF_ENABLED"] = True
    app = make_admin_app()
    person = seed_staff(app)
    client = app.test_client()
    refused = client.post("/signin", data={"login_id": person.login_id, "password": person.password})
    assert refused.status_code == 400
    assert client.get_cookie(COOKIE) is None
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(StaffSession)) == 0

    page = client.get("/signin").get_data(as_text=True)
    token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page).group(1)
    forged = client.post(
        "/signin", data={"login_id": person.login_id, "password": person.password, "csrf_token": "x" + token}
    )
    assert forged.status_code == 400
    accepted = client.post(
        "/signin", data={"login_id": person.login_id, "password": person.password, "csrf_token": token}
    )
    assert accepted.status_code == 302 and location(accepted) == "/signin/code"
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(StaffSession)) == 1


# ---- no personal values in error pages or logs -----------------------------------------------------
def _markers() -> set[str]:
    return {MARKED["name"], MARKED["name_kana"], MARKED["phone"], "090-9999-8888", MARKED["email"]}


def _log_texts(caplog) -> list[str]:
    texts = []
    for record in caplog.records:
        texts.append(record.getMessage())
        texts.append(repr(record.args))
        texts.append(record.exc_text or "")
        if record.exc_info:
            texts.append(logging.Formatter().formatException(record.exc_info))
    texts.append(caplog.text)
    return texts


def _assert_clean(texts, where: str) -> None:
    for text in texts:
        for marker in _markers():
            assert marker not in text, f"{marker!r} found in {where}"


@pytest.fixture
def marked_world(admin_app):
    return seed_world(admin_app, applicant_b=MARKED)


def test_error_pages_and_logs_hold_no_personal_values(admin_app, marked_world, caplog):
    """R9.3: 404s on unknown ids and 403s (wrong role, other venue) show generic pages; neither the
    pages nor any log record at DEBUG carries the applicant's values."""
    caplog.set_level(logging.DEBUG)
    world = marked_world
    assert world.applicant_b["name"] == MARKED["name"]
    venue_staff = seed_staff(admin_app, (Role.VENUE_STAFF.value,), venue_id=world.venue_a)
    auditor = seed_staff(admin_app, (Role.AUDITOR.value,))
    bodies = []

    anonymous = admin_app.test_client()
    bodies.append(anonymous.get(f"/bookings/{world.booking_b}"))

    venue = admin_app.test_client()
    signed_in(venue, venue_staff)
    for url, status in (
        (f"/bookings/{world.booking_b}", 404),  # another venue's booking
        (f"/venues/{world.venue_b}/bookings", 404),
        ("/bookings/no-such-booking", 404),
        (f"/bookings/{world.booking_b}{MARKED['phone']}", 404),
        ("/venues/999999/bookings", 404),
        ("/staff/999999", 403),
        ("/no/such/page", 404),
    ):
        response = venue.get(url)
        assert response.status_code == status, url
        bodies.append(response)
    wrong_method = venue.post(f"/bookings/{world.booking_b}")
    assert wrong_method.status_code == 405
    bodies.append(wrong_method)

    audit = admin_app.test_client()
    signed_in(audit, auditor)
    for url in (f"/bookings/{world.booking_b}", f"/venues/{world.venue_b}/bookings"):
        response = audit.get(url)
        assert response.status_code == 403, url
        bodies.append(response)
    assert "このページを表示する権限がありません。" in bodies[-1].get_data(as_text=True)

    _assert_clean([b.get_data(as_text=True) for b in bodies], "an error page")
    _assert_clean(_log_texts(caplog), "the log")


@pytest.fixture
def failing_app(make_admin_app):
    """A fresh back office with a route that loads the applicant and raises with their name."""
    app = make_admin_app()

    def explode(applicant_id):
        applicant = db.session.get(Applicant, applicant_id)
        raise RuntimeError(applicant.name)

    explode.public = True
    app.add_url_rule("/explode/<applicant_id>", "explode", explode)
    return app


def _marked_applicant_id(app) -> str:
    seed_world(app, applicant_b=MARKED)
    with app.app_context():
        for applicant in db.session.scalars(select(Applicant)):
            if applicant.name == MARKED["name"]:
                return applicant.id
    raise AssertionError("the marked applicant was not seeded")


def test_a_500_page_holds_no_personal_value(failing_app, caplog):
    """R9.3: an unexpected error shows the generic 500 page, without the exception's message."""
    caplog.set_level(logging.DEBUG)
    applicant_id = _marked_applicant_id(failing_app)
    response = failing_app.test_client().get(f"/explode/{applicant_id}")
    assert response.status_code == 500
    body = response.get_data(as_text=True)
    assert "システムで問題が発生しました" in body
    _assert_clean([body, str(response.headers)], "the 500 page")
    assert any("unhandled RuntimeError" in r.getMessage() for r in caplog.records)


def test_a_500_writes_no_personal_value_to_the_log(failing_app, caplog):
    """R9.3: the log of an unexpected error names the type and the route, never the message."""
    caplog.set_level(logging.DEBUG)
    applicant_id = _marked_applicant_id(failing_app)
    assert failing_app.test_client().get(f"/explode/{applicant_id}").status_code == 500
    assert any("unhandled RuntimeError" in r.getMessage() for r in caplog.records)
    _assert_clean(_log_texts(caplog), "the log")
