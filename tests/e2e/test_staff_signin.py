"""Staff sign in to the back office in a real browser, with a real TOTP code computed here (R7.1).

The server runs in this process, so the test moves the app's clock by one TOTP step where a second
code is needed (a used step is refused: replay protection).
"""

from __future__ import annotations

import re
from datetime import timedelta

import pyotp
import pytest
from playwright.sync_api import expect
from sqlalchemy import select

from madoguchi import booking, dates
from madoguchi.extensions import db
from madoguchi.models import AuditEntry, Channel, Staff
from tests.e2e.conftest import allow_status, shot
from tests.factories import STAFF_PASSWORD, make_applicant, make_slot, make_staff, make_venue

pytestmark = pytest.mark.e2e


def _code(app, secret: str) -> str:
    return pyotp.TOTP(secret).at(app.extensions["madoguchi.clock"].now())


def _next_step(app) -> None:
    app.extensions["madoguchi.clock"].offset += timedelta(seconds=30)


def _actions(app, staff_id: int) -> list[str]:
    with app.app_context():
        query = select(AuditEntry.action).where(AuditEntry.staff_id == staff_id).order_by(AuditEntry.id)
        return list(db.session.scalars(query))


def _password_step(page, login_id: str, password: str = STAFF_PASSWORD) -> None:
    page.goto("/")
    expect(page).to_have_url(re.compile(r"/signin"))
    page.get_by_label("職員ID").fill(login_id)
    page.get_by_label("パスワード").fill(password)
    page.get_by_role("button", name="次へ").click()


def test_first_sign_in_enrols_the_authenticator_then_signs_in_with_a_code(staff_page, admin_app):
    """R7.1: a new staff member signs in with ID and password, reads the QR page's key into an
    authenticator (here pyotp), confirms with its code, is shown one-time recovery codes, and can sign
    in again later only with a fresh code; a wrong code is refused with a message."""
    page = staff_page
    with admin_app.app_context():
        staff = make_staff(roles=("supervisor",))
        staff.totp_secret, staff.totp_enrolled_at = None, None
        db.session.commit()
        staff_id, login_id = staff.id, staff.login_id

    _password_step(page, login_id)
    expect(page.get_by_role("heading", level=1)).to_have_text("二要素認証を登録してください")
    expect(page.get_by_role("img", name="認証アプリ登録用のQRコード")).to_be_visible()
    secret = page.locator("#totp-secret").inner_text().strip()
    assert re.fullmatch(r"[A-Z2-7]{16,}", secret)
    shot(page, "enrol")

    allow_status(page, 401)  # a wrong code is answered 401 with the form again
    page.get_by_label("確認コード（6桁）").fill(
        "000000" if _code(admin_app, secret) != "000000" else "111111"
    )
    page.get_by_role("button", name="登録する").click()
    expect(page.get_by_role("alert")).to_be_visible()
    page.get_by_label("確認コード（6桁）").fill(_code(admin_app, secret))
    page.get_by_role("button", name="登録する").click()

    expect(page.get_by_role("heading", level=1)).to_have_text("回復コードを控えてください")
    codes = page.locator("#recovery-codes li").all_inner_texts()
    assert len(codes) >= 8 and len(set(codes)) == len(codes)
    shot(page, "recovery-codes")
    page.get_by_role("link", name="控えました。続ける").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("ホーム")

    page.get_by_role("button", name="サインアウト").click()
    expect(page).to_have_url(re.compile(r"/signin"))
    page.goto("/staff")
    expect(page).to_have_url(re.compile(r"/signin"))  # the session really ended

    _next_step(admin_app)  # the enrolment code's step is spent
    _password_step(page, login_id)
    expect(page.get_by_role("heading", level=1)).to_have_text("確認コードを入力してください")
    page.get_by_label("確認コード").fill(_code(admin_app, secret))
    page.get_by_role("button", name="サインイン").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("ホーム")
    shot(page, "home")

    with admin_app.app_context():
        assert db.session.get(Staff, staff_id).totp_secret == secret
    actions = _actions(admin_app, staff_id)
    assert actions.count("auth:mfa_failed") == 1  # the wrong code at enrolment
    assert actions.count("auth:mfa_enrolled") == 1
    assert actions.count("auth:signed_out") == 1
    assert actions[-1] == "auth:signed_in"


def test_venue_staff_read_a_booking_and_the_read_is_audited(staff_page, admin_app):
    """R7.1, R7.2, R7.4: with both factors venue staff open their venue's list and a booking; the page shows
    the person and the access log holds the list and the view, by id."""
    page = staff_page
    with admin_app.app_context():
        venue = make_venue()
        slot = make_slot(venue, starts_in=timedelta(hours=1))
        applicant = make_applicant(venue)
        made = booking.book(applicant, slot.id, actor=booking.Actor(Channel.PHONE))
        staff = make_staff(roles=("venue_staff",), venue=venue)
        db.session.commit()
        staff_id, login_id, secret = staff.id, staff.login_id, staff.totp_secret
        venue_name, booking_id, name = venue.display_name, made.id, applicant.name
        day, venue_id = slot.starts_at, venue.id

    _password_step(page, login_id)
    page.get_by_label("確認コード").fill(_code(admin_app, secret))
    page.get_by_role("button", name="サインイン").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("ホーム")

    page.get_by_role("link", name=re.compile("本日の予約一覧")).click()
    page.goto(f"/venues/{venue_id}/bookings?day={dates.tokyo(day).date().isoformat()}")
    expect(page.get_by_role("heading", level=1)).to_contain_text(venue_name)
    row = page.get_by_role("row").filter(has_text="予約済み")
    expect(row).to_have_count(1)
    expect(row).to_contain_text("電話")
    shot(page, "venue-list")
    row.get_by_role("link").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("予約の詳細")
    expect(page.locator("dl.summary")).to_contain_text(name)
    shot(page, "booking")

    with admin_app.app_context():
        entries = db.session.execute(
            select(AuditEntry.action, AuditEntry.subject_id).where(AuditEntry.staff_id == staff_id)
        ).all()
    assert ("booking:viewed", booking_id) in [(a, s) for a, s in entries]
    assert any(a == "booking:listed" for a, _ in entries)
